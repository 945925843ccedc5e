"""TensorRT engines from the exported ONNX towers: build, save, load, and run on torch CUDA tensors.

    python -m cnclip_edu.deploy.trt --onnx deploy/vit-b-16.img.fp16.onnx deploy/vit-b-16.txt.fp16.onnx --max-batch 128
    engine = build_engine("deploy/vit-b-16.img.fp16.onnx", max_batch=128)   # -> deploy/vit-b-16.img.fp16.engine
    enc = TrtEncoder(image_engine, text_engine)                            # same interface as OnnxEncoder

TensorRT 10 style throughout: the network comes from `trt.OnnxParser`, every dynamic axis gets an
optimization profile (min / opt / max): the batch axis of both towers, and the text tower's length
axis (1 .. context length), so a batch of short captions runs on its trimmed length as with ONNX
Runtime. `plan_profile` computes the profile from the ONNX file alone (no GPU needed: notebook 09
shows it). The plan is built with `build_serialized_network`, and inference binds torch CUDA tensors
by name (`set_input_shape`, `set_tensor_address`) and runs `execute_async_v3` on torch's current
stream, so no pycuda and no host copies.

Not every ONNX file is for TensorRT: the int8 files (`*.int8.onnx`, ONNX Runtime's dynamic
quantisation) and the ORT-optimised ones (`*.ort.onnx`, ONNX Runtime's own operators) are refused
with a message; build from the plain fp32 or fp16 export.

Precision. Every network is *strongly typed*: the graph's own types and casts fix every layer's
precision (TensorRT 11's only mode; in TensorRT 10 the alternative, weak typing with the builder's
FP16 flag, is deprecated since 10.12). So an fp32 file builds an fp32 engine, an fp16 file
(`export_onnx(..., fp16=True)`) an fp16 one, and `fp16=True` on an fp32 file converts the graph to
fp16 first. `build_plan` holds the builder calls; it takes the `tensorrt` module as an argument, so
`trt_recorder.RecordingTensorRT` can stand in for it where there is no GPU (notebook 09's check).

Engines are specific to one GPU model and TensorRT version. The ONNX metadata is saved beside the
engine (`<engine>.json`), so a runner needs nothing else. Without a GPU or without the `tensorrt`
package, everything here raises `TrtUnavailable` with the reason (tests and notebook 09 skip on it).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from cnclip_edu.fileio import atomic_write

from .export import convert_to_fp16, read_metadata
from .onnx_runner import TwoTowerEncoder


class TrtUnavailable(RuntimeError):
    """TensorRT cannot run here (no package or no GPU); the message says which."""


def unavailable_reason() -> str | None:
    """None when TensorRT can run here, else a sentence saying why not."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("the `tensorrt` Python package is not installed "
                "(on a machine with an NVIDIA GPU: pip install '.[gpu]')")
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch (TensorRT engines run on NVIDIA GPUs only)"
    return None


def _trt():
    reason = unavailable_reason()
    if reason:
        raise TrtUnavailable(f"TensorRT skipped: {reason}")
    import tensorrt as trt

    return trt


@functools.lru_cache(maxsize=2)
def _logger(verbose: bool = False):
    """One logger per verbosity for the whole process (TensorRT warns when runtimes get different ones)."""
    trt = _trt()
    return trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)


# ----------------------------------------------------------------------------- the profile (no GPU needed)
Shape = tuple[int, ...]


