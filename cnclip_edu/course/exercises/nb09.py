"""Notebook 09 (deployment): the export call, a session run, trimming padding, int8 rounding, a Linear layer
as ONNX Runtime's dynamic int8 computes it (u8 x s8 -> int32), and the TensorRT build: the optimization
profile and the builder calls, run on a recording stand-in for `tensorrt` (deploy/trt_recorder.py) where
there is no GPU. Export cases run on a tiny tower (one conv, one linear) so an export takes about a
second; TensorRT cases on ONNX files that hold only the inputs (`signature_onnx`), in milliseconds."""
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


# ----------------------------------------------------------------------------- 09.1 the export call (text tower)
def _tiny_text_tower(context_length: int):
    """A 'text tower' with one input x (B, L) int64 ids -> (B, 5). Its position table has exactly
    `context_length` rows, as a model trained on captions of at most that many tokens."""
    import torch
    from torch import nn

    class TinyTextTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(30, 8)
            self.pos = nn.Parameter(torch.randn(context_length, 8) * 0.1)  # (context_length, 8)
            self.proj = nn.Linear(8, 5)

        def forward(self, x):
            h = self.tok(x) + self.pos[: x.shape[1]]                       # (B, L, 8)
            return self.proj(h.mean(1))                                    # (B, 5)

    torch.manual_seed(context_length)
    example = torch.randint(1, 30, (2, context_length), generator=torch.Generator().manual_seed(1))
    return TinyTextTower().eval(), example                            # the example: batch 2, full length


def _ids(b: int, length: int):
    import numpy as np

    return np.random.default_rng(b * 100 + length).integers(1, 30, (b, length), dtype=np.int64)  # (B, L)


def _reference_export(tower, example, path, context_length):
    """The library's export of one text tower (what export_onnx does): batch and length symbolic."""
    from cnclip_edu.deploy.export import export_program

    program = export_program(tower, "text", example[:, :context_length])
    program.save(str(path))
    return program


def _declared_ranges(program) -> object:
    """(min, max) of every axis of the input as torch.export recorded it, read from the returned ONNXProgram."""
    exported = getattr(program, "exported_program", None)
    if exported is None:
        return f"没有返回 torch.onnx.export 的结果（得到的是 {type(program).__name__}）"
    x = [n for n in exported.graph.nodes if n.op == "placeholder"][-1].meta["val"]   # the user input, last
    ranges = []
    for d in x.shape:
        if isinstance(d, int):
            ranges.append(f"固定为 {d}")
        else:
            r = exported.range_constraints.get(d.node.expr)
            ranges.append(f"{r.lower} 到 {r.upper}" if r is not None else "?")
    return ranges


def _export_report(export_fn, context_length: int = 12, shapes: tuple = ((1, 3), (3, 12))) -> dict:
    """Export the tiny text tower with `export_fn`, read back names, axes, dtype and declared ranges, run it."""
    import onnx
    import onnxruntime as ort

    tower, example = _tiny_text_tower(context_length)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny_text.onnx"
        program = export_fn(tower, example, str(path), context_length)
        graph = onnx.load(str(path)).graph
        dims = graph.input[0].type.tensor_type.shape.dim
        # The new exporter tags every node with where it came from (pkg.torch.onnx.* metadata); the legacy
        # TorchScript tracer (dynamo=False) does not (and it silently bakes Python ints computed from shapes).
        new_exporter = any(p.key.startswith("pkg.torch.onnx") for n in graph.node for p in n.metadata_props)
        report = {"导出器": "新导出器 (dynamo=True)" if new_exporter else "旧导出器 (TorchScript tracer, dynamo=False)",
                  "输入的各维": [f"动态，名字 {d.dim_param!r}" if d.dim_param else f"固定为 {d.dim_value}" for d in dims],
                  "输入类型": onnx.TensorProto.DataType.Name(graph.input[0].type.tensor_type.elem_type),
                  "输入名 (input_names)": [i.name for i in graph.input],
                  "输出名 (output_names)": [o.name for o in graph.output],
                  "声明的取值范围 (torch.export)": _declared_ranges(program)}
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for b, length in shapes:
            try:
                report[f"输入 ({b}, {length}) 的输出"] = session.run(None, {graph.input[0].name: _ids(b, length)})[0]
            except Exception as err:  # a fixed axis: ONNX Runtime refuses the shape
                report[f"输入 ({b}, {length}) 的输出"] = f"无法运行：{type(err).__name__}"
    return report


@functools.lru_cache(maxsize=4)
def _reference_report(context_length: int, shapes: tuple) -> dict:
    return _export_report(_reference_export, context_length, shapes)


def _report_case(export_fn, context_length: int = 12, shapes: tuple = ((1, 3), (3, 12))) -> dict:
    if export_fn is _reference_export:
        return _reference_report(context_length, shapes)
    return _export_report(export_fn, context_length, shapes)


