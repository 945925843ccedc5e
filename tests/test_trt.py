"""TensorRT engines: the same parity checks as for ONNX Runtime, on a GPU machine with `pip install .[gpu]`.

Here (no GPU, or no `tensorrt`) the GPU tests skip and one test checks that every entry point
says what was skipped and why, instead of failing with an ImportError. The optimization profile
(batch AND text length) is computed from the ONNX file alone, so it is tested everywhere.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.deploy import export as E
from cnclip_edu.deploy import trt as T

BATCHES = (1, 7, 32)


def _need_trt():
    reason = T.unavailable_reason()
    if reason:
        pytest.skip(f"TensorRT test skipped: {reason}")


from test_export import _course_model  # noqa: E402  (tests/ is on sys.path under pytest)


def _inputs(model, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    r = model.image_resolution
    x = torch.randn(b, 3, r, r, generator=g)  # (B, 3, R, R)
    words = ["红色的圆形", "两个蓝色的三角形和一个绿色的正方形", "黄色"]
    t = cc.tokenize([words[i % 3] for i in range(b)], context_length=model.context_length)  # (B, L)
    return x, t


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a.float().cpu(), b.float().cpu(), dim=-1)


def test_without_gpu_or_tensorrt_every_entry_point_says_why(tmp_path):
    reason = T.unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT is available here: the GPU tests below run instead")
    for call in (lambda: T.build_engine(tmp_path / "x.onnx"), lambda: T.TrtEncoder("a.engine", "b.engine")):
        with pytest.raises(T.TrtUnavailable, match="TensorRT skipped: .*(tensorrt|GPU)"):
            call()
    assert T.main(["--onnx", str(tmp_path / "x.onnx")]) == 1


# ----------------------------------------------------------------------------- the profile (CPU)
@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    model = _course_model()
    out = tmp_path_factory.mktemp("onnx")
    image, text = E.export_onnx(model, out)
    static = E.export_onnx(model, out / "static", towers=("text",), dynamic_length=False)[1]
    return image, text, static


def test_profile_covers_batch_and_text_length(onnx_files):
    image, text, static = onnx_files
    assert T.plan_profile(image, max_batch=64, opt_batch=8) == {
        "image": ((1, 3, 32, 32), (8, 3, 32, 32), (64, 3, 32, 32))}
    assert T.plan_profile(text, max_batch=64) == {"text": ((1, 1), (64, 52), (64, 52))}  # length 1..52
    assert T.plan_profile(text, min_batch=2, max_batch=16, opt_batch=4, opt_length=24) == {
        "text": ((2, 1), (4, 24), (16, 52))}
    assert T.plan_profile(static, max_batch=8) == {"text": ((1, 52), (8, 52), (8, 52))}  # a fixed-length graph
    with pytest.raises(ValueError, match="need 1 <= min_batch <= opt_batch <= max_batch, got 4, 2, 8"):
        T.plan_profile(text, min_batch=4, opt_batch=2, max_batch=8)
    with pytest.raises(ValueError, match="need 1 <= opt_length <= context_length 52, got 60"):
        T.plan_profile(text, opt_length=60)
    with pytest.raises(ValueError, match="axis 2 is dynamic"):
        T.profile_shapes((-1, 3, -1, -1), {"tower": "image"})
    with pytest.raises(ValueError, match="batch axis is fixed at 1"):  # cn_clip's batch-1 export: no valid range
        T.profile_shapes((1, 3, 224, 224), {"tower": "image"})


# ----------------------------------------------------------------------------- GPU
@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    _need_trt()
    model = _course_model()
    out = tmp_path_factory.mktemp("trt")
    image, text = E.export_onnx(model, out)
    image16, text16 = E.to_fp16(image), E.to_fp16(text)
    fp32 = [T.build_engine(p, max_batch=32, opt_batch=8) for p in (image, text)]
    fp16 = [T.build_engine(p, max_batch=32, opt_batch=8) for p in (image16, text16)]
    return model, fp32, fp16


@pytest.mark.gpu
def test_trt_fp32_parity_dynamic_batch(engines):
    model, fp32, _ = engines
    enc = T.TrtEncoder(*fp32)
    assert enc.precision == "fp32" and enc.image_resolution == model.image_resolution
    worst = 0.0
    assert enc.context_length == model.context_length and enc.text.dynamic_length
    for b in BATCHES:
        x, t = _inputs(model, b, seed=b)
        with torch.no_grad():  # reference on the CPU: no TF32 anywhere
            ri, rt = model.encode_image(x), model.encode_text(t)
        gi, gt = enc.encode_image(x.cuda()), enc.encode_text(t.cuda())
        assert gi.device.type == "cuda" and gi.shape == ri.shape
        worst = max(worst, (gi.cpu() - ri).abs().max().item(), (gt.cpu() - rt).abs().max().item())
    assert worst <= 1e-4, worst


@pytest.mark.gpu
def test_trt_text_engine_runs_each_batch_at_its_trimmed_length(engines, monkeypatch):
    model, fp32, _ = engines
    enc = T.TrtEncoder(None, fp32[1])
    shapes = []
    run_one = enc.text._run_one
    monkeypatch.setattr(enc.text, "_run_one", lambda x, stream: shapes.append(tuple(x.shape)) or run_one(x, stream))
    for texts in (["红色"], ["红色的圆形", "两个蓝色的三角形和一个绿色的正方形"], ["猫" * 80]):
        t = cc.tokenize(texts, context_length=model.context_length)
        with torch.no_grad():
            ref = model.encode_text(t)
        assert (enc.encode_text(t).cpu() - ref).abs().max() <= 1e-4
        assert shapes[-1] == (len(texts), E.trimmed_length(t))
    assert [s[1] for s in shapes] == [4, 19, 52]


@pytest.mark.gpu
def test_trt_fp16_parity_and_converted_fp32_build(engines, tmp_path):
    model, fp32, fp16 = engines
    enc = T.TrtEncoder(*fp16)
    assert enc.precision == "fp16"
    for b in BATCHES:
        x, t = _inputs(model, b, seed=b)
        with torch.no_grad():
            ri, rt = model.encode_image(x), model.encode_text(t)
        assert _cos(enc.encode_image(x), ri).min() >= 0.999
        assert _cos(enc.encode_text(t), rt).min() >= 0.999
    # fp16=True on an fp32 file: the graph is converted to fp16, then built strongly typed like an fp16 file
    onnx_text = str(fp32[1]).replace(".fp32.engine", ".fp32.onnx")
    eng = T.build_engine(onnx_text, tmp_path / "t.engine", fp16=True, max_batch=8)
    x, t = _inputs(model, 5)
    with torch.no_grad():
        assert _cos(T.TrtEncoder(None, eng).encode_text(t), model.encode_text(t)).min() >= 0.999


@pytest.mark.gpu
def test_trt_toy_retrieval_unchanged(engines, tmp_path):
    from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data
    from cnclip_edu.eval.recall import read_gold

    model, fp32, fp16 = engines
    data = ensure_toy_data(tmp_path, ToyConfig(n_train=50, n_test=20))
    images = EvalImageDataset(data / "lmdb" / "valid" / "imgs", model.image_resolution)
    texts = EvalTextDataset(data / "valid_texts.jsonl", model.context_length)
    iid, x = zip(*(images[i] for i in range(len(images))))
    tid, t = zip(*(texts[i] for i in range(len(texts))))
    x, t = torch.stack(x), torch.stack(t)
    gold = {k: set(v) for k, v in read_gold(data / "valid_texts.jsonl").items()}

    def r1(enc) -> float:
        with torch.no_grad():
            fi = torch.nn.functional.normalize(torch.cat([enc.encode_image(b).cpu() for b in x.split(32)]), dim=-1)
            ft = torch.nn.functional.normalize(torch.cat([enc.encode_text(b).cpu() for b in t.split(32)]), dim=-1)
        best = (ft @ fi.T).argmax(1).tolist()
        return 100.0 * float(np.mean([int(iid[j]) in gold[int(q)] for q, j in zip(tid, best)]))

    ref = r1(model)
    assert abs(r1(T.TrtEncoder(*fp32)) - ref) <= 0.5
    assert abs(r1(T.TrtEncoder(*fp16)) - ref) <= 0.5


@pytest.mark.gpu
def test_trt_types_chunking_and_errors(engines):
    model, fp32, _ = engines
    enc = T.TrtEncoder(*fp32)
    x, t = _inputs(model, 40)  # above the profile's max batch (32): runs in two pieces
    out = enc.encode_image(x.numpy())
    assert isinstance(out, np.ndarray) and out.shape == (40, model.config.embed_dim)
    with torch.no_grad():
        assert np.abs(out - model.encode_image(x).numpy()).max() <= 1e-4
    assert enc.encode_text(t).device.type == "cpu"  # CPU tensor in -> CPU tensor out
    assert enc.encode_image(x[:0]).shape[0] == 0
    with pytest.raises(ValueError, match="expected shape"):
        enc.encode_image(x[0])
    with pytest.raises(TypeError, match="integer token ids"):
        enc.encode_text(t.float())
    with pytest.raises(ValueError, match="this is the text tower"):
        T.TrtEncoder(fp32[1], None)


@pytest.mark.gpu
def test_onnxruntime_cuda_provider_parity(engines):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu)")
    model, fp32, _ = engines
    onnx_files = [str(p).replace(".fp32.engine", ".fp32.onnx") for p in fp32]
    enc = E.OnnxEncoder(*onnx_files, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    x, t = _inputs(model, 7)
    with torch.no_grad():
        ri, rt = model.encode_image(x), model.encode_text(t)
    assert _cos(enc.encode_image(x), ri).min() >= 0.9999 and _cos(enc.encode_text(t), rt).min() >= 0.9999
    gi, gt = enc.encode_image(x.cuda()), enc.encode_text(t.cuda())  # CUDA tensors: IO binding, no host copy
    assert gi.device.type == "cuda" and gt.device.type == "cuda"
    assert _cos(gi, ri).min() >= 0.9999 and _cos(gt, rt).min() >= 0.9999
