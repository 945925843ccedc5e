"""ONNX Runtime on the CPU: the ORT-optimised graph (saved, same features), int8 dynamic quantisation
(`export_onnx(int8=True)`, `to_int8`, `cnclip-edu export --int8`) loaded by OnnxEncoder, its accuracy cost
on the toy world (quality.ToyEval, checked against notebook 07's pipeline), and the timing helper."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.deploy import export as E
from cnclip_edu.deploy import optimize as O

from test_export import _cos, _course_model, _images, _tokens  # noqa: E402  (tests/ is on sys.path under pytest)


@pytest.fixture(scope="module")
def model():
    return _course_model()


@pytest.fixture(scope="module")
def fp32_files(model, tmp_path_factory):
    return E.export_onnx(model, tmp_path_factory.mktemp("fp32"))


@pytest.fixture(scope="module")
def int8_files(model, tmp_path_factory):
    return E.export_onnx(model, tmp_path_factory.mktemp("int8"), int8=True)


def _domains(path) -> set[str]:
    return {n.domain or "ai.onnx" for n in onnx.load(str(path)).graph.node}


# ----------------------------------------------------------------------------- ORT optimisation, saved
def test_ort_optimize_saves_a_fused_graph_with_the_same_features(model, fp32_files, tmp_path):
    opt_text = O.ort_optimize(fp32_files[1], tmp_path / "t.ort.onnx")
    opt_image = O.ort_optimize(fp32_files[0])  # default name beside the source
    assert opt_image.endswith("course.img.fp32.ort.onnx")
    before, after = E.describe_graph(fp32_files[1])["node_types"], E.describe_graph(opt_text)["node_types"]
    assert after.get("SkipLayerNormalization", 0) > 0 and after.get("BiasGelu", 0) > 0, after  # fused by ORT
    assert "SkipLayerNormalization" not in before and sum(after.values()) < sum(before.values())
    assert "com.microsoft" in _domains(opt_text)  # ONNX Runtime's own operators: for ORT only
    meta = E.read_metadata(opt_text)
    assert meta["ort_optimized"] == "extended" and meta["precision"] == "fp32" and meta["tower"] == "text"
    plain, fused = E.OnnxEncoder(*fp32_files), E.OnnxEncoder(opt_image, opt_text)
    x, t = _images(model, 7), _tokens(model, 7)
    assert (fused.encode_image(x) - plain.encode_image(x)).abs().max() <= 1e-5
    assert (fused.encode_text(t) - plain.encode_text(t)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="already optimised by ONNX Runtime"):
        O.ort_optimize(opt_text, tmp_path / "again.onnx")
    with pytest.raises(ValueError, match="would overwrite its source"):
        O.ort_optimize(fp32_files[1], fp32_files[1])
    with pytest.raises(ValueError, match="level 'basic' or 'extended'"):
        O.ort_optimize(fp32_files[1], tmp_path / "all.onnx", level="all")


# ----------------------------------------------------------------------------- int8
def test_int8_export_is_loadable_smaller_and_close(model, fp32_files, int8_files):
    image, text = int8_files
    assert image.endswith("course.img.int8.onnx") and text.endswith("course.txt.int8.onnx")
    for path in int8_files:
        meta = E.read_metadata(path)
        assert meta["precision"] == "int8" and "dynamic int8" in meta["quantization"] and meta["ort_optimized"]
        assert E.describe_graph(path)["node_types"].get("MatMulInteger", 0) > 0  # int8 x int8 -> int32 products
    assert E.describe_graph(text)["inputs"][0]["shape"] == ["batch", "length"]
    size = {p: os.path.getsize(p) for p in (*fp32_files, *int8_files)}
    assert size[image] < 0.4 * size[fp32_files[0]] and size[text] < 0.4 * size[fp32_files[1]], size
    enc8, enc32 = E.OnnxEncoder(*int8_files), E.OnnxEncoder(*fp32_files)
    assert enc8.precision == "int8" and enc8.active_providers() == ["CPUExecutionProvider"]
    worst = []
    for b in (1, 7, 32):
        x, t = _images(model, b, seed=b), _tokens(model, b, seed=b)
        worst += [_cos(enc8.encode_image(x), enc32.encode_image(x)).min().item(),
                  _cos(enc8.encode_text(t), enc32.encode_text(t)).min().item()]
    assert min(worst) >= 0.999, worst  # measured ~0.9998 on the course model
    assert max(worst) < 1 - 1e-7  # really quantised, not the fp32 graph under another name


def test_to_int8_options_and_refusals(fp32_files, int8_files, tmp_path):
    per_channel = O.to_int8(fp32_files[1], tmp_path / "pc.onnx", per_channel=True, optimize=False)
    meta = E.read_metadata(per_channel)
    assert "per channel" in meta["quantization"] and "ort_optimized" not in meta
    t = _tokens(_course_model(), 5)
    assert _cos(E.OnnxEncoder(None, per_channel).encode_text(t), E.OnnxEncoder(None, fp32_files[1]).encode_text(t)
                ).min() >= 0.999
    assert O.to_int8(fp32_files[0]).endswith("course.img.int8.onnx")  # default name beside the source
    with pytest.raises(ValueError, match="needs an fp32 export.*got 'int8'"):
        O.to_int8(int8_files[1], tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        O.to_int8(tmp_path / "nope.onnx")
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        E.export_onnx(_course_model(), tmp_path, fp16=True, int8=True)


def test_tensorrt_refuses_onnx_runtime_only_files(fp32_files, int8_files, tmp_path):
    from cnclip_edu.deploy import trt as T

    for path in (int8_files[1], O.ort_optimize(fp32_files[1], tmp_path / "o.onnx")):
        with pytest.raises(ValueError, match="for ONNX Runtime only; build the TensorRT engine from the plain") as err:
            T.plan_profile(path)
        assert "strongly typed network takes each tensor's precision from the file" in str(err.value)  # not "picks"


def test_cli_int8(model, tmp_path):
    from cnclip_edu.model import checkpoint

    ckpt = checkpoint.save(model, tmp_path / "ckpt")
    assert E.main(["--resume", str(ckpt), "--save-dir", str(tmp_path / "out"), "--int8", "--convert-text"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["course.txt.int8.onnx"]  # no leftovers
    t = _tokens(model, 5)
    with torch.no_grad():
        ref = model.encode_text(t)
    assert _cos(E.OnnxEncoder(None, tmp_path / "out" / "course.txt.int8.onnx").encode_text(t), ref).min() >= 0.999
    with pytest.raises(SystemExit):
        E.main(["--resume", str(ckpt), "--save-dir", str(tmp_path), "--int8", "--fp16"])


# ----------------------------------------------------------------------------- accuracy cost on the toy world
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    return ensure_toy_data(tmp_path_factory.mktemp("toy"), ToyConfig(n_train=50, n_valid=20, n_test=120,
                                                                     zeroshot_per_class=6))


def test_toy_eval_matches_notebook_07_pipeline(model, toy):
    """ToyEval's R@1 is the R@1 of the course's own pipeline (extract-features -> topk -> recall)."""
    from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
    from cnclip_edu.deploy.quality import ToyEval
    from cnclip_edu.eval import features, recall, topk, zeroshot
    from cnclip_edu.eval.prompts import get_templates

    scores = ToyEval(toy, model.image_resolution).scores(model)
    texts = EvalTextDataset(toy / "test_texts.jsonl", 52)
    tid, tf = features.extract_text_features(model, texts, 64)
    iid, imf = features.extract_image_features(model, EvalImageDataset(toy / "lmdb" / "test" / "imgs", 32), 64)
    _, idx = topk.topk_predictions(tf, imf, 10)
    pred = {int(t): [int(iid[j]) for j in row] for t, row in zip(tid, idx)}
    assert scores["t2i_r1"] == pytest.approx(recall.evaluate(recall.read_gold(toy / "test_texts.jsonl"), pred)["r1"])
    shape = zeroshot.evaluate_folder(model, toy / "zeroshot" / "shape", templates=get_templates("toy-shape"))
    assert scores["zs_shape_acc"] == pytest.approx(shape.top1)
    assert set(scores) == {"t2i_r1", "zs_shape_acc", "zs_color_acc", "zs_combo_seen_acc", "zs_combo_heldout_acc"}


def test_int8_costs_little_retrieval_on_the_toy_world(model, fp32_files, int8_files, toy):
    from cnclip_edu.deploy.quality import ToyEval

    ev = ToyEval(toy, model.image_resolution)
    ref, fp32, int8 = ev.scores(model), ev.scores(E.OnnxEncoder(*fp32_files)), ev.scores(E.OnnxEncoder(*int8_files))
    assert fp32 == pytest.approx(ref, abs=1e-9)  # fp32 ONNX: the same ranking as PyTorch
    assert abs(ref["t2i_r1"] - int8["t2i_r1"]) <= 0.02, (ref, int8)  # notebook 09 measures the full split


# ----------------------------------------------------------------------------- timing helper
def test_timeit_is_warm_median():
    from cnclip_edu.deploy.timing import timeit

    calls = []
    durations = iter([0.0, 0.0, 0.03, 0.0, 0.0])  # one slow run among five

    def fn():
        import time

        calls.append(1)
        time.sleep(next(durations, 0.0))

    sec = timeit(fn, repeat=4, warmup=1)
    assert len(calls) == 5 and sec < 0.01  # the warm-up ran but was not timed; the slow run does not move a median
    with pytest.raises(ValueError, match="repeat >= 1"):
        timeit(fn, repeat=0)
    assert np.isfinite(timeit(lambda: cc.tokenize(["猫"]), repeat=2, warmup=0))


def test_time_interleaved_takes_turns_and_middle_half():
    from cnclip_edu.deploy.timing import middle_half, overlap, time_interleaved

    order = []
    runs = time_interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeat=3, warmup=1)
    assert order == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-up of each, then a, b in turn
    assert sorted(runs) == ["a", "b"] and all(len(v) == 3 for v in runs.values())
    assert middle_half([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert overlap([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]) and not overlap([1.0, 1.1, 1.2], [2.0, 2.1, 2.2])
    with pytest.raises(ValueError, match="repeat >= 1"):
        time_interleaved({"a": lambda: None}, repeat=0)
