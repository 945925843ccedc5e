"""ONNX Runtime on the CPU, made to pay: graph optimisations applied once and saved, int8 weights.

    ort_optimize("deploy/course.txt.fp32.onnx")   # -> deploy/course.txt.fp32.ort.onnx (fused, saved)
    to_int8("deploy/course.txt.fp32.onnx")        # -> deploy/course.txt.int8.onnx (dynamic int8)

Graph optimisation. ONNX Runtime rewrites a graph before running it: constant folding, then
fusions of common patterns into one kernel each (Add + LayerNorm -> SkipLayerNormalization,
MatMul + Add + Gelu -> BiasGelu, Sigmoid-GELU -> QuickGelu, scaled MatMul -> FusedMatMul).
Every session does this at start-up; `ort_optimize` does it once and saves the result, so a
service starts faster and the fused graph can be inspected. We save at the EXTENDED level: its
fusions run on any CPU, while the ALL level adds a memory layout (NCHWc) tied to this machine's
vector width. The saved file uses ONNX Runtime's own operators (domain com.microsoft): it is for
ONNX Runtime only. TensorRT and other runtimes take the plain export.

int8. Dynamic quantisation stores every MatMul weight as int8 with one scale per tensor (4x
smaller) and quantises the activations on the fly, per batch, from their observed range: no
calibration data needed. The matrix products then run as int8 x int8 -> int32, which CPUs with
VNNI (AVX512-VNNI, AVX-VNNI) do about 4x faster per instruction than fp32. LayerNorm, softmax and
GELU stay in float. The cost is rounding error in every product: measure it (quality.ToyEval) before
shipping. On older CPUs with AVX2 but no VNNI, ONNX Runtime's u8s8 kernels can saturate; pass
`reduce_range=True` there (7-bit weights). GPUs: this int8 format is for ONNX Runtime's CPU
kernels; TensorRT's int8 needs calibration and is not what this file is.

Threads are set where sessions are made, in `onnx_runner.session_options`.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from cnclip_edu import fileio

from .onnx_runner import read_metadata, session_options


def int8_roundtrip(w):
    """What int8 weights do to one tensor: symmetric per-tensor quantisation, then back to float.

    scale = max|w| / 127 (the largest weight lands on +-127, zero stays exactly zero); q = round(w / scale)
    is the stored int8; q * scale is what the products effectively use. `w - int8_roundtrip(w)` is
    the rounding error, at most scale / 2 per weight.
    """
    import torch

    scale = w.abs().max().clamp_min(1e-12) / 127   # () one step of the int8 grid
    q = torch.round(w / scale).clamp(-127, 127)      # same shape as w, integer values in [-127, 127]
    return q * scale


def _finish(work_file: Path, dst: Path, metadata: dict[str, str]) -> None:
    """Write the finished graph in `work_file` with `metadata` to `dst` (atomically: never a half-written file)."""
    import onnx

    proto = onnx.load(str(work_file))
    del proto.metadata_props[:]
    for k, v in metadata.items():
        proto.metadata_props.add(key=k, value=v)
    fileio.atomic_write(dst, lambda tmp: onnx.save_model(proto, str(tmp)))


def _out_path(src: Path, dst: str | os.PathLike | None, name: str) -> Path:
    out = Path(dst) if dst else src.with_name(name)
    if out.resolve() == src.resolve():
        raise ValueError(f"{src}: give an output path (it would overwrite its source)")
    return out


def _check_source(src: Path, what: str) -> dict[str, str]:
    if not src.is_file():
        raise FileNotFoundError(f"ONNX file not found: {src}")
    if Path(str(src) + ".data").exists():
        raise ValueError(f"{src}: its weights are in {src.name}.data (a tower over 2 GB); {what} supports "
                         f"self-contained files only")
    meta = read_metadata(src)
    if meta.get("precision") != "fp32":
        raise ValueError(f"{src}: {what} needs an fp32 export (metadata precision=fp32), "
                         f"got {meta.get('precision')!r}")
    if meta.get("ort_optimized"):
        raise ValueError(f"{src}: already optimised by ONNX Runtime; start from the plain export")
    return meta


def ort_optimize(src: str | os.PathLike, dst: str | os.PathLike | None = None, level: str = "extended") -> str:
    """ONNX Runtime's graph optimisations, applied once to an fp32 export and saved: `x.fp32.onnx` -> `x.fp32.ort.onnx`.

    The metadata is kept, plus `ort_optimized` (the level) and `ort_version`: the result runs only
    in ONNX Runtime (same or newer version), with the same features as the source (tested).
    """
    import onnxruntime as ort

    src = Path(src)
    meta = _check_source(src, "ort_optimize")
    if level not in ("basic", "extended"):
        raise ValueError(f"save at level 'basic' or 'extended' (portable across CPUs), got {level!r}")
    out = _out_path(src, dst, src.name.removesuffix(".onnx") + ".ort.onnx")
    tmp = fileio.make_temp_dir(out)  # ONNX Runtime writes its optimised graph here first
    try:
        ort.InferenceSession(str(src), session_options(1, level, str(tmp / out.name)),
                             providers=["CPUExecutionProvider"])
        _finish(tmp / out.name, out, {**meta, "ort_optimized": level, "ort_version": ort.__version__})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


def to_int8(src: str | os.PathLike, dst: str | os.PathLike | None = None, per_channel: bool = False,
            reduce_range: bool = False, optimize: bool = True) -> str:
    """Dynamic int8 quantisation of an fp32 export: `x.fp32.onnx` -> `x.int8.onnx` (ONNX Runtime, CPU).

    optimize: quantise the ORT-optimised graph (`ort_optimize` first), so the saved file is the
    fused graph with int8 weights. per_channel: one weight scale per output column instead of per
    tensor. reduce_range: 7-bit weights, for CPUs without VNNI (see the module docstring).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = Path(src)
    _check_source(src, "to_int8")
    name = src.name.replace(".fp32.onnx", ".int8.onnx") if ".fp32.onnx" in src.name else src.stem + ".int8.onnx"
    out = _out_path(src, dst, name)
    tmp = fileio.make_temp_dir(out)  # the optimised graph and the quantiser's output, before the final write
    quant_log = logging.getLogger()  # the quantizer warns on the root logger about an optional pre-processing pass
    level = quant_log.level
    try:
        source = Path(ort_optimize(src, tmp / "opt.onnx")) if optimize else src
        quant_log.setLevel(max(level, logging.ERROR))
        quantize_dynamic(str(source), str(tmp / out.name), per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8)
        quant_log.setLevel(level)
        how = (f"dynamic int8: weights QInt8 {'per channel' if per_channel else 'per tensor'}"
               f"{', reduced range' if reduce_range else ''}, activations uint8 per batch")
        _finish(tmp / out.name, out, {**read_metadata(source), "precision": "int8", "quantization": how})
    finally:
        quant_log.setLevel(level)
        shutil.rmtree(tmp, ignore_errors=True)
    return str(out)
