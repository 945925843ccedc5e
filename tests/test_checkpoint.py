"""Checkpoints: official cn_clip files and HF ChineseCLIP folders load with the same numbers, ours load there,
and every bad file gives one clear error. cn_clip and transformers are the oracles (random weights, fp32, CPU)."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.model import checkpoint as ck
from cnclip_edu.model import hf_convert, hub
from cnclip_edu.model import RELEASED

from test_model import _randomize, cn_clip_info, cn_model, tokens

transformers = pytest.importorskip("transformers")


def assert_close_features(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= rel * b.abs().max().item(), (a - b).abs().max().item()


def official_layout(model: torch.nn.Module, path, prefix: str = "module.", optimizer: bool = False, dtype=None):
    """Write `model` the way cn_clip's training writes a checkpoint (what the released .pt files are)."""
    sd = {prefix + k: (v.to(dtype) if dtype and v.is_floating_point() else v) for k, v in model.state_dict().items()}
    obj = {"epoch": 3, "step": 1234, "name": "muge_finetune", "state_dict": sd}
    if optimizer:
        obj["optimizer"] = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(4)}},
                            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.98), "params": [0]}]}
    torch.save(obj, path)
    return path


def cn_clip_from_file(path, vision: str, text: str, info: dict | None = None) -> torch.nn.Module:
    """cn_clip's model loaded strictly from a cn_clip-layout file (built on meta: no random init)."""
    with torch.device("meta"):
        ref = cn_model.CLIP(**(info or cn_clip_info(vision, text)))
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    sd = {k[len("module."):]: v for k, v in sd.items()}
    ref.load_state_dict(sd, strict=True, assign=True)
    return ref.eval()


