"""Notebook 09 (deployment): the export call, a session run, trimming padding, int8 rounding, and two
questions (the int8 step, TensorRT's chunking). Cases run on a tiny tower (one conv, one linear) so
an export takes about a second; the reference's results are computed once per process."""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- shared fixtures (lazy)
def _tiny_tower():
    """A 'tower' with one input x (B, 3, 8, 8) -> (B, 5): a conv patchifies, a linear projects."""
    import torch
    from torch import nn

    class TinyTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, kernel_size=4, stride=4)  # (B, 4, 2, 2)
            self.proj = nn.Linear(16, 5)

        def forward(self, x):
            return self.proj(self.conv(x).flatten(1))  # (B, 5)

    torch.manual_seed(0)
    return TinyTower().eval(), torch.randn(2, 3, 8, 8)  # the tower and its example input (batch 2)


def _images(b: int):
    import numpy as np

    return np.random.default_rng(b).standard_normal((b, 3, 8, 8)).astype(np.float32)  # (B, 3, 8, 8)


def _reference_export(tower, example, path) -> None:
    """The library's export of one tower (what export_onnx does), for an image-like input."""
    from cnclip_edu.deploy.export import export_program

    export_program(tower, "image", example).save(str(path))


def _export_report(export_fn) -> dict:
    """Export the tiny tower with `export_fn`, then read back the names, the batch axis and two runs."""
    import onnx
    import onnxruntime as ort

    tower, example = _tiny_tower()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.onnx"
        export_fn(tower, example, str(path))
        graph = onnx.load(str(path)).graph
        dim0 = graph.input[0].type.tensor_type.shape.dim[0]
        report = {"batch 维": "动态 (symbolic)" if dim0.dim_param else f"固定为 {dim0.dim_value}",
                  "输入名 (input_names)": [i.name for i in graph.input],
                  "输出名 (output_names)": [o.name for o in graph.output]}
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) if dim0.dim_param else None
        for b in (1, 3):
            report[f"batch {b} 的输出"] = (session.run(None, {graph.input[0].name: _images(b)})[0] if session
                                          else f"无法运行：batch 维固定为 {dim0.dim_value}")
    return report


@functools.lru_cache(maxsize=1)
def _reference_report() -> dict:
    return _export_report(_reference_export)


def _report_case(export_fn) -> dict:
    return _reference_report() if export_fn is _reference_export else _export_report(export_fn)


@functools.lru_cache(maxsize=1)
def _tiny_session():
    import onnxruntime as ort

    tower, example = _tiny_tower()
    with tempfile.TemporaryDirectory() as tmp:
        _reference_export(tower, example, Path(tmp) / "tiny.onnx")
        model_bytes = (Path(tmp) / "tiny.onnx").read_bytes()
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- 09.1 the export call
def _export_mutants() -> dict:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)

    def no_dynamic_batch(tower, example, path):
        torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["image"],
                          output_names=["image_features"])

    def wrong_input_name(tower, example, path):
        torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["input"],
                          output_names=["image_features"], dynamic_shapes={"x": {0: batch}})

    def no_output_name(tower, example, path):
        torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["image"],
                          dynamic_shapes={"x": {0: batch}})

    return {"没有声明动态 batch（dynamic_shapes）": no_dynamic_batch, "输入名写成了 input": wrong_input_name,
            "忘了 output_names": no_output_name}


register(Exercise(
    id="09.1", title="导出一个塔 (torch.onnx.export)", points=3,
    hint="用 dynamo=True；input_names / output_names 都是列表；dynamic_shapes 的键是 forward 的参数名 \"x\"，"
         "值是 {0: torch.export.Dim(\"batch\", min=1, max=4096)}。最常见的错误是忘了 dynamic_shapes："
         "batch 维就被固定成示例的大小 2。",
    reference=_reference_export,
    cases=lambda: [Case("微型塔：读回输入输出名、batch 维，并用 batch 1 和 3 运行", _report_case)],
    mutants=_export_mutants,
))


# ----------------------------------------------------------------------------- 09.2 a session run
def _session_mutants() -> dict:
    import torch

    def list_not_array(session, x):
        return session.run(None, {session.get_inputs()[0].name: x})  # forgot [0]

    def torch_input(session, x):
        return session.run(None, {session.get_inputs()[0].name: torch.from_numpy(x)})[0]

    def hard_coded_name(session, x):
        return session.run(None, {"input": x})[0]

    return {"返回了整个列表（忘了 [0]）": list_not_array, "喂了 torch 张量而不是 numpy": torch_input,
            "输入名写死成 input": hard_coded_name}


def _reference_run(session, x):
    from cnclip_edu.deploy.onnx_runner import run_session

    return run_session(session, x)


register(Exercise(
    id="09.2", title="用 ONNX Runtime 运行 (InferenceSession.run)", points=2,
    hint="输入名从 session.get_inputs()[0].name 读取；session.run(None, {名字: numpy 数组}) 返回一个列表，"
         "取第 0 个元素；ONNX Runtime 只收 numpy，不收 torch 张量。",
    reference=_reference_run,
    cases=lambda: [Case(f"微型塔的 session，batch {b}", lambda f, b=b: f(_tiny_session(), _images(b)))
                   for b in (1, 4)],
    mutants=_session_mutants,
))


# ----------------------------------------------------------------------------- 09.3 trimming padding
def _token_batches():
    import cnclip_edu as cc

    return [("长短不一的三句", cc.tokenize(["红色的圆形", "两个蓝色的三角形和一个绿色的正方形", "黄色"])),
            ("一句很长、被截断的（没有 [PAD]）", cc.tokenize(["猫" * 80])),
            ("只有一句短的", cc.tokenize(["紫色"]))]


