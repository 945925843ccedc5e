"""The model: configs, shapes, parameter counts and numbers against cn_clip (the oracle), FLIP, checkpointing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cnclip_edu as cc
from cnclip_edu.model import RELEASED, CLIPConfig, count_parameters
from cnclip_edu.model.vision import random_masking, resize_pos_embed

cn_model = pytest.importorskip("cn_clip.clip.model")
import cn_clip  # noqa: E402

CN_CONFIGS = Path(cn_clip.__file__).parent / "clip" / "model_configs"
OUR_CONFIGS = Path(cc.__file__).parent / "model" / "configs"


def cn_clip_info(vision: str, text: str, config_dir: Path = CN_CONFIGS) -> dict:
    """The kwargs cn_clip's CLIP takes for a vision@text pairing (as its create_model builds them)."""
    info = json.loads((config_dir / f"{vision}.json").read_text())
    info.update(json.loads((config_dir / f"{text}.json").read_text()))
    if isinstance(info["vision_layers"], str):
        info["vision_layers"] = json.loads(info["vision_layers"])
    return info


def tokens(n: int = 3, length: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(103, 21128, (n, length), generator=g)
    t[:, 0] = 101
    for i in range(n):  # different real lengths, then [SEP] and padding
        end = length - 1 - 4 * i
        t[i, end] = 102
        t[i, end + 1:] = 0
    return t


def test_available_models():
    assert cc.available_models() == ["ViT-B-16", "ViT-L-14", "ViT-L-14-336", "ViT-H-14", "RN50", "course"]


@pytest.mark.parametrize("path", sorted(CN_CONFIGS.glob("*.json")), ids=lambda p: p.stem)
def test_config_json_same_as_cn_clip(path):
    assert json.loads((OUR_CONFIGS / path.name).read_text()) == json.loads(path.read_text())


PAIRINGS = list(RELEASED.values()) + ["ViT-B-32@RoBERTa-wwm-ext-base-chinese", "ViT-B-16@RBT3-chinese"]


@pytest.mark.parametrize("name", PAIRINGS)
def test_keys_shapes_and_parameter_count_match_cn_clip(name):
    with torch.device("meta"):  # instant, no memory
        ours = cc.create_model(name)
        ref = cn_model.CLIP(**cn_clip_info(*name.split("@")))
    a, b = ours.state_dict(), ref.state_dict()
    assert set(a) == set(b)
    assert {k: tuple(v.shape) for k, v in a.items()} == {k: tuple(v.shape) for k, v in b.items()}
    assert count_parameters(ours) == count_parameters(ref)


def test_vit_b16_has_official_parameter_count():
    with torch.device("meta"):
        assert count_parameters(cc.create_model("ViT-B-16@RoBERTa-wwm-ext-base-chinese")) == 188_262_913
        assert count_parameters(cc.create_model("ViT-B-16")) == 188_262_913


def test_course_model_shapes_and_api():
    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    assert model.config.name == "ViT-Course@RBT-Course"
    assert (model.image_resolution, model.context_length, model.config.embed_dim) == (32, 52, 128)
    assert model.visual.grid_size ** 2 == 16 and model.visual.transformer.resblocks[0].attn.heads == 2
    assert model.logit_scale.item() == pytest.approx(np.log(1 / 0.07))
    images, toks = torch.randn(4, 3, 32, 32), tokens(3)
    with torch.no_grad():
        assert model.encode_image(images).shape == (4, 128)
        assert model.encode_text(toks).shape == (3, 128)
        fi, ft, scale = model(images, toks)
        assert torch.allclose(fi.norm(dim=-1), torch.ones(4), atol=1e-5)
        assert torch.allclose(ft.norm(dim=-1), torch.ones(3), atol=1e-5)
        assert scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
        lpi, lpt = model.get_similarity(images, toks)
    assert lpi.shape == (4, 3) and torch.equal(lpt, lpi.t())
    assert torch.allclose(lpi, scale * fi @ ft.t(), atol=1e-5)


def test_config_roundtrip_and_errors():
    cfg = CLIPConfig.from_name("RN50")
    d = cfg.to_dict()
    assert d["vision_model"] == "RN50" and d["text_model"] == "RBT3-chinese" and d["vision_layers"] == [3, 4, 6, 3]
    assert CLIPConfig.from_dict(json.loads(json.dumps(d))) == cfg
    # the flat dict is what cn_clip's CLIP takes
    kwargs = {k: v for k, v in d.items() if k not in ("vision_model", "text_model", "context_length")}
    with torch.device("meta"):
        assert count_parameters(cn_model.CLIP(**kwargs)) == 76_989_537
    with pytest.raises(ValueError, match="unknown model"):
        cc.create_model("ViT-X-99")
    with pytest.raises(ValueError, match="unknown vision model"):
        cc.create_model("ViT-X-99@RBT3-chinese")
    with pytest.raises(ValueError, match="missing key"):
        CLIPConfig.from_dict({"embed_dim": 3})


def _randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Perturb BN statistics, zero-initialised bn3 weights and biases: a wrong wiring cannot hide behind an init value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5, generator=g)
            elif name.endswith(("running_mean", "bn3.weight", "bias")):
                t.add_(torch.randn(t.shape, generator=g) * 0.02)