# ----------------------------------------------------------------------------- official cn_clip files
@pytest.fixture(scope="module", params=["ViT-B-16", "RN50"])
def official(request, tmp_path_factory):
    name = request.param
    vision, text = RELEASED[name].split("@")
    torch.manual_seed(0)
    ref = cn_model.CLIP(**cn_clip_info(vision, text)).eval()
    if name == "RN50":
        _randomize(ref)  # BN statistics and zero-initialised bn3 would otherwise hide mistakes
    path = official_layout(ref, tmp_path_factory.mktemp(name) / f"clip_cn_{name.lower()}.pt", optimizer=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    toks = tokens(2, 52)
    with torch.no_grad():
        feats = ref.encode_image(images), ref.encode_text(toks)
    del ref
    return name, path, images, toks, feats


def test_official_checkpoint_loads_with_same_features(official):
    name, path, images, toks, (ref_img, ref_txt) = official
    model, preprocess = cc.load(str(path))  # no model name: the architecture is read from the shapes
    assert model.config.name == RELEASED[name] and not model.training
    assert preprocess.image_size == 224
    with torch.no_grad():
        assert_close_features(model.encode_image(images), ref_img)
        assert_close_features(model.encode_text(toks), ref_txt)


def test_ours_load_in_cn_clip_with_same_features(official, tmp_path):
    name, path, images, toks, (ref_img, ref_txt) = official
    model, _ = cc.load(path)
    ours = ck.save_pt(model, tmp_path / "ours.pt")
    del model
    ref = cn_clip_from_file(ours, *RELEASED[name].split("@"))
    with torch.no_grad():
        assert_close_features(ref.encode_image(images), ref_img)
        assert_close_features(ref.encode_text(toks), ref_txt)


def test_our_pt_goes_through_cn_clip_load_from_name(tmp_path):
    """cn_clip's own user-facing loader accepts our .pt (its strict load_state_dict passes)."""
    from cn_clip.clip.utils import load_from_name

    model = cc.create_model("RN50")
    path = ck.save_pt(model, tmp_path / "rn50.pt")
    ref, _ = load_from_name(str(path), device="cpu", vision_model_name="RN50", text_model_name="RBT3-chinese",
                            input_resolution=224)
    assert torch.allclose(ref.text_projection.float(), model.text_projection.half().float())


def test_official_variants_fp16_no_prefix_pooler_flash(tmp_path):
    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    toks = tokens(2)
    with torch.no_grad():
        ref = model.encode_text(toks)
    # released files are fp16 and may carry bert.pooler; some have no "module." prefix
    p = official_layout(model, tmp_path / "a.pt", prefix="", dtype=torch.float16)
    obj = torch.load(p, weights_only=True)
    obj["state_dict"]["bert.pooler.dense.weight"] = torch.zeros(128, 128)
    torch.save(obj, p)
    loaded, _ = cc.load(p)
    assert loaded.dtype == torch.float32
    with torch.no_grad():
        assert_close_features(loaded.encode_text(toks), ref, rel=5e-3)  # fp16 rounding
    # a bare state dict, and cn_clip's flash-attention layout
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for k in [k for k in sd if "attention.self.query." in k]:
        pre, kind = k.split(".attention.self.query.")
        sd[f"{pre}.attention.self.Wqkv.{kind}"] = torch.cat([sd.pop(f"{pre}.attention.self.{p}.{kind}")
                                                            for p in ("query", "key", "value")])
        sd[f"{pre}.attention.self.out_proj.{kind}"] = sd.pop(f"{pre}.attention.output.dense.{kind}")
    for k in [k for k in sd if ".attn.in_proj_" in k]:
        sd[k.replace(".attn.in_proj_", ".attn.Wqkv.")] = sd.pop(k)
    torch.save(sd, tmp_path / "flash.pt")
    loaded, _ = cc.load(tmp_path / "flash.pt")
    with torch.no_grad():
        assert torch.allclose(loaded.encode_text(toks), ref, atol=1e-6)


@pytest.mark.parametrize("name", list(RELEASED.values()) + ["ViT-Course@RBT-Course", "ViT-B-32@RBT3-chinese"])
def test_infer_config_from_shapes(name):
    with torch.device("meta"):
        sd = cc.create_model(name).state_dict()
    cfg = ck.infer_config(sd)
    assert cfg.name == name
    assert cfg == cc.model.CLIPConfig.from_name(name)  # head widths (ViT-H: 80), activations, ...


def test_infer_config_unknown_size_and_garbage():
    cfg = cc.model.CLIPConfig.from_name("course")
    cfg.vision.vision_layers, cfg.text.text_num_hidden_layers = 3, 1
    with torch.device("meta"):
        got = ck.infer_config(cc.create_model(cfg).state_dict())
    assert got.vision.name == "custom" and got.vision.vision_layers == 3 and got.text.text_num_hidden_layers == 1
    cfg = cc.model.CLIPConfig.from_name("ViT-H-14")
    cfg.vision.image_resolution = 336  # finetuned at another resolution: still ViT-H's 80-wide heads
    with torch.device("meta"):
        got = ck.infer_config(cc.create_model(cfg).state_dict())
    assert got.vision.image_resolution == 336 and got.vision.vision_head_width == 80 and got.vision.heads == 16
    with pytest.raises(ck.CheckpointError, match="cannot infer the architecture"):
        ck.infer_config({"foo": torch.zeros(1)}, source="x.pt")


# ----------------------------------------------------------------------------- our own format
def test_save_and_load_ours(tmp_path):
    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    out = ck.save(model, tmp_path / "final")
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors"]  # no temporary files left
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["vision_model"] == "ViT-Course" and cfg["text_model"] == "RBT-Course"
    for path in (out, out / "model.safetensors"):  # the folder, or the weights file alone (config in metadata)
        loaded, preprocess = cc.load(path)
        assert loaded.config == model.config and preprocess.image_size == 32
        for k, v in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
    # what training writes: cn_clip layout + model_config
    path = ck.save_pt(model, tmp_path / "epoch_latest.pt", epoch=2)
    obj = torch.load(path, weights_only=True)
    assert obj["epoch"] == 2 and obj["model_config"]["vision_model"] == "ViT-Course"
    assert all(k.startswith("module.") for k in obj["state_dict"])
    assert cc.load(path)[0].config == model.config


def test_load_at_another_resolution(tmp_path):
    model = cc.create_model("course").eval()
    path = ck.save(model, tmp_path / "m")
    big, preprocess = cc.load(path, image_resolution=64)
    assert big.image_resolution == 64 and big.visual.positional_embedding.shape == (1 + 64, 128)
    assert torch.equal(big.visual.positional_embedding[0], model.visual.positional_embedding[0])
    assert big.encode_image(torch.randn(1, 3, 64, 64)).shape == (1, 128)
    assert preprocess.image_size == 64


def test_load_course_missing_says_make_toy_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "COURSE_MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="make toy-checkpoint"):
        cc.load("course")


def test_load_shipped_course_model():
    if not (ck.COURSE_MODEL_DIR / "model.safetensors").is_file():
        pytest.skip("the course checkpoint is not built yet (make toy-checkpoint)")
    model, _ = cc.load("course")
    assert model.config.name == "ViT-Course@RBT-Course"


# ----------------------------------------------------------------------------- transformers ChineseCLIP
def small_hf_config():
    return transformers.ChineseCLIPConfig(
        text_config=dict(vocab_size=21128, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128, max_position_embeddings=64),
        vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=32),
        projection_dim=32)


