"""ONNX export and the ONNX Runtime runner: parity with PyTorch at several batch sizes from ONE file,
the dynamic text length (trimmed padding = the fixed-length graph's features), fp16, retrieval on the
toy valid split, metadata, self-contained files, bad inputs, IO binding, threads, the CLI.
int8 and ORT optimisation: tests/test_export_int8.py."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.deploy import export as E

BATCHES = (1, 7, 32)
ROOT = Path(__file__).resolve().parents[1]


def _course_model():
    """The trained course model when shipped, else a random one (parity does not need training)."""
    try:
        model, _ = cc.load("course")
    except FileNotFoundError:
        torch.manual_seed(0)
        model = cc.create_model("course")
    return model.eval()


def _images(model, b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = model.image_resolution
    return torch.randn(b, 3, r, r, generator=g)  # (B, 3, R, R)


def _tokens(model, b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    words = ["红色的圆形", "两个蓝色的三角形和一个绿色的正方形", "黄色", "一只猫坐在紫色的星星旁边，旁边还有很多字" * 3]
    texts = [words[int(i)] for i in torch.randint(len(words), (b,), generator=g)]
    return cc.tokenize(texts, context_length=model.context_length)  # (B, L), with padding and truncation


@pytest.fixture(scope="module")
def model():
    return _course_model()


@pytest.fixture(scope="module")
def fp32_files(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return E.export_onnx(model, out)


@pytest.fixture(scope="module")
def fp16_files(fp32_files):
    return E.to_fp16(fp32_files[0]), E.to_fp16(fp32_files[1])


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


# ----------------------------------------------------------------------------- parity
def test_fp32_parity_one_file_three_batch_sizes(model, fp32_files):
    enc = E.OnnxEncoder(*fp32_files, providers=["CPUExecutionProvider"])
    for path, name in zip(fp32_files, ("image", "text")):
        assert E.describe_graph(path)["inputs"][0]["shape"][0] == "batch"  # symbolic, not baked in
    assert E.describe_graph(fp32_files[1])["inputs"][0]["shape"] == ["batch", "length"]
    diffs = []
    for b in BATCHES:
        x, t = _images(model, b, seed=b), _tokens(model, b, seed=b)
        with torch.no_grad():
            ref_i, ref_t = model.encode_image(x), model.encode_text(t)
        got_i, got_t = enc.encode_image(x), enc.encode_text(t)
        assert got_i.shape == ref_i.shape == (b, enc.embed_dim) and got_t.shape == ref_t.shape
        diffs += [(got_i - ref_i).abs().max().item(), (got_t - ref_t).abs().max().item()]
    assert max(diffs) <= 1e-4, diffs


def test_fp16_parity(model, fp16_files):
    enc = E.OnnxEncoder(*fp16_files, providers=["CPUExecutionProvider"])
    assert enc.precision == "fp16"
    g = E.describe_graph(fp16_files[0])
    assert g["inputs"][0]["dtype"] == "float32" and g["outputs"][0]["dtype"] == "float32"  # io kept fp32
    assert E.describe_graph(fp16_files[1])["inputs"][0]["dtype"] == "int64"
    for b in BATCHES:
        x, t = _images(model, b, seed=b), _tokens(model, b, seed=b)
        with torch.no_grad():
            ci = _cos(enc.encode_image(x), model.encode_image(x)).min().item()
            ct = _cos(enc.encode_text(t), model.encode_text(t)).min().item()
        assert ci >= 0.999 and ct >= 0.999, (b, ci, ct)


def _r1(text_ids, text_f, image_ids, image_f, gold) -> float:
    best = (torch.as_tensor(text_f) @ torch.as_tensor(image_f).T).argmax(dim=1)  # (T,)
    return 100.0 * float(np.mean([int(image_ids[j]) in gold[int(t)] for t, j in zip(text_ids, best.tolist())]))


def test_toy_retrieval_unchanged(model, fp32_files, fp16_files, tmp_path_factory):
    from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data
    from cnclip_edu.eval.recall import read_gold

    data = ensure_toy_data(tmp_path_factory.mktemp("wd"), ToyConfig(n_train=50, n_test=20))
    images = EvalImageDataset(data / "lmdb" / "valid" / "imgs", model.image_resolution)
    texts = EvalTextDataset(data / "valid_texts.jsonl", model.context_length)
    iid, x = zip(*(images[i] for i in range(len(images))))
    tid, t = zip(*(texts[i] for i in range(len(texts))))
    x, t = torch.stack(x), torch.stack(t)  # (N_img, 3, R, R), (N_txt, L): decoded once, fed to all three
    gold = {k: set(v) for k, v in read_gold(data / "valid_texts.jsonl").items()}
    scores = {}
    for name, enc in [("torch", model), ("fp32", E.OnnxEncoder(*fp32_files)), ("fp16", E.OnnxEncoder(*fp16_files))]:
        with torch.no_grad():
            fi = torch.cat([enc.encode_image(b) for b in x.split(256)])
            ft = torch.cat([enc.encode_text(b) for b in t.split(256)])
        fi, ft = torch.nn.functional.normalize(fi, dim=-1), torch.nn.functional.normalize(ft, dim=-1)
        scores[name] = _r1(tid, ft, iid, fi, gold)
    assert abs(scores["fp32"] - scores["torch"]) <= 0.5, scores
    assert abs(scores["fp16"] - scores["torch"]) <= 0.5, scores


# ----------------------------------------------------------------------------- the files
def test_metadata_present_and_correct(model, fp32_files, fp16_files):
    for path, kind in zip(fp32_files, ("image", "text")):
        md = E.read_metadata(path)
        assert md["producer"] == "cnclip_edu" and md["tower"] == kind and md["precision"] == "fp32"
        assert md["model_name"] == model.config.name == "ViT-Course@RBT-Course"
        assert int(md["embed_dim"]) == model.config.embed_dim
    img, txt = E.read_metadata(fp32_files[0]), E.read_metadata(fp32_files[1])
    assert int(img["image_resolution"]) == model.image_resolution
    assert json.loads(img["image_mean"]) == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert json.loads(img["image_std"]) == pytest.approx([0.26862954, 0.26130258, 0.27577711])
    assert int(txt["context_length"]) == model.context_length and txt["input_dtype"] == "int64"
    assert int(txt["vocab_size"]) == 21128
    assert E.read_metadata(fp16_files[0])["precision"] == "fp16"
    assert Path(fp32_files[0]).name == "course.img.fp32.onnx" and Path(fp16_files[1]).name == "course.txt.fp16.onnx"


def test_files_pass_checker_and_are_self_contained(fp32_files, fp16_files):
    forbidden = [str(Path(fp32_files[0]).parent), str(ROOT), sys.prefix, os.path.expanduser("~"), "site-packages",
                 "/tmp/", "/home/"]
    for path in (*fp32_files, *fp16_files):
        onnx.checker.check_model(path, full_check=True)
        proto = onnx.load(path, load_external_data=False)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        blob = Path(path).read_bytes()
        hits = [s for s in forbidden if s.encode() in blob]
        assert not hits, f"{path} embeds paths {hits}"
        assert not list(Path(path).parent.glob("*.data"))


def test_big_model_goes_to_relative_external_data(fp32_files, tmp_path, monkeypatch):
    monkeypatch.setattr(E, "EXTERNAL_DATA_BYTES", 1000)  # pretend the course text tower is over 2 GB
    proto = onnx.load(fp32_files[1])
    (tmp_path / "a").mkdir()
    E._save_proto(proto, tmp_path / "a" / "t.onnx", E.read_metadata(fp32_files[1]))
    locs = {e.value for t in onnx.load(str(tmp_path / "a" / "t.onnx"), load_external_data=False).graph.initializer
            for e in t.external_data if e.key == "location"}
    assert locs == {"t.onnx.data"}
    shutil.move(tmp_path / "a", tmp_path / "b")  # the pair moves together
    t = _tokens(_course_model(), 3)
    a = E.OnnxEncoder(None, fp32_files[1]).encode_text(t)
    b = E.OnnxEncoder(None, tmp_path / "b" / "t.onnx").encode_text(t)
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- the runner
# ----------------------------------------------------------------------------- the text length axis
_FIXED: dict = {}


def fixed_length_text(model) -> str:
    """The text tower exported with its length fixed at the context length (the graph before trimming)."""
    if "path" not in _FIXED:
        import tempfile

        out = Path(tempfile.mkdtemp(prefix="fixed-"))
        _FIXED["path"] = E.export_onnx(model, out, towers=("text",), dynamic_length=False)[1]
    return _FIXED["path"]


def test_trim_padding_cuts_only_all_padding_columns():
    t = cc.tokenize(["红色的圆形", "两个蓝色的三角形", ""], context_length=52)  # 7, 10 and 2 real tokens
    assert E.trimmed_length(t) == 10 and E.trim_padding(t).shape == (3, 10)
    assert torch.equal(E.trim_padding(t), t[:, :10]) and (t[:, 10:] == 0).all()
    assert E.trim_padding(t.numpy()).shape == (3, 10)  # numpy too
    assert E.trimmed_length(t[2:]) == 2  # "" is [CLS] [SEP]
    full = cc.tokenize(["猫" * 80], context_length=52)  # truncated: no padding at all
    assert E.trim_padding(full).shape == (1, 52)
    assert E.trimmed_length(torch.zeros(2, 52, dtype=torch.long)) == 1  # all padding: keep one column
    gap = torch.tensor([[101, 5, 0, 7, 102, 0, 0]])  # a [PAD] inside a caption is kept (only trailing columns go)
    assert E.trimmed_length(gap) == 5


def test_dynamic_length_equals_fixed_length_graph_and_pytorch(model, fp32_files, monkeypatch):
    dynamic, fixed = E.OnnxEncoder(None, fp32_files[1]), E.OnnxEncoder(None, fixed_length_text(model))
    assert dynamic.text.dynamic_length and not fixed.text.dynamic_length
    assert E.describe_graph(fixed_length_text(model))["inputs"][0]["shape"] == ["batch", model.context_length]
    seen = []
    run = dynamic.text.run
    monkeypatch.setattr(dynamic.text, "run", lambda x: seen.append(x.shape) or run(x))
    worst_fixed, worst_torch = 0.0, 0.0
    for b, seed in ((1, 0), (7, 1), (32, 2)):
        t = _tokens(model, b, seed)  # (B, 52) with captions of 5 to 52 tokens
        with torch.no_grad():
            ref = model.encode_text(t)
        got = dynamic.encode_text(t)
        assert seen[-1] == (b, E.trimmed_length(t))  # the graph ran on the trimmed batch
        worst_fixed = max(worst_fixed, (got - fixed.encode_text(t)).abs().max().item())
        worst_torch = max(worst_torch, (got - ref).abs().max().item())
    short = cc.tokenize(["红色", "黄色的圆形"], context_length=model.context_length)
    assert dynamic.encode_text(short).shape == (2, dynamic.embed_dim) and seen[-1] == (2, 7)
    worst_fixed = max(worst_fixed, (dynamic.encode_text(short) - fixed.encode_text(short)).abs().max().item())
    # a caller may also pass an already short batch
    assert torch.allclose(dynamic.encode_text(short[:, :7]), dynamic.encode_text(short), atol=1e-6)
    assert worst_fixed <= 1e-5 and worst_torch <= 1e-4, (worst_fixed, worst_torch)


def test_io_binding_and_threads(model, fp32_files):
    from cnclip_edu.deploy.onnx_runner import session_options

    plain, bound = E.OnnxEncoder(*fp32_files), E.OnnxEncoder(*fp32_files, io_binding=True)
    x, t = _images(model, 5), _tokens(model, 5)
    calls = []
    run_bound = bound.text.run_bound
    bound.text.run_bound = lambda x, d: calls.append(x.shape) or run_bound(x, d)
    got_i, got_t = bound.encode_image(x), bound.encode_text(t)
    assert calls == [(5, E.trimmed_length(t))]  # the bound path ran (on the trimmed tokens)
    assert got_i.dtype == torch.float32 and got_i.device.type == "cpu"
    assert torch.allclose(got_i, plain.encode_image(x), atol=1e-6)
    assert torch.allclose(got_t, plain.encode_text(t), atol=1e-6)
    assert isinstance(bound.encode_image(x.numpy()), np.ndarray)  # numpy in: the plain path
    assert session_options().intra_op_num_threads == torch.get_num_threads()
    opts = session_options(3)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1


def test_returns_input_type_and_handles_empty_batch(model, fp32_files):
    enc = E.OnnxEncoder(*fp32_files)
    x = _images(model, 2)
    out_np = enc.encode_image(x.numpy())
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    out_t = enc.encode_image(x.double())  # float64 accepted, computed in float32
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_np, out_t.numpy(), atol=1e-6)
    assert enc.encode_text(_tokens(model, 2).int()).shape == (2, enc.embed_dim)  # int32 ids accepted
    assert isinstance(enc.encode_text(_tokens(model, 2).tolist()), np.ndarray)  # nested lists too
    assert enc.encode_image(x[:0]).shape == (0, enc.embed_dim)
    assert enc.encode_text(np.zeros((0, model.context_length), np.int64)).shape == (0, enc.embed_dim)
    assert enc.eval() is enc and "CPUExecutionProvider" in enc.active_providers()


def test_bad_inputs_give_clear_errors(model, fp32_files):
    enc = E.OnnxEncoder(*fp32_files)
    R, L = model.image_resolution, model.context_length
    with pytest.raises(ValueError, match=rf"expected shape \(batch, 3, {R}, {R}\), got \(3, {R}, {R}\).*batch axis"):
        enc.encode_image(torch.zeros(3, R, R))
    with pytest.raises(ValueError, match=r"got \(2, 3, 64, 64\)"):
        enc.encode_image(torch.zeros(2, 3, 64, 64))
    with pytest.raises(TypeError, match="expected float pixels.*got dtype uint8"):
        enc.encode_image(np.zeros((1, 3, R, R), np.uint8))
    with pytest.raises(ValueError, match=rf"expected shape \(batch, L\) with 1 <= L <= {L}, got \(2, 64\)"
                                         rf".*context_length={L}"):
        enc.encode_text(torch.zeros(2, 64, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got \(2, 0\)"):
        enc.encode_text(torch.zeros(2, 0, dtype=torch.long))
    fixed = E.OnnxEncoder(None, fixed_length_text(model))
    with pytest.raises(ValueError, match=rf"expected shape \(batch, {L}\), got \(2, 20\).*context_length={L}"):
        fixed.encode_text(torch.zeros(2, 20, dtype=torch.long))  # a fixed-length graph takes exactly L
    with pytest.raises(TypeError, match="expected integer token ids.*got dtype float32"):
        enc.encode_text(torch.zeros(2, L))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 21128\), got min 30000, max 30000"):
        enc.encode_text(torch.full((1, L), 30000))


def test_run_checked_refuses_what_the_session_would_refuse(model, fp32_files):
    """run_checked (exercise 09.2's reference): the session's own input description is the contract."""
    import onnxruntime as ort

    from cnclip_edu.deploy.onnx_runner import run_checked, run_session

    R = model.image_resolution
    img = ort.InferenceSession(str(fp32_files[0]), providers=["CPUExecutionProvider"])
    txt = ort.InferenceSession(str(fp32_files[1]), providers=["CPUExecutionProvider"])
    x = np.zeros((2, 3, R, R), np.float32)
    np.testing.assert_array_equal(run_checked(img, x), run_session(img, x))          # a good input: the same output
    ids = cc.tokenize(["红色的圆形"], context_length=model.context_length)[:, :7].numpy()
    assert run_checked(txt, ids).shape == run_session(img, x)[:1].shape                # any length: a dynamic axis
    with pytest.raises(ValueError, match=rf"image: expected shape \('batch', 3, {R}, {R}\), got \(3, {R}, {R}\)"):
        run_checked(img, x[0])
    with pytest.raises(ValueError, match=r"got \(2, 3, 16, 16\)"):
        run_checked(img, np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(TypeError, match=r"image: expected dtype float32 \(tensor\(float\)\), got float64"):
        run_checked(img, x.astype(np.float64))
    with pytest.raises(TypeError, match=r"text: expected dtype int64 .*got int32"):
        run_checked(txt, ids.astype(np.int32))


def test_loading_errors_and_provider_choice(fp32_files, tmp_path, monkeypatch):
    image, text = fp32_files
    with pytest.raises(ValueError, match="this is the text tower, passed as the image tower"):
        E.OnnxEncoder(text, None)
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        E.OnnxEncoder(tmp_path / "nope.onnx", None)
    with pytest.raises(ValueError, match="at least one"):
        E.OnnxEncoder(None, None)
    proto = onnx.load(image)  # an image tower from "another" model
    next(p for p in proto.metadata_props if p.key == "model_name").value = "ViT-B-16@RoBERTa-wwm-ext-base-chinese"
    onnx.save(proto, str(tmp_path / "other.onnx"))
    with pytest.raises(ValueError, match="do not share one embedding space"):
        E.OnnxEncoder(tmp_path / "other.onnx", text)
    with pytest.raises(RuntimeError, match="without a text ONNX file"):
        E.OnnxEncoder(image, None).encode_text(torch.zeros(1, 52, dtype=torch.long))
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [
        "CPUExecutionProvider", "CUDAExecutionProvider", "AzureExecutionProvider", "TensorrtExecutionProvider"])
    assert E.default_providers() == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.undo()
    assert E.OnnxEncoder(image, None, providers=["CPUExecutionProvider"]).providers == ["CPUExecutionProvider"]


def test_export_argument_errors_and_model_untouched(model, tmp_path):
    with pytest.raises(ValueError, match="towers must be"):
        E.export_onnx(model, tmp_path, towers=("audio",))
    with pytest.raises(ValueError, match="expected an fp32 export"):
        bad = tmp_path / "x.onnx"
        onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(bad))
        E.to_fp16(bad)
    assert not model.training and next(model.parameters()).dtype == torch.float32


class _BakesBatch(torch.nn.Module):
    """A model whose code turns the batch size into a Python int: its export must be refused."""

    image_resolution, context_length = 4, 8

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        b = int(x.shape[0])
        return x.reshape(b, -1)[:, :4]  # (B, 4)


def test_export_refuses_a_baked_batch_axis(tmp_path):
    with pytest.raises(RuntimeError, match="fixed the batch axis to 2.*int\\(x.shape\\[0\\]\\)"):
        E.export_onnx(_BakesBatch(), tmp_path, towers=("image",))
    assert not list(tmp_path.glob("*.onnx"))  # nothing half-written left behind


# ----------------------------------------------------------------------------- CLI
def test_cli_round_trip(model, tmp_path):
    from cnclip_edu.model import checkpoint

    ckpt = checkpoint.save(model, tmp_path / "ckpt")
    assert E.main(["--resume", str(ckpt), "--save-dir", str(tmp_path / "out"), "--convert-text", "--fp16"]) == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["course.txt.fp16.onnx"], files  # only what was asked, no temporary leftovers
    t = _tokens(model, 5)
    enc = E.OnnxEncoder(None, tmp_path / "out" / files[0])
    with torch.no_grad():
        assert _cos(enc.encode_text(t), model.encode_text(t)).min() >= 0.999
    # cn_clip's spellings: --pytorch-ckpt-path, --save-onnx-path PREFIX, --convert-vision
    rc = E.main(["--pytorch_ckpt_path", str(ckpt), "--save-onnx-path", str(tmp_path / "cn" / "deploy"),
                 "--convert-vision"])
    assert rc == 0 and (tmp_path / "cn" / "deploy.img.fp32.onnx").is_file()
    x = _images(model, 3)
    with torch.no_grad():
        got = E.OnnxEncoder(tmp_path / "cn" / "deploy.img.fp32.onnx", None).encode_image(x)
        assert (got - model.encode_image(x)).abs().max() <= 1e-4


def test_cli_vision_model_alone_means_its_released_pairing(tmp_path):
    """Issue 16 item 9: `export --vision-model ViT-Course` said "unknown model" though --help promises the pairing."""
    assert E.main(["--vision-model", "ViT-Course", "--save-dir", str(tmp_path), "--convert-text"]) == 0
    path = tmp_path / "course.txt.fp32.onnx"
    assert E.read_metadata(path)["model_name"] == "ViT-Course@RBT-Course"
    shipped = _course_model()  # the released (shipped) course weights, not a random model
    t = _tokens(shipped, 4)
    with torch.no_grad():
        assert (E.OnnxEncoder(None, path).encode_text(t) - shipped.encode_text(t)).abs().max() <= 1e-4
    with pytest.raises(SystemExit, match="'ViT-B-32' has no released pairing.*--text-model"):
        E.main(["--vision-model", "ViT-B-32", "--save-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="no released weights for ViT-B-32@RBT3-chinese: give --resume"):
        E.main(["--vision-model", "ViT-B-32", "--text-model", "RBT3-chinese", "--save-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="give a vision model too"):
        E.main(["--text-model", "RBT3-chinese", "--save-dir", str(tmp_path)])


def test_cli_errors(tmp_path):
    with pytest.raises(SystemExit):
        E.main(["--resume", "x"])  # no --save-dir
    with pytest.raises(SystemExit, match="checkpoint not found"):
        E.main(["--resume", str(tmp_path / "missing.pt"), "--save-dir", str(tmp_path)])


# ----------------------------------------------------------------------------- official sizes
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ViT-B-16", "RN50"])
def test_official_sizes_random_weights(name, tmp_path):
    torch.manual_seed(0)
    model = cc.create_model(name).eval()
    image, text = E.export_onnx(model, tmp_path)
    enc = E.OnnxEncoder(image, text)
    enc16 = E.OnnxEncoder(E.to_fp16(image), E.to_fp16(text))
    for b in (1, 7):
        x, t = _images(model, b, seed=b), _tokens(model, b, seed=b)
        with torch.no_grad():
            ri, rt = model.encode_image(x), model.encode_text(t)
        assert max((enc.encode_image(x) - ri).abs().max(), (enc.encode_text(t) - rt).abs().max()) <= 1e-4
        assert min(_cos(enc16.encode_image(x), ri).min(), _cos(enc16.encode_text(t), rt).min()) >= 0.999