def check_buildable(onnx_path: str | os.PathLike) -> dict[str, str]:
    """The file's metadata, or a clear error if TensorRT is the wrong runtime for it."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    meta = read_metadata(onnx_path)
    if meta.get("precision") == "int8" or meta.get("ort_optimized"):
        what = "int8 (ONNX Runtime's dynamic quantisation)" if meta.get("precision") == "int8" else \
            "optimised by ONNX Runtime (its own operators)"
        raise ValueError(f"{onnx_path}: this file is {what}, for ONNX Runtime only; build the TensorRT engine "
                         f"from the plain fp32 or fp16 export (a strongly typed network takes each tensor's precision from the file)")
    return meta


def profile_shapes(shape: Sequence[int], meta: dict[str, str], min_batch: int = 1, opt_batch: int | None = None,
                   max_batch: int = 128, opt_length: int | None = None) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) shapes of one input whose dynamic axes are -1: (-1, 3, R, R) or (-1, -1) / (-1, L).

    Batch: (min_batch, opt_batch, max_batch), opt_batch default max_batch. Text length: (1, opt_length,
    context_length), opt_length default the context length: kernels tuned for the longest caption
    also serve the shorter ones. Any other dynamic axis is an error, and so is a fixed batch axis: such a
    file (cn_clip's official batch-1 export) accepts that one batch only, so no batch range 1..max_batch
    could be valid for it, and `TrtEncoder`'s chunking by max_batch would not apply; re-export it.
    """
    shape = tuple(int(d) for d in shape)
    if shape and shape[0] >= 0:
        raise ValueError(f"input shape {shape}: the batch axis is fixed at {shape[0]}; TensorRT would accept only "
                         f"that batch, so no profile 1..max_batch fits it: export with a dynamic batch axis")
    axes = [_batch_range(min_batch, opt_batch, max_batch)]  # (min, opt, max) per axis
    for axis, d in enumerate(shape[1:], start=1):
        if d >= 0:
            axes.append((d, d, d))
        elif axis == 1 and meta.get("tower") == "text" and "context_length" in meta:
            L = int(meta["context_length"])
            if not 1 <= (opt_length or L) <= L:
                raise ValueError(f"need 1 <= opt_length <= context_length {L}, got {opt_length}")
            axes.append((1, opt_length or L, L))
        else:
            raise ValueError(f"input shape {shape}: axis {axis} is dynamic; only batch (and text length) may be")
    lo, opt, hi = zip(*axes)
    return tuple(lo), tuple(opt), tuple(hi)


def _batch_range(min_batch: int, opt_batch: int | None, max_batch: int) -> tuple[int, int, int]:
    opt_batch = opt_batch or max_batch
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    return min_batch, opt_batch, max_batch


def plan_profile(onnx_path: str | os.PathLike, min_batch: int = 1, opt_batch: int | None = None,
                 max_batch: int = 128, opt_length: int | None = None) -> dict[str, tuple[Shape, Shape, Shape]]:
    """{input name: (min, opt, max)}: the optimization profile `build_engine` gives TensorRT, read from the file."""
    import onnx

    meta = check_buildable(onnx_path)
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    out = {}
    for inp in graph.input:
        dims = [d.dim_value if not d.dim_param and d.dim_value > 0 else -1 for d in inp.type.tensor_type.shape.dim]
        out[inp.name] = profile_shapes(dims, meta, min_batch, opt_batch, max_batch, opt_length)
    return out