def hf_features(hf, images, toks):
    with torch.no_grad():
        return (hf.get_image_features(pixel_values=images).pooler_output,
                hf.get_text_features(input_ids=toks, attention_mask=(toks != 0).long()).pooler_output)


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_hf_folder_loads_with_same_features(weights, tmp_path):
    torch.manual_seed(0)
    hf = transformers.ChineseCLIPModel(small_hf_config()).eval()
    if weights == "safetensors":
        hf.save_pretrained(tmp_path)
    else:  # older hub folders: pytorch_model.bin, with the position_ids buffers inside
        hf.config.save_pretrained(tmp_path)
        sd = dict(hf.state_dict())
        sd["text_model.embeddings.position_ids"] = torch.arange(64)[None]
        torch.save(sd, tmp_path / "pytorch_model.bin")
    images, toks = torch.randn(3, 3, 32, 32), tokens(3)
    ref_img, ref_txt = hf_features(hf, images, toks)
    model, _ = cc.load(tmp_path)
    assert model.config.vision.heads == 2 and model.config.embed_dim == 32
    with torch.no_grad():
        assert_close_features(model.encode_image(images), ref_img)
        assert_close_features(model.encode_text(toks), ref_txt)
        assert torch.allclose(model.logit_scale, hf.logit_scale)


def test_save_hf_loads_in_transformers_with_same_features(tmp_path):
    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    ck.save_hf(model, tmp_path)
    hf = transformers.ChineseCLIPModel.from_pretrained(tmp_path).eval()
    images, toks = torch.randn(3, 3, 32, 32), tokens(3)
    hf_img, hf_txt = hf_features(hf, images, toks)
    with torch.no_grad():
        assert_close_features(hf_img, model.encode_image(images))
        assert_close_features(hf_txt, model.encode_text(toks))
    assert cc.load(tmp_path)[0].config.name == "ViT-Course@RBT-Course"  # and back, names recovered
    with pytest.raises(hf_convert.ConversionError, match="no ResNet"):
        with torch.device("meta"):
            ck.save_hf(cc.create_model("RN50"), tmp_path / "rn")


def _processor(folder, backend):
    kwargs = {} if backend is None else {"backend": backend}
    try:
        return transformers.ChineseCLIPProcessor.from_pretrained(folder, **kwargs)
    except TypeError:  # transformers 4: no backend argument; its default processor is PIL-based
        return transformers.ChineseCLIPProcessor.from_pretrained(folder)