def _export_mutants() -> dict:
    import torch

    batch = torch.export.Dim("batch", min=1, max=65536)

    def fixed_length(tower, example, path, context_length):
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                                 output_names=["text_features"], dynamic_shapes={"x": {0: batch}})

    def length_up_to_4096(tower, example, path, context_length):
        length = torch.export.Dim("length", min=1, max=4096)
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                                 output_names=["text_features"], dynamic_shapes={"x": {0: batch, 1: length}})

    def length_without_max(tower, example, path, context_length):
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                                 output_names=["text_features"],
                                 dynamic_shapes={"x": {0: batch, 1: torch.export.Dim("length", min=1)}})

    def right_but_no_return(tower, example, path, context_length):
        length = torch.export.Dim("length", min=1, max=context_length)
        torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                          output_names=["text_features"], dynamic_shapes={"x": {0: batch, 1: length}})

    def other_dim_names(tower, example, path, context_length):  # right ranges, but the file says 'B' and 'L'
        b, length = torch.export.Dim("B", min=1, max=65536), torch.export.Dim("L", min=1, max=context_length)
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                                 output_names=["text_features"], dynamic_shapes={"x": {0: b, 1: length}})

    def wrong_input_name(tower, example, path, context_length):
        length = torch.export.Dim("length", min=1, max=context_length)
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["input"],
                                 output_names=["text_features"], dynamic_shapes={"x": {0: batch, 1: length}})

    def legacy_exporter(tower, example, path, context_length):
        return torch.onnx.export(tower, (example,), path, dynamo=False, input_names=["text"],
                                 output_names=["text_features"],
                                 dynamic_axes={"text": {0: "batch", 1: "length"}})

    return {"只声明了 batch，长度维被固定成示例的长度": fixed_length,
            "长度上限写成 4096（位置向量表只有 context_length 行）": length_up_to_4096,
            "长度维没有上限": length_without_max, "没有 return 导出的结果": right_but_no_return,
            "输入名写成了 input": wrong_input_name,
            "动态维的名字写成 B 和 L（文件里的形状是 ['B', 'L']，不是约定的 ['batch', 'length']）": other_dim_names,
            "用了旧导出器 (dynamo=False) + dynamic_axes": legacy_exporter}


def _hidden_export_cases(seed: int):
    rng = random.Random(seed)
    ctx = rng.randint(6, 16)
    shapes = ((rng.randint(1, 5), rng.randint(1, ctx - 1)), (rng.randint(2, 9), ctx))
    return [Case("另一个 context_length 的微型文本塔：读回各维和范围，用另外几个形状运行",
                 lambda f, ctx=ctx, shapes=shapes: _report_case(f, ctx, shapes))]


register(Exercise(
    id="09.1", title="导出文本塔：两个动态维 (torch.onnx.export)", points=3,
    hint="要用新导出器；输入名、输出名都要给；batch 和长度两维都要声明成动态的（符号的名字就是文件里形状上写的字符串，"
         "按约定叫 batch 和 length），声明时用 forward 的参数名，"
         "不是导出后的输入名。长度的上限想一想：位置向量表有几行？最后把 torch.onnx.export 的返回值 return 出去。",
    reference=_reference_export,
    cases=lambda: [Case("微型文本塔 (context_length 12)：读回名字、各维、类型和声明的范围，用 (1, 3) 和 (3, 12) 运行",
                        _report_case)],
    mutants=_export_mutants,
    hidden=_hidden_export_cases,
    builds=("cnclip_edu.deploy.export.export_program", "cnclip_edu.deploy.export.export_onnx"),
))


@functools.lru_cache(maxsize=1)
def _tiny_image_onnx() -> bytes:
    """The tiny tower exported once (batch dynamic), shared by 09.2 and 09.8."""
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


# ----------------------------------------------------------------------------- 09.4 int8 rounding
def _weights():
    import torch

    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, generator=g) * 0.05
    skew = torch.randn(32, generator=g).abs() * 0.01
    skew[3] = -0.2  # the largest magnitude is negative
    return [("一个 16×8 的权重矩阵", w), ("最大绝对值是负数的向量", skew),
            ("全为 0 的张量（缩放系数会是 0）", torch.zeros(4, 6))]


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

    def zero_scale_nan(w):  # right on every tensor but the all-zero one: 0 / 0 -> NaN
        scale = w.abs().max() / 127
        return torch.round(w / scale).clamp(-127, 127) * scale

    return {"没有 round（没有量化）": no_round, "用 max 而不是绝对值的 max": uses_max_not_absmax,
            "除以 255（那是 uint8 的范围）": uses_255, "用 floor 而不是 round": floor_not_round,
            "全为 0 时除以 0（得到 NaN）": zero_scale_nan}


def _reference_roundtrip(w):
    from cnclip_edu.deploy.optimize import int8_roundtrip

    return int8_roundtrip(w)


register(Exercise(
    id="09.4", title="int8 对称量化再还原 (quantize + dequantize)", points=2,
    hint="缩放系数要让绝对值最大的元素（可能是负数）正好落在整数网格的端点上；取整要就近，不是向下；"
         "最后把整数乘回缩放系数，返回浮点张量。全为 0 的张量没有最大值可以定缩放系数：别让它除以 0。",
    reference=_reference_roundtrip,
    cases=lambda: [Case(label, lambda f, w=w: f(w.clone())) for label, w in _weights()],
    mutants=_roundtrip_mutants,
    hidden=lambda seed: [Case(label, lambda f, w=w: f(w.clone())) for label, w in _hidden_weights(seed)],
    builds=("cnclip_edu.deploy.optimize.int8_roundtrip", "cnclip_edu.deploy.int8_linear.quantize_weight"),
))