# ----------------------------------------------------------------------------- build
def build_plan(trt, logger, onnx_path: str | os.PathLike, engine_path: str | os.PathLike,
               profile_of: Callable[[Shape], tuple[Shape, Shape, Shape]], workspace_gib: float | None = None,
               tf32: bool = False, onnx_bytes: bytes | None = None) -> dict[str, tuple[Shape, Shape, Shape]]:
    """The builder calls, for `trt` = the `tensorrt` module or anything with its API (trt_recorder's stand-in).

    A STRONGLY_TYPED network (every tensor's type comes from the graph: fp32 stays fp32, an fp16 file
    builds fp16; required by TensorRT 11, where it is the only mode, and the non-deprecated way in 10)
    parsed from the ONNX file (or `onnx_bytes`, a converted graph); one optimization profile with
    `profile_of(input shape)` = (min, opt, max) for every input; the serialized plan written to
    `engine_path`. Returns {input name: (min, opt, max)}. Notebook 09's build-along is this function.
    """
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(onnx_bytes, str(onnx_path)) if onnx_bytes is not None else parser.parse_from_file(str(onnx_path))
    if not ok:
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}:\n{errors}")

    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    shapes = {}
    for i in range(network.num_inputs):
        inp = network.get_input(i)  # (-1, 3, R, R) or (-1, -1): -1 = dynamic
        shapes[inp.name] = profile_of(tuple(inp.shape))
        profile.set_shape(inp.name, *shapes[inp.name])
    config.add_optimization_profile(profile)

    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    atomic_write(Path(engine_path), bytes(plan))
    return shapes


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None, fp16: bool = False,
                 min_batch: int = 1, opt_batch: int | None = None, max_batch: int = 128,
                 workspace_gib: float | None = None, tf32: bool = False, verbose: bool = False,
                 opt_length: int | None = None) -> str:
    """Build a TensorRT engine for one exported tower; returns the engine path.

    Every dynamic axis gets a profile (`profile_shapes`): the batch (min_batch, opt_batch, max_batch)
    and the text length (1, opt_length, context length). TensorRT tunes its kernels for the opt shape
    and accepts any shape in [min, max] at run time (TrtEncoder splits bigger batches). fp16=True on
    an fp32 file converts the graph to fp16 first (`convert_to_fp16`): the network is strongly typed,
    so the precision is the graph's. TF32 (on by default in TensorRT on Ampere and newer GPUs) is
    switched off unless `tf32=True`: it rounds fp32 matmul inputs to 10 mantissa bits (~1e-3 error),
    and an fp32 engine should match the fp32 model.
    """
    trt = _trt()
    onnx_path = Path(onnx_path)
    meta = check_buildable(onnx_path)
    min_batch, opt_batch, max_batch = _batch_range(min_batch, opt_batch, max_batch)
    onnx_fp16 = meta.get("precision") == "fp16"
    data = None
    if fp16 and not onnx_fp16:
        import onnx

        data = convert_to_fp16(onnx.load(str(onnx_path))).SerializeToString()
    precision = "fp16" if (fp16 or onnx_fp16) else "fp32"
    engine_path = Path(engine_path) if engine_path else onnx_path.with_name(
        onnx_path.name.removesuffix(".onnx").replace(".fp32", "").replace(".fp16", "") + f".{precision}.engine")

    shapes = build_plan(trt, _logger(verbose), onnx_path, engine_path,
                        lambda shape: profile_shapes(shape, meta, min_batch, opt_batch, max_batch, opt_length),
                        workspace_gib=workspace_gib, tf32=tf32, onnx_bytes=data)
    sidecar = {**meta, "precision": precision, "min_batch": min_batch, "opt_batch": opt_batch,
               "max_batch": max_batch, "profile": {k: [list(s) for s in v] for k, v in shapes.items()},
               "tensorrt_version": trt.__version__, "onnx_file": onnx_path.name,
               "gpu": torch.cuda.get_device_name(0)}
    atomic_write(Path(str(engine_path) + ".json"), json.dumps(sidecar, indent=2, ensure_ascii=False).encode())
    return str(engine_path)


# ----------------------------------------------------------------------------- run
def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64, trt.DataType.BOOL: torch.bool}
    if dt not in table:
        raise TypeError(f"unsupported TensorRT I/O dtype {dt}")
    return table[dt]


class _TrtTower:
    """One deserialized engine with one input and one output, batch-dynamic."""

    def __init__(self, engine_path: str | os.PathLike, kind: str, device: torch.device):
        trt = _trt()
        path = Path(engine_path)
        if not path.is_file():
            raise FileNotFoundError(f"{kind} TensorRT engine not found: {path}")
        self.logger = _logger()
        self.runtime = trt.Runtime(self.logger)  # must outlive the engine
        with torch.cuda.device(device):
            self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"{path}: TensorRT could not load this engine (built by another TensorRT "
                                   f"version or for another GPU? rebuild it with build_engine)")
            self.context = self.engine.create_execution_context()
        side = Path(str(path) + ".json")
        self.meta = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
        if self.meta.get("tower", kind) != kind:
            raise ValueError(f"{path}: this is the {self.meta['tower']} tower, passed as the {kind} tower")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input = next(n for n in names if mode[n] == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if mode[n] == trt.TensorIOMode.OUTPUT)
        self.in_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.input))
        self.out_dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(self.output))
        self.in_shape = tuple(self.engine.get_tensor_shape(self.input))  # (-1, 3, R, R), (-1, -1) or (-1, L)
        lo, _, hi = self.engine.get_tensor_profile_shape(self.input, 0)
        self.min_batch, self.max_batch = int(lo[0]), int(hi[0])
        self.dynamic_length = kind == "text" and self.in_shape[1] == -1
        self.context_length = int(hi[1]) if kind == "text" else None  # the profile's longest length
        self.device = device

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """x on self.device, self.in_dtype, contiguous (B, ...) -> (B, E) on self.device."""
        outs = []
        stream = torch.cuda.current_stream(self.device)
        for chunk in x.split(self.max_batch):  # batches above the profile's max run in pieces
            if chunk.shape[0] < self.min_batch:  # pad up to the profile's min, drop the padding after
                pad = chunk.new_zeros((self.min_batch - chunk.shape[0], *chunk.shape[1:]))
                out = self._run_one(torch.cat([chunk, pad]), stream)[: chunk.shape[0]]
            else:
                out = self._run_one(chunk.contiguous(), stream)
            outs.append(out)
        return torch.cat(outs) if len(outs) > 1 else outs[0]

    def _run_one(self, x: torch.Tensor, stream) -> torch.Tensor:
        if not self.context.set_input_shape(self.input, tuple(x.shape)):
            raise RuntimeError(f"TensorRT rejected input shape {tuple(x.shape)} for {self.input}")
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=self.out_dtype, device=self.device)
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log above)")
        return out  # ordered on `stream`: later torch work on it sees the result