def test_save_hf_processor_gives_our_features_on_raw_inputs(tmp_path):
    """ChineseCLIPProcessor + ChineseCLIPModel from our folder, on a PIL image and raw captions, give the
    features of cc.load + preprocess + cc.tokenize: cn_clip's resize (squash, no centre crop) and ids."""
    import numpy as np
    from PIL import Image

    model, preprocess = cc.load("course")
    ck.save_hf(model, tmp_path)
    hf = transformers.ChineseCLIPModel.from_pretrained(tmp_path).eval()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8))  # not square
    texts = ["红色的圆形在蓝色方形的左边", "一只 Café 猫，售价￥99"]
    with torch.no_grad():
        ours_img, ours_txt = model.encode_image(preprocess(image)[None]), model.encode_text(cc.tokenize(texts))
        for backend in ("pil", None):  # None: transformers' default (torchvision in transformers 5)
            inputs = _processor(tmp_path, backend)(text=texts, images=[image], return_tensors="pt", padding=True)
            assert inputs["pixel_values"].shape == (1, 3, model.image_resolution, model.image_resolution)
            assert torch.equal(inputs["input_ids"], cc.tokenize(texts)[:, :inputs["input_ids"].shape[1]])
            img = hf.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
            txt = hf.get_text_features(input_ids=inputs["input_ids"],
                                       attention_mask=inputs["attention_mask"]).pooler_output
            assert (txt - ours_txt).abs().max() <= 1e-5
            # PIL's bicubic resize is cn_clip's: exact; torchvision's rounds a few pixels one level apart
            assert (img - ours_img).abs().max() <= (1e-5 if backend == "pil" else 2e-2), backend
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["do_center_crop"] is False and config["resample"] == 3


@pytest.mark.parametrize("name", [RELEASED[n] for n in ("ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14")])
def test_hf_key_mapping_full_sizes(name):
    """Every official ViT size maps 1:1 onto transformers' keys and shapes (meta device: no memory)."""
    with torch.device("meta"):
        ours = cc.create_model(name)
        hf_cfg = transformers.ChineseCLIPConfig.from_dict(hf_convert.ours_to_hf_config(ours.config))
        hf = transformers.ChineseCLIPModel(hf_cfg)
    mapped = hf_convert.ours_to_hf(ours.state_dict())
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    back = hf_convert.hf_to_ours(mapped)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert hf_convert.hf_config_to_ours(hf_cfg.to_dict()) == ours.config.to_dict()


@pytest.mark.slow
def test_hf_vit_b16_both_directions(tmp_path):
    torch.manual_seed(0)
    model = cc.create_model("ViT-B-16").eval()
    ck.save_hf(model, tmp_path)
    hf = transformers.ChineseCLIPModel.from_pretrained(tmp_path).eval()
    images, toks = torch.randn(2, 3, 224, 224), tokens(2, 52)
    hf_img, hf_txt = hf_features(hf, images, toks)
    with torch.no_grad():
        assert_close_features(hf_img, model.encode_image(images))
        assert_close_features(hf_txt, model.encode_text(toks))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ViT-L-14", "ViT-L-14-336", "ViT-H-14"])
def test_large_official_parity(name, tmp_path):
    vision, text = RELEASED[name].split("@")
    torch.manual_seed(0)
    ref = cn_model.CLIP(**cn_clip_info(vision, text)).eval()
    path = official_layout(ref, tmp_path / "x.pt")
    R = ref.visual.input_resolution
    images, toks = torch.randn(1, 3, R, R), tokens(2, 52)
    with torch.no_grad():
        ref_img, ref_txt = ref.encode_image(images), ref.encode_text(toks)
    del ref
    model, _ = cc.load(path)
    with torch.no_grad():
        assert_close_features(model.encode_image(images), ref_img)
        assert_close_features(model.encode_text(toks), ref_txt)