@pytest.mark.parametrize("vision", ["ViT-Course", "RN50-small"])
def test_small_forward_parity_with_cn_clip(vision, tmp_path):
    """Numbers equal cn_clip's for the same weights (course sizes; full sizes are in test_checkpoint)."""
    if vision == "RN50-small":  # RN50 shape family at a toy size: 64 px, width 16, [1,1,1,1]
        (tmp_path / "RN50-small.json").write_text(json.dumps(dict(
            embed_dim=32, image_resolution=64, vision_layers="[1,1,1,1]", vision_width=16, vision_patch_size=None,
            vision_head_width=16)))
        (tmp_path / "RBT-Course.json").write_text((OUR_CONFIGS / "RBT-Course.json").read_text())
        info = cn_clip_info(vision, "RBT-Course", tmp_path)
    else:
        info = cn_clip_info(vision, "RBT-Course", OUR_CONFIGS)
    torch.manual_seed(0)
    ref = cn_model.CLIP(**info).eval()
    _randomize(ref)
    ours = cc.create_model({**info, "vision_model": vision, "text_model": "RBT-Course"}).eval()
    ours.load_state_dict(ref.state_dict())
    R = info["image_resolution"]
    images, toks = torch.randn(3, 3, R, R), tokens(3)
    with torch.no_grad():
        for a, b in [(ours.encode_image(images), ref.encode_image(images)),
                     (ours.encode_text(toks), ref.encode_text(toks))]:
            assert (a - b).abs().max() <= 1e-5 * b.abs().max()
        for a, b in zip(ours.get_similarity(images, toks), ref.get_similarity(images, toks)):
            assert torch.allclose(a, b, atol=1e-4)


