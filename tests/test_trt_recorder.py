"""deploy.trt_recorder: the stand-in for `tensorrt` that notebook 09's check runs the student's build on.

The library's own builder (`trt.build_plan`) run on it records the profile `plan_profile` computes and
writes the plan; every mistake the exercise's mutants make is visible in the summary or refused the way
TensorRT refuses it; and the names TensorRT 10 deprecated / 11 removed raise an AttributeError that says
what replaced them."""
from __future__ import annotations

from pathlib import Path

import pytest

from cnclip_edu.deploy import trt as T
from cnclip_edu.deploy.trt_recorder import RecordingTensorRT, signature_onnx

TEXT_META = {"tower": "text", "context_length": "52", "precision": "fp32"}


@pytest.fixture
def text_onnx(tmp_path) -> str:
    return signature_onnx(tmp_path / "t.onnx", {"text": (-1, -1)}, TEXT_META)


def _library_build(trt, onnx_path, engine_path, max_batch=16, opt_batch=None):
    meta = T.check_buildable(onnx_path)
    return T.build_plan(trt, trt.Logger(trt.Logger.WARNING), onnx_path, engine_path,
                        lambda s: T.profile_shapes(s, meta, 1, opt_batch, max_batch), workspace_gib=1)


def test_library_build_on_the_stand_in(tmp_path, text_onnx):
    rec = RecordingTensorRT()
    shapes = _library_build(rec, text_onnx, tmp_path / "t.engine", max_batch=16, opt_batch=4)
    assert shapes == T.plan_profile(text_onnx, max_batch=16, opt_batch=4) == {"text": ((1, 1), (4, 52), (16, 52))}
    assert rec.summary() == {
        "网络标志 (network flags)": ["STRONGLY_TYPED"], "解析的文件": "t.onnx", "工作区上限 (字节)": 1 << 30,
        "设置的构建标志 (builder flags)": [], "加进 config 的 profile": [{"text": [[1, 1], [4, 52], [16, 52]]}],
        "build_serialized_network 调用次数": 1, "模拟对象查出的构建问题": []}
    assert rec.wrote_plan(tmp_path / "t.engine") and not rec.wrote_plan(tmp_path / "other.engine")