# ----------------------------------------------------------------------------- bad input
def test_wrong_keys_and_shapes_name_the_file(tmp_path):
    model = cc.create_model("course")
    sd = model.state_dict()
    bad = {k: v for k, v in sd.items() if not k.startswith("bert.encoder.layer.1.")}
    bad["visual.extra_head.weight"] = torch.zeros(3)
    path = tmp_path / "bad_keys.pt"
    torch.save({"state_dict": bad, "model_config": model.config.to_dict()}, path)
    with pytest.raises(ck.CheckpointError) as e:
        cc.load(path)
    msg = str(e.value)
    assert "bad_keys.pt" in msg and "16 missing keys" in msg and "bert.encoder.layer.1.attention.self.key.bias" in msg
    assert "1 unexpected keys: visual.extra_head.weight" in msg
    shapes = dict(sd)
    shapes["text_projection"] = torch.zeros(128, 64)
    torch.save({"state_dict": shapes, "model_config": model.config.to_dict()}, tmp_path / "bad_shape.pt")
    with pytest.raises(ck.CheckpointError, match=r"bad_shape.pt .*text_projection: file \(128, 64\) vs model \(128, 128\)"):
        cc.load(tmp_path / "bad_shape.pt")
    # an official B-16 file named as RN50
    torch.save({"state_dict": sd}, tmp_path / "course.pt")
    with pytest.raises(ck.CheckpointError, match="does not fit RN50@RBT3-chinese"):
        cc.load(tmp_path / "course.pt", vision_model="RN50", text_model="RBT3-chinese")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cnclip_pwned",))


def test_pickle_with_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(ck.CheckpointError, match="evil.pt: refused to load"):
        cc.load(path)
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"a": Evil()}, f)
    with pytest.raises(ck.CheckpointError, match="plain.pkl"):
        cc.load(tmp_path / "plain.pkl")
    assert not os.path.exists("/tmp/cnclip_pwned")


def test_refusals_never_pass_on_the_advice_to_disable_weights_only(tmp_path):
    """Issue 16 item 11: the trainer's error repeated torch's "Re-running torch.load with weights_only
    set to False will likely succeed" for a file that would run code if we did."""
    from cnclip_edu.train.state import load_checkpoint

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, path)
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:200])
    for read in (load_checkpoint, ck.read_checkpoint):
        for bad, what in ((path, "refused to load"), (tmp_path / "cut.pt", "not a readable PyTorch checkpoint")):
            with pytest.raises(ck.CheckpointError, match=f"{bad.name}: {what}") as e:
                read(bad)
            assert "weights_only` set to `False`" not in str(e.value) and "will likely succeed" not in str(e.value)
    assert "GLOBAL" in str(pytest.raises(ck.CheckpointError, load_checkpoint, path).value)
    assert not os.path.exists("/tmp/cnclip_pwned")


def test_unreadable_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a model name"):
        cc.load(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="junk.pt: not a readable PyTorch checkpoint"):
        cc.load(tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ck.CheckpointError, match="junk.safetensors"):
        cc.load(tmp_path / "junk.safetensors")
    (tmp_path / "d").mkdir()
    with pytest.raises(ck.CheckpointError, match="needs config.json"):
        cc.load(tmp_path / "d")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ck.CheckpointError, match="expected a dict"):
        cc.load(tmp_path / "list.pt")


def test_offline_official_name_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.DownloadError, match=r"HF_HUB_OFFLINE.*cc.load\('/path/to/clip_cn_vit-b-16.pt'\)"):
        cc.load("ViT-B-16", download_root=tmp_path)


def test_download_errors_are_one_clear_message(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(hub.DownloadError, match="could not download 'RN50' from OFA-Sys/chinese-clip-rn50"):
        hub.download("RN50", tmp_path)


def test_download_uses_existing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = cc.create_model("course")
    ck.save_pt(model, tmp_path / "clip_cn_rn50.pt")
    assert hub.download("RN50", tmp_path) == tmp_path / "clip_cn_rn50.pt"
    assert hub.official_url("ViT-L-14-336").endswith("chinese-clip-vit-large-patch14-336px/resolve/main/clip_cn_vit-l-14-336.pt")