def test_padding_does_not_change_text_features():
    model = cc.create_model("course").eval()
    t = tokens(2, 12)
    longer = torch.cat([t, torch.zeros(2, 30, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model.encode_text(t), model.encode_text(longer), atol=1e-5)
        assert torch.isfinite(model.encode_text(torch.zeros(1, 8, dtype=torch.long))).all()  # all padding
    with pytest.raises(ValueError, match="longer than the model's 512 positions"):
        model.encode_text(torch.ones(1, 513, dtype=torch.long))


def test_random_masking_keeps_class_token_and_distinct_patches():
    x = torch.arange(2 * 17 * 3, dtype=torch.float).view(2, 17, 3)
    y = random_masking(x, 0.5, generator=torch.Generator().manual_seed(0))
    assert y.shape == (2, 1 + 8, 3)
    assert torch.equal(y[:, 0], x[:, 0])
    for b in range(2):
        rows = {tuple(r.tolist()) for r in y[b, 1:]}
        assert len(rows) == 8 and rows <= {tuple(r.tolist()) for r in x[b, 1:]}


def test_flip_mask_ratio_only_in_training():
    torch.manual_seed(0)
    model = cc.create_model("course")
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        full = model.encode_image(images)
        assert torch.equal(model.encode_image(images, mask_ratio=0.5), full)  # ignored in eval
        model.train()
        seen = {}
        model.visual.transformer.resblocks[0].register_forward_hook(lambda m, i, o: seen.update(L=o.shape[1]))
        masked = model.encode_image(images, mask_ratio=0.5)
    assert seen["L"] == 1 + 8 and masked.shape == full.shape and not torch.allclose(masked, full)


@pytest.mark.parametrize("name", ["course", "RN50-tiny"])
def test_grad_checkpointing_gives_same_gradients(name):
    if name == "RN50-tiny":
        cfg = CLIPConfig.from_name("RN50@RBT-Course")
        cfg.vision.vision_layers, cfg.vision.vision_width, cfg.vision.image_resolution = [1, 1, 1, 1], 8, 32
        cfg.vision.vision_head_width, cfg.vision.embed_dim = 32, 128
        name = cfg
    torch.manual_seed(0)
    model = cc.create_model(name).train()
    R = model.image_resolution
    images, toks = torch.randn(2, 3, R, R), tokens(2)

    def grads(enable: bool) -> dict[str, torch.Tensor]:
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        torch.manual_seed(1)  # same dropout masks in both runs
        fi, ft, scale = model(images, toks)
        (scale * fi @ ft.t()).logsumexp(dim=1).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    a, b = grads(False), grads(True)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5), k


def test_resize_pos_embed_matches_cn_clip():
    pos = torch.randn(1 + 7 * 7, 16)
    assert resize_pos_embed(pos, 7) is pos
    ours = resize_pos_embed(pos, 10)
    assert ours.shape == (101, 16) and torch.equal(ours[0], pos[0])

    class Dummy(torch.nn.Module):  # what cn_clip's resize_pos_embed looks at
        def __init__(self):
            super().__init__()
            self.visual = torch.nn.Module()
            self.visual.grid_size = (10, 10)

    sd = {"visual.positional_embedding": pos.clone()}
    cn_model.resize_pos_embed(sd, Dummy())
    assert torch.allclose(ours, sd["visual.positional_embedding"], atol=1e-6)


# ----------------------------------------------------------------------------- preprocessing
def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8))
    return {"RGB": rgb, "L": rgb.convert("L"), "LA": rgb.convert("LA"), "P": rgb.convert("P"),
            "RGBA": rgb.convert("RGBA"), "CMYK": rgb.convert("CMYK"),
            "I;16": Image.fromarray(rng.integers(0, 65536, (20, 30), dtype=np.uint16))}


def test_preprocess_matches_cn_clip_on_rgb():
    from cn_clip.clip.utils import image_transform as cn_transform

    for R in (32, 224):
        img = _images()["RGB"]
        assert torch.equal(cc.image_transform(R)(img), cn_transform(R)(img))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16"])
def test_preprocess_any_mode(mode):
    x = cc.image_transform(32)(_images()[mode])
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and torch.isfinite(x).all()


# ----------------------------------------------------------------------------- attention pictures
def test_patchify_order_is_the_token_order():
    from cnclip_edu.viz.attention import patchify

    model = cc.create_model("course").eval()
    img = torch.randn(3, 32, 32)
    patches = patchify(img, 8)  # (16, 3, 8, 8)
    w = model.visual.conv1.weight  # (D, 3, 8, 8)
    with torch.no_grad():
        tokens = model.visual.patch_tokens(img[None])[0]  # (16, D)
        assert torch.allclose(patches.flatten(1) @ w.flatten(1).t(), tokens, atol=1e-4)
        # embed = [CLS] in front, then one learned position per slot
        x = model.visual.embed(img[None])[0]  # (17, D)
        pos = model.visual.positional_embedding
        assert torch.allclose(x[0], model.visual.class_embedding + pos[0])
        assert torch.allclose(x[1:], tokens + pos[1:])


def test_vit_attention_maps(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from cnclip_edu.viz.attention import cls_attention, plot_cls_attention, show_patches, vit_attention

    model = cc.create_model("course").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model.encode_image(images)
    att = vit_attention(model.visual, images)
    assert att.shape == (4, 2, 2, 17, 17)
    assert torch.allclose(att.sum(-1), torch.ones(4, 2, 2, 17), atol=1e-5)
    assert cls_attention(att).shape == (2, 4, 4)
    with torch.no_grad():  # hooks removed, model unchanged
        assert torch.equal(model.encode_image(images), ref)
    fig = plot_cls_attention(images, att, titles=["一", "二"])
    fig.savefig(tmp_path / "a.png")
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2  # one colour bar per attention row, scaled 0 .. the row's largest weight
    assert bars[1].get_ylim()[1] == pytest.approx(cls_attention(att, -1).max().item())
    show_patches(images[0], 8).savefig(tmp_path / "p.png")
    with torch.device("meta"):
        rn = cc.create_model("RN50")
    with pytest.raises(TypeError, match="ViT"):
        vit_attention(rn.visual, images)
