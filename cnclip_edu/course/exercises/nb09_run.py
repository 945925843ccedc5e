"""Exercises 09.2 and 09.3 of notebook 09 (deployment): running an exported tower with ONNX Runtime, a
session run that first checks its input against what the session declares (09.2), and trimming the
padding columns of a token batch before the text tower (09.3).

The image session runs a tiny tower (one conv, one linear) exported once, lazily, in about a second
(`_tiny_image_onnx`, shared with 09.9 in nb09_search.py); the text session is a graph written by
hand (milliseconds).
"""
from __future__ import annotations

import functools
import random
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


@functools.lru_cache(maxsize=1)
def _tiny_image_onnx() -> bytes:
    """The tiny tower exported once (batch dynamic), shared by 09.2 and 09.9."""
    from cnclip_edu.deploy.export import export_program

    tower, example = _tiny_tower()
    with tempfile.TemporaryDirectory() as tmp:
        export_program(tower, "image", example).save(str(Path(tmp) / "tiny.onnx"))
        return (Path(tmp) / "tiny.onnx").read_bytes()


@functools.lru_cache(maxsize=1)
def _tiny_session():
    import onnxruntime as ort

    return ort.InferenceSession(_tiny_image_onnx(), providers=["CPUExecutionProvider"])

# ----------------------------------------------------------------------------- 09.2 a checked session run
@functools.lru_cache(maxsize=1)
def _tiny_text_session():
    """A tiny text graph written by hand (milliseconds, no export): input 'text', int64, ('batch', 'length')
    -> 'text_features' (batch, 5), the mean of the ids' rows of a (30, 5) table."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32), "table")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "text"], ["rows"]),                            # (B, L, 5)
         helper.make_node("ReduceMean", ["rows", "axes"], ["text_features"], keepdims=0)],  # (B, 5)
        "tiny_text", [helper.make_tensor_value_info("text", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("text_features", TensorProto.FLOAT, ["batch", 5])], [table, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8                                    # IR 8 carries opset 18; a newer IR may be past this onnxruntime
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _feed(kind: str, shape: tuple, dtype: str):
    """A numpy input for the tiny image ('image') or text ('text') session: this shape and dtype."""
    import numpy as np

    rng = np.random.default_rng(sum(shape) + len(dtype))
    if kind == "text":
        return rng.integers(1, 30, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _run_case(label: str, kind: str, shape: tuple, dtype: str) -> Case:
    """Run the answer on one input; a refusal is judged by its type and whether its message names the input
    and what came (the shape as a tuple for a ValueError, the dtype's name for a TypeError)."""
    def run(f):
        session = _tiny_session() if kind == "image" else _tiny_text_session()
        x = _feed(kind, shape, dtype)
        try:
            return f(session, x)
        except NotImplementedError:
            raise
        except (ValueError, TypeError) as err:
            said = str(err)
            got = str(tuple(shape)) if isinstance(err, ValueError) else dtype
            return {"报错类型": type(err).__name__, "报错里有输入名": session.get_inputs()[0].name in said,
                    "报错里有实际给的": got in said}
        except Exception as err:  # noqa: BLE001 - ONNX Runtime's own refusal, or a mistake in the answer
            return f"没有先检查：{type(err).__name__}"
    return Case(label, run)


def _run_cases():
    return [_run_case("微型视觉塔，batch 1", "image", (1, 3, 8, 8), "float32"),
            _run_case("微型视觉塔，batch 4", "image", (4, 3, 8, 8), "float32"),
            _run_case("微型文本塔（int64 id），(3, 5)：长度也是动态维", "text", (3, 5), "int64"),
            _run_case("忘了 batch 维的一张图 (3, 8, 8)（应当 ValueError）", "image", (3, 8, 8), "float32"),
            _run_case("分辨率不对的图 (2, 3, 16, 16)（应当 ValueError）", "image", (2, 3, 16, 16), "float32"),
            _run_case("float64 的像素（numpy 的默认类型，应当 TypeError）", "image", (2, 3, 8, 8), "float64"),
            _run_case("float32 的 token id（应当 TypeError）", "text", (2, 4), "float32")]


def _run_hidden(seed: int):
    rng = random.Random(seed)
    b, n, length = rng.randint(2, 40), rng.randint(1, 9), rng.randint(1, 12)
    kind = rng.choice(["image", "text"])
    return [_run_case("微型视觉塔，另一个 batch 大小", "image", (b, 3, 8, 8), "float32"),
            _run_case("微型文本塔，另一个形状", "text", (n, length), "int64"),
            _run_case("另一个分辨率不对的图", "image", (n, 3, rng.choice([4, 7, 9, 32]), 8), "float32"),
            _run_case("少了一维的输入", kind, rng.choice([(3, 8, 8), (8,)]), "float32" if kind == "image" else "int64"),
            _run_case("图像输入的类型不对", "image", (n, 3, 8, 8), rng.choice(["float64", "float16", "int64"])),
            _run_case("文本输入的类型不对", "text", (n, length), rng.choice(["int32", "float32", "float64"]))]


def _session_mutants() -> dict:
    import numpy as np
    import torch

    def just_run(session, x):  # the two-liner: ONNX Runtime's own error for a bad input
        return session.run(None, {session.get_inputs()[0].name: x})[0]

    def make(*, shape=True, dtype=True, all_dims=False, cast=False, dtype_value_error=False, vague=False,
             as_list=False, torch_in=False, name=None):
        def answer(session, x):
            inp = session.get_inputs()[0]
            if shape:
                bad = len(x.shape) != len(inp.shape) or any(
                    (all_dims or isinstance(d, int)) and d != g for d, g in zip(inp.shape, x.shape))
                if bad:
                    raise ValueError("bad shape" if vague else f"{inp.name}: expected {inp.shape}, got {tuple(x.shape)}")
            want = {"tensor(float)": np.float32, "tensor(int64)": np.int64}[inp.type]
            if cast:
                x = x.astype(want)
            elif dtype and x.dtype != want:
                err = ValueError if dtype_value_error else TypeError
                raise err("bad dtype" if vague else f"{inp.name}: expected {np.dtype(want).name}, got {x.dtype}")
            out = session.run(None, {name or inp.name: torch.from_numpy(x) if torch_in else x})
            return out if as_list else out[0]
        return answer

    return {"没有检查，直接运行（ONNX Runtime 自己报一个难懂的错）": just_run,
            "只查了形状，没查类型": make(dtype=False),
            "只查了类型，没查形状": make(shape=False),
            "把动态维也当成固定的比（'batch'、'length' 不等于任何数）": make(all_dims=True),
            "类型不对时悄悄转换，而不是报错": make(cast=True),
            "类型不对时报 ValueError（应当是 TypeError）": make(dtype_value_error=True),
            "报错没说是哪个输入、实际给了什么": make(vague=True),
            "返回了整个列表（忘了 [0]）": make(as_list=True),
            "喂了 torch 张量而不是 numpy": make(torch_in=True),
            "输入名写死成 input": make(name="input")}


def _reference_run(session, x):
    from cnclip_edu.deploy.onnx_runner import run_checked

    return run_checked(session, x)


register(Exercise(
    id="09.2", title="检查输入、运行 session (InferenceSession.run)", points=3,
    hint="session 自己知道它要什么：get_inputs()[0] 有名字、形状（固定的维是数，动态的维是名字）和类型。"
         "先对照它检查：维数不对、固定的维不对是 ValueError，类型不对是 TypeError（不要悄悄转换），"
         "报错里写上输入名和实际给的；然后用这个名字喂 numpy 数组，返回值是列表，要的是第一个输出本身。",
    reference=_reference_run,
    cases=_run_cases,
    mutants=_session_mutants,
    hidden=_run_hidden,
    builds=("cnclip_edu.deploy.onnx_runner.run_checked", "cnclip_edu.deploy.onnx_runner.check_feed",
            "cnclip_edu.deploy.onnx_runner.run_session"),
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
    hidden=lambda seed: [Case(label, lambda f, t=t: f(t.clone())) for label, t in _hidden_token_batches(seed)],
    builds=("cnclip_edu.deploy.onnx_runner.trim_padding", "cnclip_edu.deploy.onnx_runner.trimmed_length"),
))


def _hidden_token_batches(seed: int):
    """Random captions of random lengths, one batch whose longest caption is not the first, one truncated."""
    import cnclip_edu as cc

    rng = random.Random(seed)
    chars = "红橙黄绿青蓝紫黑白灰圆形方三角星两个一在左右上下的和"
    caps = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(rng.randint(3, 7))]
    longest = max(caps, key=len)
    caps.remove(longest)
    caps.insert(rng.randint(1, len(caps)), longest)  # the longest one somewhere after the first
    return [("长短不一的几句（最长的不在第一句）", cc.tokenize(caps)),
            ("混进一句被截断的长句", cc.tokenize(caps[:2] + ["猫" * rng.randint(60, 90)]))]
