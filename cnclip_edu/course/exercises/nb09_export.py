"""Exercise 09.1 of notebook 09 (deployment): the export call of a text tower, batch and length both dynamic.

The cases export a tiny text tower (an embedding, a position table of `context_length` rows, a linear)
so an export takes about a second, then read the file back (exporter, input and output names, each
axis, dtype, the ranges torch.export declared) and run it on other shapes with ONNX Runtime, compared
with the library's export (`deploy.export.export_program`).
"""
from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path

from .core import Case, Exercise, register


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
    """The library's export of one text tower (what export_onnx does), then the file read back: its input
    must be ['batch', 'length'] (a silently specialised axis reads as a number)."""
    from cnclip_edu.deploy.export import describe_graph, export_program

    program = export_program(tower, "text", example[:, :context_length])
    program.save(str(path))
    shape = describe_graph(path)["inputs"][0]["shape"]
    if shape != ["batch", "length"]:
        raise RuntimeError(f"the exported file's input is {shape}, not ['batch', 'length']")
    return program


@functools.lru_cache(maxsize=4)
def _tiny_program(context_length: int):
    """One real export of the tiny text tower (cached: the specialised cases reuse it instead of exporting again)."""
    from cnclip_edu.deploy.export import export_program

    tower, example = _tiny_text_tower(context_length)
    return export_program(tower, "text", example)


@functools.lru_cache(maxsize=8)
def _specialised_bytes(context_length: int, axis: int, value: int) -> bytes:
    """The tiny tower's file with input axis `axis` rewritten as the constant `value`: what a silently
    specialised export leaves behind."""
    import onnx

    proto = onnx.ModelProto()
    proto.CopyFrom(_tiny_program(context_length).model_proto)
    dim = proto.graph.input[0].type.tensor_type.shape.dim[axis]
    dim.Clear()
    dim.dim_value = value
    return proto.SerializeToString()


class _SpecialisedProgram:
    """Stands in for the ONNXProgram a specialised export returns: the program itself says 'batch' and 'length'
    (model_proto), while the file it saves has one axis fixed."""

    def __init__(self, program, data: bytes):
        self.model_proto, self.exported_program, self._data = program.model_proto, program.exported_program, data

    def save(self, destination, *args, **kwargs) -> None:
        Path(destination).write_bytes(self._data)


def _specialised_case(axis: int, context_length: int) -> Case:
    """torch.onnx.export writes a file whose input axis `axis` is a constant (as a silent specialisation leaves
    it): the answer must read the file back and refuse it. No export runs inside run(): the file is made here."""
    value = 2 if axis == 0 else context_length
    # Export now, while the case is built: the grader arms the tripwires around run(), and a correct answer
    # must not score 0 because the checker's own export (export_program) ran while they were armed.
    _specialised_bytes(context_length, axis, value)
    label = (f"导出的文件里第 {axis} 维被悄悄固定成了 {value}"
             f"（模拟被特化的导出）：应当读回文件、发现它、raise RuntimeError")

    def run(f):
        import torch

        real = torch.onnx.export
        program = _SpecialisedProgram(_tiny_program(context_length), _specialised_bytes(context_length, axis, value))

        def fake(*args, **kwargs):
            path = args[2] if len(args) > 2 else kwargs.get("f")
            if path is not None:                                   # exported straight into a file
                program.save(path)
            return program                                         # or saved by the caller afterwards

        tower, example = _tiny_text_tower(context_length)
        torch.onnx.export = fake
        try:
            with tempfile.TemporaryDirectory() as tmp:
                f(tower, example, str(Path(tmp) / "tiny_text.onnx"), context_length)
            return "没有报错（文件的维度是固定的，却没有发现）"
        except RuntimeError:
            return "RuntimeError：读回文件时发现了固定的维"
        finally:
            torch.onnx.export = real
    return Case(label, run)


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

    def right_call(tower, example, path, context_length):
        length = torch.export.Dim("length", min=1, max=context_length)
        return torch.onnx.export(tower, (example,), path, dynamo=True, input_names=["text"],
                                 output_names=["text_features"], dynamic_shapes={"x": {0: batch, 1: length}})

    def read_back(check):
        def answer(tower, example, path, context_length):
            import onnx

            program = right_call(tower, example, path, context_length)
            dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
            check([d.dim_param or d.dim_value for d in dims], program)
            return program
        return answer

    def only_length(shape, program):
        if shape[1] != "length":
            raise RuntimeError(f"fixed length: {shape}")

    def only_batch(shape, program):
        if shape[0] != "batch":
            raise RuntimeError(f"fixed batch: {shape}")

    def value_error(shape, program):
        if shape != ["batch", "length"]:
            raise ValueError(f"input {shape}")

    def program_not_file(shape, program):  # what torch.export meant, not what the file says
        dims = program.model_proto.graph.input[0].type.tensor_type.shape.dim
        if [d.dim_param for d in dims] != ["batch", "length"]:
            raise RuntimeError("fixed axis")

    return {"导出后没有读回文件（被固定的维没人发现）": right_call,
            "读回后只检查了长度维": read_back(only_length),
            "读回后只检查了 batch 维": read_back(only_batch),
            "发现固定的维时 raise ValueError，不是 RuntimeError": read_back(value_error),
            "检查的是返回的 ONNXProgram，不是写出的文件": read_back(program_not_file),
            "只声明了 batch，长度维被固定成示例的长度": fixed_length,
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
                 lambda f, ctx=ctx, shapes=shapes: _report_case(f, ctx, shapes)),
            _specialised_case(rng.choice([0, 1]), ctx), _specialised_case(1 - rng.choice([0, 1]), ctx)]


register(Exercise(
    id="09.1", title="导出文本塔：两个动态维 (torch.onnx.export)", points=3,
    hint="要用新导出器；输入名、输出名都要给；batch 和长度两维都要声明成动态的（符号的名字就是文件里形状上写的字符串，"
         "按约定叫 batch 和 length），声明时用 forward 的参数名，"
         "不是导出后的输入名。长度的上限想一想：位置向量表有几行是训练过的？导出之后读回写出的文件（不是返回的对象），"
         "输入形状的两维都要是约定的名字；不是的话 raise RuntimeError。最后把 torch.onnx.export 的返回值 return 出去。",
    reference=_reference_export,
    cases=lambda: [Case("微型文本塔 (context_length 12)：读回名字、各维、类型和声明的范围，用 (1, 3) 和 (3, 12) 运行",
                        _report_case), _specialised_case(0, 12), _specialised_case(1, 12)],
    mutants=_export_mutants,
    hidden=_hidden_export_cases,
    builds=("cnclip_edu.deploy.export.export_program", "cnclip_edu.deploy.export.export_onnx"),
))