def test_image_graph_and_two_inputs(tmp_path):
    image = signature_onnx(tmp_path / "i.onnx", {"image": (-1, 3, 32, 32)},
                           {"tower": "image", "precision": "fp32"}, dtype="float32")
    rec = RecordingTensorRT()
    _library_build(rec, image, tmp_path / "i.engine", max_batch=8)
    assert rec.summary()["加进 config 的 profile"] == [{"image": [[1, 3, 32, 32], [8, 3, 32, 32], [8, 3, 32, 32]]}]
    two = signature_onnx(tmp_path / "two.onnx", {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, TEXT_META)
    rec = RecordingTensorRT()
    _library_build(rec, two, tmp_path / "two.engine", max_batch=4)
    assert rec.summary()["加进 config 的 profile"] == [{"attention_mask": [[1, 1], [4, 52], [4, 52]],
                                                "input_ids": [[1, 1], [4, 52], [4, 52]]}]


def _manual(trt, onnx_path, engine_path, *, add=True, name=None, shapes=((1, 1), (8, 52), (16, 52)),
            check_parse=True, per_input_profiles=False):
    """A hand-written build with one knob per mistake."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)) and check_parse:
        raise RuntimeError(str(parser.get_error(0)))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        if per_input_profiles:
            profile = builder.create_optimization_profile()
        profile.set_shape(name or network.get_input(i).name, *shapes)
        if per_input_profiles:
            config.add_optimization_profile(profile)
    if add and not per_input_profiles:
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("build failed")
    Path(engine_path).write_bytes(bytes(plan))


@pytest.mark.parametrize("mistake, refusal", [
    ({"add": False}, "no optimization profile was added"),
    ({"name": "input"}, "no input named 'input'"),
    ({"shapes": ((8, 1), (1, 52), (16, 52))}, "1 <= min <= opt <= max"),
    ({"shapes": ((1, 1), (8, 51), (16, 51))}, None),  # max length 51 < context 52: TensorRT builds it (it is legal)
    ({"shapes": ((1, 3, 1), (8, 3, 52), (16, 3, 52))}, "does not fit the input shape"),
])
def test_refusals_as_tensorrt_refuses(tmp_path, text_onnx, mistake, refusal):
    rec = RecordingTensorRT()
    if refusal is None:
        _manual(rec, text_onnx, tmp_path / "e", **mistake)
        assert rec.summary()["加进 config 的 profile"] == [{"text": [[1, 1], [8, 51], [16, 51]]}]
        return
    with pytest.raises(RuntimeError, match="build failed"):
        _manual(rec, text_onnx, tmp_path / "e", **mistake)
    problems = rec.summary()["模拟对象查出的构建问题"]
    assert problems and refusal in " ".join(problems), problems
    assert not (tmp_path / "e").exists() and not rec.wrote_plan(tmp_path / "e")


def test_one_profile_per_input_is_refused(tmp_path):
    two = signature_onnx(tmp_path / "two.onnx", {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, TEXT_META)
    rec = RecordingTensorRT()
    with pytest.raises(RuntimeError):
        _manual(rec, two, tmp_path / "e", per_input_profiles=True)
    assert "no shapes for the dynamic input" in " ".join(rec.summary()["模拟对象查出的构建问题"])


def test_a_broken_file_fails_to_parse_and_unchecked_parsing_shows(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    rec = RecordingTensorRT()
    with pytest.raises(RuntimeError, match="not a valid ONNX model"):
        _manual(rec, bad, tmp_path / "e")
    assert rec.summary()["build_serialized_network 调用次数"] == 0
    rec = RecordingTensorRT()
    with pytest.raises(RuntimeError, match="build failed"):  # went on: TensorRT refuses the empty network
        _manual(rec, bad, tmp_path / "e", check_parse=False)
    assert rec.summary()["build_serialized_network 调用次数"] == 1
    assert "nothing was parsed" in rec.summary()["模拟对象查出的构建问题"][0]
    rec = RecordingTensorRT()
    parser = rec.OnnxParser(rec.Builder(rec.Logger()).create_network(0), rec.Logger())
    assert not parser.parse_from_file(str(tmp_path / "missing.onnx")) and parser.num_errors == 1


def test_removed_names_explain_themselves():
    rec = RecordingTensorRT()
    with pytest.raises(AttributeError, match="EXPLICIT_BATCH: deprecated in TensorRT 10.0 and removed in 11"):
        rec.NetworkDefinitionCreationFlag.EXPLICIT_BATCH
    with pytest.raises(AttributeError, match="FP16: weak typing"):
        rec.BuilderFlag.FP16
    with pytest.raises(AttributeError, match="no member 'NOPE'"):
        rec.BuilderFlag.NOPE
    assert int(rec.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1  # TensorRT 10's value
    with pytest.raises(TypeError, match="MemoryPoolType"):
        rec.Builder(rec.Logger()).create_builder_config().set_memory_pool_limit("WORKSPACE", 1 << 30)
    with pytest.raises(TypeError, match="number of bytes"):
        rec.Builder(rec.Logger()).create_builder_config().set_memory_pool_limit(rec.MemoryPoolType.WORKSPACE, 1.5e9)
    with pytest.raises(TypeError, match="trt.Logger"):
        rec.Builder(None)


def test_summary_before_any_build_and_flags(tmp_path, text_onnx):
    rec = RecordingTensorRT()
    assert rec.summary()["解析的文件"] is None and rec.summary()["加进 config 的 profile"] == []
    builder = rec.Builder(rec.Logger())
    network = builder.create_network(0)
    config = builder.create_builder_config()
    config.set_flag(rec.BuilderFlag.TF32)
    config.set_flag(rec.BuilderFlag.REFIT)
    config.clear_flag(rec.BuilderFlag.TF32)
    assert config.get_flag(rec.BuilderFlag.REFIT) and not config.get_flag(rec.BuilderFlag.TF32)
    rec.OnnxParser(network, rec.Logger()).parse(Path(text_onnx).read_bytes(), text_onnx)
    s = rec.summary()
    assert s["网络标志 (network flags)"] == [] and s["设置的构建标志 (builder flags)"] == ["REFIT"] and s["解析的文件"] == "t.onnx"


def test_build_engine_runs_its_calls_through_build_plan(tmp_path, monkeypatch):
    """The library's build_engine, with the stand-in in place of TensorRT: the sidecar and the plan are written,
    an fp16 request on an fp32 file parses the converted graph (bytes), and the profile is plan_profile's."""
    import json

    import torch

    rec = RecordingTensorRT()
    monkeypatch.setattr(T, "_trt", lambda: rec)
    monkeypatch.setattr(T, "_logger", lambda verbose=False: rec.Logger())
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "stand-in")
    src = signature_onnx(tmp_path / "course.txt.fp32.onnx", {"text": (-1, -1)}, TEXT_META)
    engine = T.build_engine(src, max_batch=8, opt_batch=2, fp16=True, workspace_gib=0.5)
    assert Path(engine).name == "course.txt.fp16.engine" and rec.wrote_plan(engine)
    side = json.loads(Path(engine + ".json").read_text(encoding="utf-8"))
    assert side["precision"] == "fp16" and side["profile"] == {"text": [[1, 1], [2, 52], [8, 52]]}
    s = rec.summary()
    assert s["网络标志 (network flags)"] == ["STRONGLY_TYPED"] and s["工作区上限 (字节)"] == 1 << 29
    assert s["加进 config 的 profile"] == [{k: [list(x) for x in v] for k, v in T.plan_profile(src, max_batch=8,
                                                                                       opt_batch=2).items()}]


def test_settings_after_the_build_do_not_count(tmp_path, text_onnx):
    rec = RecordingTensorRT()
    logger = rec.Logger(rec.Logger.WARNING)
    builder = rec.Builder(logger)
    network = builder.create_network(1 << int(rec.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    assert rec.OnnxParser(network, logger).parse_from_file(str(text_onnx))
    config, profile = builder.create_builder_config(), builder.create_optimization_profile()
    profile.set_shape("text", (1, 1), (8, 52), (16, 52))
    config.add_optimization_profile(profile)
    assert builder.build_serialized_network(network, config) is not None
    config.set_memory_pool_limit(rec.MemoryPoolType.WORKSPACE, 1 << 30)          # too late: the build is done
    profile.set_shape("text", (1, 1), (1, 52), (16, 52))
    s = rec.summary()
    assert s["工作区上限 (字节)"] is None and s["加进 config 的 profile"] == [{"text": [[1, 1], [8, 52], [16, 52]]}]