def _hidden_weights(seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    rows, cols = (int(v) for v in torch.randint(2, 40, (2,), generator=g))
    w = torch.randn(rows, cols, generator=g) * 0.02
    i, j = int(torch.randint(rows, (), generator=g)), int(torch.randint(cols, (), generator=g))
    w[i, j] = -0.3  # the largest magnitude is negative
    return [("一个随机大小的权重矩阵（绝对值最大的是负数）", w), ("一个全为正的权重向量", w.abs().flatten()[:50]),
            ("一个随机大小的全 0 张量", torch.zeros(cols, rows))]




# ----------------------------------------------------------------------------- 09.5 a Linear in dynamic int8
def _linear_inputs(seed: int, n: int, k: int, m: int, kind: str):
    """(x (n, k), weight (m, k), bias (m,)) with the activations of one kind; the largest |weight| is negative."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=g) * 2
    if kind == "positive":
        x = x.abs() + 0.05  # after a ReLU / GELU-like block: nothing below 0
    elif kind == "negative":
        x = -x.abs() - 0.05
    elif kind == "zero":
        x = torch.zeros(n, k)
    elif kind == "outlier":
        x[int(torch.randint(n, (), generator=g)), int(torch.randint(k, (), generator=g))] = 40.0
    elif kind == "large":  # long rows of large same-sign products: |acc| > 2**24, where float32 stops being exact
        x = torch.rand(n, k, generator=g) * 0.5 + 0.5
        return x, torch.rand(m, k, generator=g) * 0.05 + 0.30, torch.randn(m, generator=g) * 0.1
    w = torch.randn(m, k, generator=g) * 0.05
    w[int(torch.randint(m, (), generator=g)), int(torch.randint(k, (), generator=g))] = -0.35
    return x, w, torch.randn(m, generator=g) * 0.1


def _linear_case(label: str, seed: int, n: int, k: int, m: int, kind: str, bias: bool = True) -> Case:
    def run(f):
        x, w, b = _linear_inputs(seed, n, k, m, kind)
        y, acc = f(x, w, b if bias else None)
        return {"y": y, "acc（整数累加）": acc}
    return Case(label, run)


def _linear_cases():
    return [_linear_case("一批正负都有的激活 (5×64) 乘 (16×64) 的权重", 0, 5, 64, 16, "mixed"),
            _linear_case("全为正的激活（比如 GELU 之后）", 1, 4, 32, 8, "positive"),
            _linear_case("全为负的激活", 2, 3, 32, 8, "negative"),
            _linear_case("全为 0 的一批", 3, 2, 16, 4, "zero"),
            _linear_case("一个很大的离群值 (outlier)，没有 bias", 4, 6, 48, 12, "outlier", bias=False),
            _linear_case("很长的一行 (K = 2048)：累加和超过 2**24，float32 不再能精确表示每个整数", 5, 3, 2048, 4, "large")]


def _linear_hidden(seed: int):
    rng = random.Random(seed)
    kinds = [("正负都有的激活，随机大小", "mixed"), ("全为正的激活，随机大小", "positive"),
             ("全为负的激活，随机大小", "negative"), ("带离群值的激活，随机大小", "outlier")]
    return [_linear_case(label, rng.randrange(1 << 30), rng.randint(1, 9), rng.randint(24, 96), rng.randint(1, 20), kind)
            for label, kind in kinds] + [_linear_case("全为 0 的一批，随机大小", rng.randrange(1 << 30),
                                                      rng.randint(1, 4), rng.randint(4, 32), rng.randint(1, 8), "zero"),
                                   _linear_case("很长的一行，累加和超过 2**24，随机大小", rng.randrange(1 << 30),
                                                rng.randint(2, 4), rng.randint(2048, 3072), rng.randint(3, 6), "large")]


def _reference_int8_linear(x, weight, bias):
    from cnclip_edu.deploy.int8_linear import dynamic_int8_linear

    return dynamic_int8_linear(x, weight, bias)


def _int8_linear_mutants() -> dict:
    import torch

    def make(*, range_without_zero=False, per_row=False, symmetric_act=False, forget_zp=False, w_max=False,
             w_255=False, float_acc=False, float_acc_cast=False, uint8_subtract=False, narrow_acc=False):
        def answer(x, weight, bias):
            w_scale = (weight.max() if w_max else weight.abs().max()) / (255 if w_255 else 127)
            w_q = torch.round(weight / w_scale).clamp(-127, 127).to(torch.int8)
            if symmetric_act:  # int8 activations, no zero point: s8 x s8
                x_scale = x.abs().max() / 127
                x_q, zp = torch.round(x / x_scale).clamp(-127, 127).to(torch.int32), torch.tensor(0)
            else:
                dims = dict(dim=1, keepdim=True) if per_row else {}
                lo = x.amin(**dims) if range_without_zero else torch.clamp(x.amin(**dims), max=0.0)
                hi = x.amax(**dims) if range_without_zero else torch.clamp(x.amax(**dims), min=0.0)
                x_scale = (hi - lo) / 255
                x_scale = torch.where(x_scale == 0, torch.ones_like(x_scale), x_scale)
                zp = torch.round(-lo / x_scale).clamp(0, 255)
                x_q = (torch.round(x / x_scale) + zp).clamp(0, 255).to(torch.uint8)
                zp = zp.to(torch.uint8)
            if forget_zp:
                a = x_q.to(torch.int32)
            elif uint8_subtract:
                a = (x_q - zp).to(torch.int32)  # wraps around below 0
            else:
                a = x_q.to(torch.int32) - zp.to(torch.int32)
            if float_acc:
                acc = a.float() @ w_q.float().T
            elif float_acc_cast:  # exact only while every partial sum stays below 2**24
                acc = (a.float() @ w_q.float().T).round().to(torch.int32)
            elif narrow_acc:
                acc = a.to(torch.int16) @ w_q.to(torch.int16).T  # sums overflow int16
            else:
                acc = (a.to(torch.int64) @ w_q.to(torch.int64).T).to(torch.int32)
            y = acc.to(torch.float32) * (x_scale * w_scale)
            return (y + bias if bias is not None else y), acc
        return answer

    return {"激活的范围没有把 0 包进去（全正或全负的一批才出错）": make(range_without_zero=True),
            "激活按每一行量化，而不是整批一个缩放系数": make(per_row=True),
            "激活也用对称 int8（s8×s8，没有零点）": make(symmetric_act=True),
            "忘了减去零点": make(forget_zp=True),
            "权重的缩放系数用 max 而不是 max|w|": make(w_max=True),
            "权重除以 255（那是 uint8 的级数）": make(w_255=True),
            "在浮点里相乘（acc 不是整数）": make(float_acc=True),
            "在 float32 里累加再转成 int32（和超过 2**24 时丢掉末位）": make(float_acc_cast=True),
            "在 uint8 里减零点（负数回绕成大正数）": make(uint8_subtract=True),
            "用 int16 累加（溢出）": make(narrow_acc=True)}


register(Exercise(
    id="09.5", title="动态 int8 的一层 Linear (u8 × s8 → int32)", points=4,
    hint="权重：对称 int8，一个张量一个缩放系数 max|w| / 127，零点是 0。激活：运行时按整批的范围量化成 uint8，"
         "范围要把 0 包进去（全是正数时下限也是 0），缩放系数 = 范围 / 255，零点是代表 0.0 的那个整数；"
         "范围为 0 时（全 0 的一批）不能去除。相乘前先转成足够宽的整数类型再减零点，累加必须是 int32，"
         "最后乘上两个缩放系数的积、加上 bias（bias 可能是 None）。",
    reference=_reference_int8_linear,
    cases=_linear_cases,
    mutants=_int8_linear_mutants,
    hidden=_linear_hidden,
    builds=("cnclip_edu.deploy.int8_linear.dynamic_int8_linear", "cnclip_edu.deploy.int8_linear.quantize_activation",
            "cnclip_edu.deploy.int8_linear.quantize_weight"),
))


# ----------------------------------------------------------------------------- 09.6 the optimization profile
def _reference_profile(shape, context_length, max_batch, opt_batch=None, opt_length=None):
    from cnclip_edu.deploy.trt import profile_shapes

    tower = "text" if len(shape) == 2 else "image"
    return profile_shapes(shape, {"tower": tower, "context_length": str(context_length)}, 1, opt_batch, max_batch,
                          opt_length=opt_length)


def _profile_case(label: str, shape, context_length: int, max_batch: int, opt_batch=None, opt_length=None) -> Case:
    def run(f):
        try:
            out = f(tuple(shape), context_length, max_batch, opt_batch, opt_length=opt_length)
        except ValueError:
            return "ValueError（拒绝了这个输入）"
        return [list(int(d) for d in s) for s in out]  # (min, opt, max), tuples or lists alike
    return Case(label, run)


def _profile_cases():
    return [_profile_case("图像输入 (-1, 3, 224, 224)，max_batch 128", (-1, 3, 224, 224), 52, 128),
            _profile_case("文本输入 (-1, -1)，context 52，max_batch 64，opt_batch 8", (-1, -1), 52, 64, 8),
            _profile_case("长度固定的文本输入 (-1, 52)", (-1, 52), 52, 32),
            _profile_case("max_batch = 1", (-1, -1), 24, 1),
            _profile_case("在线搜索那样的文本配置：opt_batch 1，opt_length 16", (-1, -1), 52, 64, 1, 16),
            _profile_case("opt_length 大于 context_length（应当报 ValueError）", (-1, -1), 52, 64, 1, 60),
            _profile_case("opt_batch 大于 max_batch（应当报 ValueError）", (-1, -1), 52, 16, 32),
            _profile_case("分辨率也是动态的图像输入 (-1, 3, -1, -1)（应当报 ValueError）", (-1, 3, -1, -1), 52, 8),
            _profile_case("batch 固定为 1 的图像输入 (1, 3, 224, 224)（应当报 ValueError）", (1, 3, 224, 224), 52, 8)]


def _profile_hidden(seed: int):
    rng = random.Random(seed)
    L, r, mb = rng.randint(8, 77), rng.choice([16, 32, 64, 224, 336]), rng.randint(2, 256)
    return [_profile_case("随机分辨率的图像输入", (-1, 3, r, r), L, mb, rng.choice([None, rng.randint(1, mb)])),
            _profile_case("随机 context 长度的文本输入", (-1, -1), L, mb, rng.choice([None, rng.randint(1, mb)])),
            _profile_case("长度固定的文本输入", (-1, L), L, mb),
            _profile_case("给了 opt_length 的文本输入", (-1, -1), L, mb, rng.randint(1, mb), rng.randint(1, L - 1)),
            _profile_case("opt_length 超出长度范围", (-1, -1), L, mb, None, L + rng.randint(1, 9)),
            _profile_case("opt_batch 大于 max_batch", (-1, -1), L, mb, mb + rng.randint(1, 9)),
            _profile_case("还有别的动态维", (-1, 3, -1, r), L, mb),
            _profile_case("batch 固定的输入", rng.choice([(rng.randint(1, 8), 3, r, r), (rng.randint(1, 8), -1)]), L, mb)]


def _profile_mutants() -> dict:
    def make(*, swap_min_opt=False, max_len_minus_1=False, min_len_full=False, fixed_min_1=False,
             text_axis_always=False, opt_default_1=False, no_check=False, all_dynamic_as_length=False,
             fixed_batch="raise", ignore_opt_length=False, no_length_check=False, length_max_is_opt=False):
        def answer(shape, context_length, max_batch, opt_batch=None, opt_length=None):
            if shape[0] >= 0 and fixed_batch == "raise":
                raise ValueError("the batch axis is fixed")
            opt_batch = opt_batch or (1 if opt_default_1 else max_batch)
            if not no_check and not 1 <= opt_batch <= max_batch:
                raise ValueError("need 1 <= opt_batch <= max_batch")
            lo, opt, hi = [1], [opt_batch], [max_batch]
            if shape[0] >= 0 and fixed_batch == "itself":
                lo, opt, hi = [shape[0]], [shape[0]], [shape[0]]
            for axis, d in enumerate(shape[1:], start=1):
                is_length = (axis == 1 and len(shape) == 2 and (d < 0 or text_axis_always)) or \
                    (all_dynamic_as_length and d < 0)
                if is_length:
                    length = context_length if ignore_opt_length else (opt_length or context_length)
                    if not no_length_check and not 1 <= length <= context_length:
                        raise ValueError("need 1 <= opt_length <= context_length")
                    lo.append(context_length if min_len_full else 1)
                    opt.append(length)
                    hi.append(length if length_max_is_opt else context_length - 1 if max_len_minus_1 else context_length)
                elif d >= 0:
                    lo.append(1 if fixed_min_1 else d)
                    opt.append(d)
                    hi.append(d)
                else:
                    raise ValueError(f"axis {axis} is dynamic")
            if swap_min_opt:
                lo, opt = opt, lo
            return tuple(lo), tuple(opt), tuple(hi)
        return answer

    return {"min 和 opt 写反了（min > opt）": make(swap_min_opt=True),
            "长度的 max 写成 context_length - 1（最长的句子放不进）": make(max_len_minus_1=True),
            "长度的 min 也是 context_length（截过 padding 的短句跑不了）": make(min_len_full=True),
            "固定的维也给了从 1 开始的范围": make(fixed_min_1=True),
            "文本的第 1 维一律当成长度（长度固定的图才出错）": make(text_axis_always=True),
            "opt_batch 默认取 1": make(opt_default_1=True),
            "没有检查 1 <= opt_batch <= max_batch": make(no_check=True),
            "把所有动态维都当成长度": make(all_dynamic_as_length=True),
            "batch 固定时照样给 (1, opt_batch, max_batch)（TensorRT 不能用这个 profile）": make(fixed_batch="range"),
            "batch 固定时给 (d, d, d)，没有报错（max_batch 被悄悄忽略）": make(fixed_batch="itself"),
            "没理会 opt_length（长度的 opt 总是 context_length）": make(ignore_opt_length=True),
            "没有检查 1 <= opt_length <= context_length": make(no_length_check=True),
            "长度的 max 也取了 opt_length（比 opt 长的句子放不进）": make(length_max_is_opt=True)}


register(Exercise(
    id="09.6", title="TensorRT 的优化配置 (optimization profile)", points=3,
    hint="逐维想：min 和 max 是服务要能跑的范围（batch 1 到 max_batch；文本长度从截过 padding 的最短 1 到 context_length），"
         "opt 是调用者选的形状（opt_batch / opt_length，不给时取最大），要在 [1, max] 里，否则报 ValueError；"
         "固定的维三个数都等于它自己；第 0 维固定、或有 batch 和文本长度以外的动态维时，给不出合法的配置，报 ValueError。",
    reference=_reference_profile,
    cases=_profile_cases,
    mutants=_profile_mutants,
    hidden=_profile_hidden,
    builds=("cnclip_edu.deploy.trt.profile_shapes", "cnclip_edu.deploy.trt.plan_profile"),
))


# ----------------------------------------------------------------------------- 09.7 the TensorRT build
def _reference_build(trt, onnx_path, engine_path, context_length, max_batch, workspace_gib=1.0):
    from cnclip_edu.deploy.trt import build_plan

    build_plan(trt, trt.Logger(trt.Logger.WARNING), onnx_path, engine_path,
               lambda shape: _reference_profile(shape, context_length, max_batch), workspace_gib=workspace_gib)


def _build_case(label: str, inputs: dict | None, context_length: int, max_batch: int,
                workspace_gib: float = 1.0) -> Case:
    """Run the answer on the recording stand-in with an ONNX file holding `inputs` (None: a broken file)."""
    def run(f):
        from cnclip_edu.deploy.trt_recorder import RecordingTensorRT, signature_onnx

        rec = RecordingTensorRT()
        with tempfile.TemporaryDirectory() as tmp:
            src, engine = Path(tmp) / "tower.onnx", Path(tmp) / "tower.engine"
            if inputs is None:
                src.write_bytes(b"\x08\x07 not an ONNX file")
                try:
                    f(rec, str(src), str(engine), context_length, max_batch, workspace_gib)
                    raised = False
                except NotImplementedError:
                    raise
                except Exception:  # noqa: BLE001 - any error stops the build; what matters is where
                    raised = True
                return {"报错了": raised, "调用 build_serialized_network 的次数": rec.build_calls,
                        "写出了引擎文件": engine.exists()}
            signature_onnx(src, inputs, {"tower": "text" if len(next(iter(inputs.values()))) == 2 else "image"})
            f(rec, str(src), str(engine), context_length, max_batch, workspace_gib)
            return {**rec.summary(), "写出的文件就是 build_serialized_network 返回的 plan": rec.wrote_plan(engine)}
    return Case(label, run)


def _build_cases():
    return [_build_case("文本塔 (-1, -1)，context 52，max_batch 64", {"text": (-1, -1)}, 52, 64),
            _build_case("视觉塔 (-1, 3, 32, 32)，max_batch 16，工作区 0.5 GiB", {"image": (-1, 3, 32, 32)}, 52, 16, 0.5),
            _build_case("两个输入的文本图 (input_ids, attention_mask)",
                        {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, 24, 8),
            _build_case("坏掉的 ONNX 文件（解析失败）", None, 52, 8)]


def _build_hidden(seed: int):
    rng = random.Random(seed)
    L, r, mb, ws = rng.randint(8, 77), rng.choice([16, 32, 224]), rng.randint(1, 256), rng.choice([0.25, 1.0, 2.0, 4.0])
    return [_build_case("随机 context 长度和 max_batch 的文本塔", {"text": (-1, -1)}, L, mb, ws),
            _build_case("随机分辨率的视觉塔", {"image": (-1, 3, r, r)}, L, mb, ws),
            _build_case("长度固定的文本塔", {"text": (-1, L)}, L, mb, ws),
            _build_case("两个输入的图", {"input_ids": (-1, -1), "attention_mask": (-1, -1)}, L, mb, ws),
            _build_case("坏掉的 ONNX 文件", None, L, mb, ws)]


def _build_mutants() -> dict:
    def profile(shape, context_length, max_batch):
        return _reference_profile(shape, context_length, max_batch)

    def make(*, explicit_batch=False, no_flags=False, fp16_flag=False, check_parse=True, workspace="bytes",
             add_profile=True, name=None, first_input_only=False, profile_per_input=False, write="bytes"):
        def answer(trt, onnx_path, engine_path, context_length, max_batch, workspace_gib=1.0):
            logger = trt.Logger(trt.Logger.WARNING)
            builder = trt.Builder(logger)
            if explicit_batch:
                flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
            else:
                flags = 0 if no_flags else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, logger)
            ok = parser.parse_from_file(str(onnx_path))
            if check_parse and not ok:
                raise RuntimeError("parse failed")
            config = builder.create_builder_config()
            if workspace == "bytes":
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
            elif workspace == "float":
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib * 1024 ** 3)
            elif workspace == "gib":
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib))
            if fp16_flag:
                config.set_flag(trt.BuilderFlag.FP16)
            prof = builder.create_optimization_profile()
            for i in range(1 if first_input_only else network.num_inputs):
                inp = network.get_input(i)
                if profile_per_input:
                    prof = builder.create_optimization_profile()
                prof.set_shape(name or inp.name, *profile(tuple(inp.shape), context_length, max_batch))
                if profile_per_input:
                    config.add_optimization_profile(prof)
            if add_profile and not profile_per_input:
                config.add_optimization_profile(prof)
            plan = builder.build_serialized_network(network, config)
            if plan is None:
                raise RuntimeError("build failed")
            if write == "bytes":
                Path(engine_path).write_bytes(bytes(plan))
            elif write == "str":
                Path(engine_path).write_text(str(plan))
        return answer

    return {"用了 EXPLICIT_BATCH 标志（TensorRT 8 的写法，10 起废弃）": make(explicit_batch=True),
            "创建网络时没有 STRONGLY_TYPED（精度不由图决定）": make(no_flags=True),
            "设了 BuilderFlag.FP16（强类型网络里不允许，11 已删除）": make(fp16_flag=True),
            "没有检查解析结果（坏文件也接着构建）": make(check_parse=False),
            "工作区上限的单位错了（GiB 数当成字节数）": make(workspace="gib"),
            "工作区上限是浮点数（TensorRT 只收整数字节）": make(workspace="float"),
            "没有设工作区上限": make(workspace=None),
            "profile 没有加进 config": make(add_profile=False),
            "形状设在了写死的输入名 'input' 上": make(name="input"),
            "只给第 0 个输入设了形状（两个输入的图才出错）": make(first_input_only=True),
            "每个输入一个 profile（两个输入的图才出错）": make(profile_per_input=True),
            "把 plan 转成字符串写进文件": make(write="str")}


register(Exercise(
    id="09.7", title="构建 TensorRT 引擎 (Builder → 网络 → 配置 → profile → plan)", points=5,
    hint="按顺序：Logger → Builder → create_network（TensorRT 10 起网络总是显式 batch，不要再用 EXPLICIT_BATCH；"
         "用 STRONGLY_TYPED，让精度由图决定）→ OnnxParser 解析文件，失败时把 get_error 的内容报出来、不要继续 → "
         "create_builder_config，工作区上限用字节数 → 一个 profile，给网络的**每一个**输入按它自己的名字和形状"
         "设 (min, opt, max)（用练习 09.6 的函数）→ 把 profile 加进 config → build_serialized_network，"
         "返回 None 表示失败 → 把 plan 的字节原样写进 engine_path。",
    reference=_reference_build,
    cases=_build_cases,
    mutants=_build_mutants,
    hidden=_build_hidden,
    builds=("cnclip_edu.deploy.trt.build_plan", "cnclip_edu.deploy.trt.build_engine"),
    needs=("09.6",),
))


# ----------------------------------------------------------------------------- 09.8 search from two files alone
_SEARCH_CONTEXT = 12  # the tiny text tower's position rows: the context length its metadata states


def _tiny_search_text_tower():
    """(B, L) BERT ids -> (B, 5): the mean of token + position vectors over the real tokens (padding-free)."""
    import torch
    from torch import nn

    class TinySearchText(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(21128, 4)                                   # the whole BERT vocabulary
            self.pos = nn.Parameter(torch.randn(_SEARCH_CONTEXT, 4))           # (context, 4)
            self.proj = nn.Linear(4, 5)

        def forward(self, x):
            h = self.tok(x) + self.pos[: x.shape[1]]                           # (B, L, 4)
            real = (x != 0).unsqueeze(-1).to(h.dtype)                          # (B, L, 1): [PAD] counts for nothing
            return self.proj((h * real).sum(1) / real.sum(1))                  # (B, 5)

    torch.manual_seed(3)
    return TinySearchText().eval()


@functools.lru_cache(maxsize=1)
def _search_models() -> tuple[bytes, bytes]:
    """The tiny image tower (B, 3, 8, 8) and text tower as ONNX bytes, without metadata (added per case)."""
    import cnclip_edu as cc
    from cnclip_edu.deploy.export import export_program

    text_example = cc.tokenize(["红色的圆形", "两个蓝色的三角形"], context_length=_SEARCH_CONTEXT)  # (2, 12)
    with tempfile.TemporaryDirectory() as tmp:
        export_program(_tiny_search_text_tower(), "text", text_example).save(str(Path(tmp) / "txt.onnx"))
        return _tiny_image_onnx(), (Path(tmp) / "txt.onnx").read_bytes()


def _search_sessions(mean, std):
    """Two CPU sessions whose files carry the metadata a deployed pair carries (this mean and std)."""
    import json

    import onnx
    import onnxruntime as ort

    out = []
    for blob, meta in zip(_search_models(), (
            {"tower": "image", "image_resolution": "8", "image_mean": json.dumps(mean), "image_std": json.dumps(std),
             "features": "unnormalized (L2-normalize before cosine similarity)"},
            {"tower": "text", "context_length": str(_SEARCH_CONTEXT), "pad_id": "0",
             "features": "unnormalized (L2-normalize before cosine similarity)"})):
        proto = onnx.load_from_string(blob)
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        out.append(ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]))
    return out


def _pictures(seed: int, n: int, gray: bool = True):
    """`n` random pictures of different sizes (none 8 x 8), RGB except one grayscale ('L') one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pics = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(5, 24, 2))
        base = rng.integers(0, 256, 3) * rng.uniform(0.1, 1.0)                 # a colour, dark to bright
        arr = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        pics.append(Image.fromarray(arr[..., 0], mode="L") if gray and i == 1 else Image.fromarray(arr, mode="RGB"))
    return pics