class TrtEncoder(TwoTowerEncoder):
    """Two TensorRT engines with the PyTorch model's interface: `encode_image`, `encode_text`.

    Accepts numpy arrays or torch tensors (CPU or CUDA) and returns the input's type: numpy in ->
    float32 numpy out; torch in -> float32 torch on the input's device (CUDA inputs never leave the GPU).
    """

    tower_file = "engine"

    def __init__(self, image_engine: str | os.PathLike | None, text_engine: str | os.PathLike | None,
                 device: str | torch.device = "cuda"):
        _trt()
        if image_engine is None and text_engine is None:
            raise ValueError("TrtEncoder needs at least one of image_engine, text_engine")
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ValueError(f"TensorRT runs on CUDA devices, got device={device!r}")
        self.image = _TrtTower(image_engine, "image", self.device) if image_engine else None
        self.text = _TrtTower(text_engine, "text", self.device) if text_engine else None
        self.image_resolution = int(self.image.in_shape[-1]) if self.image else None
        self.context_length = self.text.context_length if self.text else None
        meta = self.text.meta if self.text else {}
        self.vocab_size = int(meta["vocab_size"]) if "vocab_size" in meta else None
        self.precision = (self.image or self.text).meta.get("precision")

    def _run(self, tower: _TrtTower, x: Any, dtype: type | None = None) -> Any:  # the engine knows its dtypes
        is_numpy = not isinstance(x, torch.Tensor)
        t = torch.from_numpy(np.ascontiguousarray(x)) if is_numpy else x.detach()
        if t.shape[0] == 0:
            out = torch.zeros((0, int(tower.meta.get("embed_dim", 0))), dtype=torch.float32)
        else:
            with torch.cuda.device(self.device):
                out = tower.run(t.to(self.device, tower.in_dtype).contiguous()).float()
        if is_numpy:
            return out.cpu().numpy()
        return out.to(x.device)



# ----------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cnclip_edu.deploy.trt", description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", nargs="+", required=True, help="exported tower(s): *.img.*.onnx / *.txt.*.onnx")
    ap.add_argument("--save-dir", "--save_dir", default=None, help="engine folder (default: beside the ONNX)")
    ap.add_argument("--fp16", action="store_true", help="fp16 engine (implied by an fp16 ONNX file)")
    ap.add_argument("--min-batch", "--min_batch", type=int, default=1)
    ap.add_argument("--opt-batch", "--opt_batch", type=int, default=None)
    ap.add_argument("--max-batch", "--max_batch", "--batch-size", "--batch_size", type=int, default=128)
    ap.add_argument("--opt-length", "--opt_length", type=int, default=None,
                    help="text length TensorRT tunes for (default: the context length)")
    ap.add_argument("--workspace-gib", type=float, default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        for src in args.onnx:
            dst = None
            if args.save_dir:
                precision = "fp16" if args.fp16 or read_metadata(src).get("precision") == "fp16" else "fp32"
                stem = Path(src).name.removesuffix(".onnx").replace(".fp32", "").replace(".fp16", "")
                dst = Path(args.save_dir) / f"{stem}.{precision}.engine"
            out = build_engine(src, dst, fp16=args.fp16, min_batch=args.min_batch, opt_batch=args.opt_batch,
                               max_batch=args.max_batch, workspace_gib=args.workspace_gib, verbose=args.verbose,
                               opt_length=args.opt_length)
            print(f"{src} -> {out}")
    except TrtUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