def _trim_mutants() -> dict:
    import torch

    def shortest(tokens):
        return tokens[:, :int((tokens != 0).sum(1).min())]

    def drops_sep(tokens):
        return tokens[:, :int((tokens != 0).sum(1).max()) - 1]

    def first_row(tokens):
        return tokens[:, :int((tokens[0] != 0).sum())]

    def no_trim(tokens):
        return torch.as_tensor(tokens)

    return {"按最短的一句截（截掉了别人的字）": shortest, "少了 1（[SEP] 被截掉）": drops_sep,
            "只看第一句的长度": first_row, "没有截": no_trim}


def _reference_trim(tokens):
    from cnclip_edu.deploy.onnx_runner import trim_padding

    return trim_padding(tokens)


register(Exercise(
    id="09.3", title="截掉多余的 padding (trim_padding)", points=2,
    hint="一批里最长的那一句决定保留几列：先找出每一列是否还有任何一句的真实 token（!= 0），"
         "保留到最后一个这样的列为止（含 [SEP]）。按最短的截会丢掉别人的字。",
    reference=_reference_trim,
    cases=lambda: [Case(label, lambda f, t=t: f(t.clone())) for label, t in _token_batches()],
    mutants=_trim_mutants,
))


# ----------------------------------------------------------------------------- 09.4 int8 rounding
def _weights():
    import torch

    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, generator=g) * 0.05
    skew = torch.randn(32, generator=g).abs() * 0.01
    skew[3] = -0.2  # the largest magnitude is negative
    return [("一个 16×8 的权重矩阵", w), ("最大绝对值是负数的向量", skew)]


def _roundtrip_mutants() -> dict:
    import torch

    def no_round(w):
        return w / (w.abs().max() / 127) * (w.abs().max() / 127)

    def uses_max_not_absmax(w):
        scale = w.max() / 127
        return torch.round(w / scale).clamp(-127, 127) * scale

    def uses_255(w):
        scale = w.abs().max() / 255
        return torch.round(w / scale).clamp(-127, 127) * scale

    def floor_not_round(w):
        scale = w.abs().max() / 127
        return torch.floor(w / scale).clamp(-127, 127) * scale

    return {"没有 round（没有量化）": no_round, "用 max 而不是绝对值的 max": uses_max_not_absmax,
            "除以 255（那是 uint8 的范围）": uses_255, "用 floor 而不是 round": floor_not_round}


def _reference_roundtrip(w):
    from cnclip_edu.deploy.optimize import int8_roundtrip

    return int8_roundtrip(w)


register(Exercise(
    id="09.4", title="int8 对称量化再还原 (quantize + dequantize)", points=2,
    hint="步长用绝对值的最大值除以 127（最大的权重是负数时，只看 max 会放不下它）；取整用 round 而不是 floor；"
         "最后把整数乘回步长，返回浮点张量。",
    reference=_reference_roundtrip,
    cases=lambda: [Case(label, lambda f, w=w: f(w.clone())) for label, w in _weights()],
    mutants=_roundtrip_mutants,
))


# ----------------------------------------------------------------------------- 09.5 padding left after trimming
def _reference_padding_fraction(tokens) -> float:
    from cnclip_edu.deploy.onnx_runner import trimmed_length

    return 1.0 - float((tokens != 0).sum()) / (tokens.shape[0] * trimmed_length(tokens))


def _padding_mutants() -> dict:
    def of_full_length(tokens):
        return 1.0 - float((tokens != 0).sum()) / tokens.numel()

    def real_fraction(tokens):
        return 1.0 - _reference_padding_fraction(tokens)

    def forgot_batch(tokens):
        from cnclip_edu.deploy.onnx_runner import trimmed_length

        return 1.0 - float((tokens != 0).sum()) / trimmed_length(tokens)

    return {"按 52 列算（没有截）": of_full_length, "算成了真实 token 的比例": real_fraction,
            "分母忘了乘 batch 大小": forgot_batch}


register(Exercise(
    id="09.5", title="截完之后还剩多少 padding", points=2,
    hint="截完后一共计算 B × L' 个位置（L' = trimmed_length(tokens)），其中真实 token 有 (tokens != 0).sum() 个；"
         "剩下的是 padding。",
    reference=_reference_padding_fraction,
    cases=lambda: [Case(label, lambda f, t=t: f(t.clone())) for label, t in _token_batches()[:1]] + [
        Case("32 条长短不一的商品标题", lambda f: f(_bench_batch()))],
    mutants=_padding_mutants,
))


def _bench_batch():
    import cnclip_edu as cc

    caps = ["一只橘色的猫趴在红色的沙发上", "白色连衣裙", "男士运动鞋透气跑步鞋", "草莓"]
    return cc.tokenize([caps[i % 4] for i in range(32)])


# ----------------------------------------------------------------------------- questions
register(Exercise(
    id="09.q1", title="int8 的步长 (scale)", points=1,
    hint="对称 int8 把 [-max|w|, +max|w|] 均匀地映到整数 -127 … 127：从 0 到 max|w| 一共 127 步。",
    reference=2.54 / 127,
    mutants=lambda: {"除以 255": 2.54 / 255, "除以 128": 2.54 / 128, "用了 2 × max|w| / 255": 5.08 / 255},
))

register(Exercise(
    id="09.q2", title="TensorRT 引擎被调用几次", points=1,
    hint="超过 max_batch 的 batch 被切成每块至多 max_batch 条，每块调用一次引擎；最后一块可以不满，但也要调用一次。",
    reference=3,
    mutants=lambda: {"40 // 16": 2, "每条一次": 40, "40 / 16": 2.5},
))