def _search_case(label: str, seed: int, n_pictures: int, queries: list[str], top_k: int,
                 mean=(0.2, 0.5, 0.7), std=(0.3, 0.2, 0.15)) -> Case:
    def run(f):
        image_session, text_session = _search_sessions(list(mean), list(std))
        idx, scores = f(image_session, text_session, _pictures(seed, n_pictures), list(queries), top_k)
        import numpy as np

        return {"每个查询选中的图片（下标，最好的在前）": np.asarray(idx).astype(np.int64).tolist(),
                "余弦相似度": np.asarray(scores, dtype=np.float32)}
    return Case(label, run)


def _search_cases():
    return [_search_case("6 张大小不一的图（有一张灰度图），3 个查询，top 2", 0, 6, ["红色的圆形", "一个蓝色的方块", "绿"], 2),
            _search_case("一个超过 context_length 的长查询，top 1", 1, 4, ["一个黄色的正方形在绿色的星星左边", "紫色"], 1),
            _search_case("另一组均值和标准差，5 个查询，top 3", 2, 5, ["圆", "三角形", "星星", "两个", "白色的背景"], 3,
                         mean=(0.6, 0.1, 0.4), std=(0.1, 0.35, 0.2))]


def _search_hidden(seed: int):
    rng = random.Random(seed)
    chars = "红橙黄绿青蓝紫黑白灰圆形方三角星两个一在左右上下的和"
    queries = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(2, 6))]
    mean = tuple(round(rng.uniform(0.1, 0.9), 3) for _ in range(3))
    std = tuple(round(rng.uniform(0.1, 0.4), 3) for _ in range(3))
    n = rng.randint(3, 9)
    return [_search_case("随机的图片、查询和均值、标准差", rng.randrange(1 << 30), n, queries, rng.randint(1, n), mean, std),
            _search_case("混进一个很长的查询", rng.randrange(1 << 30), n,
                         queries[:1] + ["".join(rng.choice(chars) for _ in range(rng.randint(15, 30)))], 1, mean, std)]


def _reference_search(image_session, text_session, pictures, queries, top_k):
    from cnclip_edu.deploy.search import search_from_metadata

    return search_from_metadata(image_session, text_session, pictures, queries, top_k)


def _search_mutants() -> dict:
    import json

    import numpy as np
    from PIL import Image

    import cnclip_edu as cc
    from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD

    def make(*, no_255=False, no_norm=False, clip_constants=False, reshape_chw=False, no_l2=False, l2_images_only=False,
             ascending=False, per_image=False, context_52=False, bilinear=False, no_rgb=False):
        def answer(image_session, text_session, pictures, queries, top_k):
            im = image_session.get_modelmeta().custom_metadata_map
            tm = text_session.get_modelmeta().custom_metadata_map
            r = int(im["image_resolution"])
            mean = np.array(CLIP_MEAN if clip_constants else json.loads(im["image_mean"]), dtype=np.float32)
            std = np.array(CLIP_STD if clip_constants else json.loads(im["image_std"]), dtype=np.float32)
            xs = []
            for p in pictures:
                p = p if no_rgb else p.convert("RGB")
                a = np.asarray(p.resize((r, r), Image.Resampling.BILINEAR if bilinear else Image.Resampling.BICUBIC),
                               dtype=np.float32)                               # (R, R, 3)
                a = a if no_255 else a / 255
                a = a if no_norm else (a - mean) / std
                xs.append(a.reshape(3, r, r) if reshape_chw else a.transpose(2, 0, 1))
            x = np.stack(xs).astype(np.float32)
            ids = cc.tokenize(list(queries), context_length=52 if context_52 else int(tm["context_length"]))
            ids = ids[:, :int((ids != 0).any(0).nonzero().max()) + 1].numpy()
            img = image_session.run(None, {image_session.get_inputs()[0].name: x})[0]
            txt = text_session.run(None, {text_session.get_inputs()[0].name: ids})[0]
            if not no_l2:
                img = img / np.linalg.norm(img, axis=1, keepdims=True)
                if not l2_images_only:
                    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
            sims = img @ txt.T if per_image else txt @ img.T
            order = np.argsort(sims if ascending else -sims, axis=1)[:, :top_k]
            return order, np.take_along_axis(sims, order, axis=1)
        return answer

    return {"像素没有除以 255": make(no_255=True), "没有减均值、除以标准差": make(no_norm=True),
            "用了库里 CLIP 的均值和标准差，而不是元数据里的": make(clip_constants=True),
            "用 reshape 而不是 transpose 把 (R, R, 3) 变成 (3, R, R)": make(reshape_chw=True),
            "特征没有 L2 归一化（按点积排序）": make(no_l2=True),
            "只归一化了图像特征（分数不是余弦）": make(l2_images_only=True),
            "从小到大排序（选中了最不像的）": make(ascending=True),
            "给每张图找查询（方向反了）": make(per_image=True),
            "文本长度写死成 52（长查询超出位置向量表）": make(context_52=True),
            "用双线性 (bilinear) 而不是元数据写的双三次 (bicubic) 缩放": make(bilinear=True),
            "没有转成 RGB（灰度图只有一个通道）": make(no_rgb=True)}


register(Exercise(
    id="09.8", title="只靠两个 .onnx 文件做以文搜图（预处理全从元数据来）", points=5,
    hint="需要的数都在两个 session 的元数据里：分辨率、均值、标准差 (std)、文本长度，别写死，也别用库的预处理；"
         "图片先统一成 RGB、按元数据写的方式缩放，再变成 (N, 3, R, R) 的 float32；两边的特征都要 L2 归一化，"
         "分数才是余弦；每个查询按分数从大到小取前 top_k 张图。",
    reference=_reference_search,
    cases=_search_cases,
    mutants=_search_mutants,
    hidden=_search_hidden,
    builds=("cnclip_edu.deploy.search.search_from_metadata", "cnclip_edu.deploy.search.preprocess_from_metadata"),
    needs=("09.2", "09.3"),
))
