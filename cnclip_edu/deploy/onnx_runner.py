"""ONNX Runtime runner for the exported towers: `OnnxEncoder`, with the PyTorch model's interface.

    from .onnx_runner import OnnxEncoder     # also cc.export.OnnxEncoder
    enc = OnnxEncoder("deploy/course.img.fp32.onnx", "deploy/course.txt.fp32.onnx")   # or .int8.onnx
    enc.encode_image(images)   # (B, 3, R, R) float, numpy or torch -> (B, E), same type back
    enc.encode_text(tokens)    # (B, L) int ids -> (B, E)

Everything the runner needs (resolution, context length, vocabulary size, precision) comes from the
files' metadata. Providers are chosen automatically: TensorRT EP, CUDA EP, CPU, whichever this
onnxruntime build offers, in that order (int8 files: CPU, the only provider with their kernels).
Bad inputs fail here, before ONNX Runtime, with an error naming the input, the expected shape or
dtype, and what was given. The input checks are shared with the TensorRT runner (`trt.py`).

Padding. `cc.tokenize` pads every caption to the context length (52), but a typical caption has
10-25 tokens, and attention over [PAD] positions is masked away: it changes nothing but costs time.
The text graph has a dynamic sequence axis, so `encode_text` cuts each batch after its last
column holding a real token (`trim_padding`): the same features (tested), ~3x less work for
short captions. PyTorch's own path skips padding per caption (model/text_unpad.py).

IO binding (`io_binding=`): by default a session copies its inputs in and allocates its outputs on
every call. With CUDA tensors on the CUDA provider, that means a GPU -> CPU -> GPU round trip, so
there the runner binds the tensors' memory directly (`session.io_binding()`); the result stays on
the GPU. On the CPU the copies are cheap and it is off unless asked for.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


# ----------------------------------------------------------------------------- input checks (shared with trt.py)
def check_image_input(x: Any, resolution: int) -> None:
    """Raise a clear error unless `x` is a float (B, 3, R, R) batch (numpy or torch)."""
    shape, dtype = tuple(x.shape), str(x.dtype).replace("torch.", "")
    if len(shape) != 4 or shape[1:] != (3, resolution, resolution):
        hint = " (a single image? add a batch axis: x[None])" if shape == (3, resolution, resolution) else ""
        raise ValueError(f"image: expected shape (batch, 3, {resolution}, {resolution}), got {shape}{hint}")
    if not dtype.startswith(("float", "bfloat")):
        raise TypeError(f"image: expected float pixels (preprocessed with cc.image_transform({resolution})), "
                        f"got dtype {dtype}")


def check_text_input(x: Any, context_length: int, vocab_size: int | None = None, dynamic_length: bool = False) -> None:
    """Raise a clear error unless `x` is an integer (B, L) batch of token ids within the vocabulary.

    L must equal `context_length`, or with `dynamic_length` (a graph with a dynamic sequence axis) lie in
    [1, context_length].
    """
    shape, dtype = tuple(x.shape), str(x.dtype).replace("torch.", "")
    ok = len(shape) == 2 and (1 <= shape[1] <= context_length if dynamic_length else shape[1] == context_length)
    if not ok:
        want = f"(batch, L) with 1 <= L <= {context_length}" if dynamic_length else f"(batch, {context_length})"
        raise ValueError(f"text: expected shape {want}, got {shape} "
                         f"(tokenize with cc.tokenize(texts, context_length={context_length}))")
    if not dtype.startswith(("int", "uint")):
        raise TypeError(f"text: expected integer token ids (int64), got dtype {dtype}")
    if shape[0] and vocab_size:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"text: token ids must lie in [0, {vocab_size}), got min {lo}, max {hi}")


def trimmed_length(tokens: Any, pad_id: int = 0) -> int:
    """1 + the last column of a (B, L) id batch where any row holds a real (non-[PAD]) token; at least 1."""
    cols = (tokens != pad_id).any(0)                                # (L,) True where some caption is still going
    cols = cols.cpu().numpy() if isinstance(cols, torch.Tensor) else np.asarray(cols)
    real = np.flatnonzero(cols)
    return int(real[-1]) + 1 if real.size else 1


def trim_padding(tokens: Any, pad_id: int = 0) -> Any:
    """(B, L) ids -> (B, L') with the all-[PAD] columns at the end cut off (numpy or torch, a view)."""
    return tokens[:, :trimmed_length(tokens, pad_id)]


# ----------------------------------------------------------------------------- ONNX Runtime
ORT_LEVELS = ("disable", "basic", "extended", "all")


def session_options(threads: int | None = None, level: str = "all", optimized_path: str | None = None):
    """`onnxruntime.SessionOptions` for one tower: `threads` intra-op threads (default: torch's count).

    ONNX Runtime and PyTorch both default to one thread per physical core, and each pool spins while
    waiting for work; two pools in one process fight over the cores. We take PyTorch's count (so
    `torch.set_num_threads` or OMP_NUM_THREADS sets both), one inter-op thread and sequential
    execution (a CLIP tower is a chain of layers: there is nothing to run side by side).
    """
    import onnxruntime as ort
    import torch

    if level not in ORT_LEVELS:
        raise ValueError(f"level must be one of {ORT_LEVELS}, got {level!r}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if optimized_path:
        opts.optimized_model_filepath = str(optimized_path)
    return opts


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The `metadata_props` of an ONNX file (weights are not loaded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def run_session(session, x: np.ndarray) -> np.ndarray:
    """One call of a one-input, one-output ONNX Runtime session: numpy in (named by the graph), first output out."""
    return session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: x})[0]


def check_feed(session, x: np.ndarray) -> None:
    """Refuse `x` before ONNX Runtime does, against the session's own description of its (first) input.

    `NodeArg.shape` holds an int for a fixed axis and a name (or None) for a dynamic one; `NodeArg.type`
    is e.g. 'tensor(float)'. A wrong rank or fixed axis raises ValueError, a wrong element type TypeError;
    both name the input, what it expects and what came. ONNX Runtime refuses the same inputs, but with a
    message about its internals ("INVALID_ARGUMENT : Got invalid dimensions ..."); it never casts.
    """
    inp = session.get_inputs()[0]
    want = tuple(d if isinstance(d, int) else (d or "?") for d in inp.shape)   # ('batch', 3, 224, 224)
    got = tuple(int(d) for d in x.shape)
    if len(got) != len(want) or any(isinstance(w, int) and w != g for w, g in zip(want, got)):
        raise ValueError(f"{inp.name}: expected shape {want}, got {got}")
    dtype = _NP_DTYPES.get(inp.type)
    if dtype is not None and np.dtype(x.dtype) != np.dtype(dtype):
        raise TypeError(f"{inp.name}: expected dtype {np.dtype(dtype).name} ({inp.type}), got {np.dtype(x.dtype).name}")


def run_checked(session, x: np.ndarray) -> np.ndarray:
    """`run_session` after `check_feed`: a wrong shape or dtype fails with an error that says what was expected."""
    check_feed(session, x)
    return run_session(session, x)


def default_providers() -> list[str]:
    """TensorRT EP, CUDA EP, CPU: those of them this onnxruntime build offers, in that order."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in order if p in available] or ["CPUExecutionProvider"]


_NP_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32}
_TORCH_DTYPES = {np.float32: torch.float32, np.int64: torch.int64, np.int32: torch.int32}


class _OrtTower:
    def __init__(self, path: str | os.PathLike, kind: str, providers: Sequence[str] | None, threads: int | None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{kind} ONNX file not found: {path}")
        if providers is None:  # int8 files: the CPU provider has their kernels, the GPU providers do not
            int8 = read_metadata(path).get("precision") == "int8"
            providers = ["CPUExecutionProvider"] if int8 else default_providers()
        self.providers = list(providers)
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=self.providers)
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.meta.get("tower", kind) != kind:
            raise ValueError(f"{path}: this is the {self.meta['tower']} tower, passed as the {kind} tower")
        self.path = path
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0].name
        self.in_dtype = _NP_DTYPES.get(self.input.type, np.float32)
        # a symbolic (str) or unknown (None) length: the text graph accepts any caption length
        self.dynamic_length = kind == "text" and not isinstance(self.input.shape[1], int)

    def run(self, x: np.ndarray) -> np.ndarray:
        return run_session(self.session, x)

    def run_bound(self, x: torch.Tensor, out_dim: int) -> torch.Tensor:
        """IO binding: ONNX Runtime reads `x`'s memory and writes into a torch tensor on x's device."""
        x = x.to(_TORCH_DTYPES[self.in_dtype]).contiguous()
        out = torch.empty((x.shape[0], out_dim), dtype=torch.float32, device=x.device)  # (B, E)
        dev, idx = x.device.type, x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(self.input.name, dev, idx, self.in_dtype, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output, dev, idx, np.float32, tuple(out.shape), out.data_ptr())
        if dev == "cuda":
            torch.cuda.current_stream(x.device).synchronize()  # x must be written before ORT's stream reads it
        self.session.run_with_iobinding(binding)
        return out


def _to_numpy(x: Any, dtype: np.dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x
        x = x.numpy()
    return np.ascontiguousarray(x, dtype=dtype)


class TwoTowerEncoder:
    """What every deployed encoder (ONNX Runtime, TensorRT) does before running a tower: check the
    input against the file's metadata, and cut a text batch to its longest caption when the graph's
    length axis is dynamic. Subclasses set `image`, `text` (towers, or None), `image_resolution`,
    `context_length`, `vocab_size`, and implement `_run(tower, x, dtype)`."""

    tower_file = "file"  # how an error names what the encoder was created from

    def encode_image(self, images: Any) -> Any:
        """(B, 3, R, R) float preprocessed images -> (B, E) unnormalized features."""
        if self.image is None:
            raise RuntimeError(f"this {type(self).__name__} was created without an image {self.tower_file}")
        images = images if hasattr(images, "shape") else np.asarray(images, np.float32)
        check_image_input(images, self.image_resolution)
        return self._run(self.image, images, np.float32)

    def encode_text(self, tokens: Any) -> Any:
        """(B, L) int token ids (cc.tokenize) -> (B, E) unnormalized features."""
        if self.text is None:
            raise RuntimeError(f"this {type(self).__name__} was created without a text {self.tower_file}")
        tokens = tokens if hasattr(tokens, "shape") else np.asarray(tokens, np.int64)
        check_text_input(tokens, self.context_length, self.vocab_size, self.text.dynamic_length)
        if self.text.dynamic_length and tokens.shape[0]:
            tokens = trim_padding(tokens)  # (B, L') L' = the longest caption in the batch
        return self._run(self.text, tokens, np.int64)

    def _run(self, tower: Any, x: Any, dtype: type) -> Any:
        raise NotImplementedError


class OnnxEncoder(TwoTowerEncoder):
    """The two ONNX towers with the PyTorch model's interface: `encode_image`, `encode_text`.

    Inputs may be numpy arrays or torch tensors; the result has the input's type (a torch tensor comes
    back float32 on the input's device, a numpy array as float32 numpy). Either path may be None to load
    one tower only. `providers` overrides the automatic choice (`default_providers()`); `threads` the
    intra-op threads (default: torch's); `io_binding` True / False forces IO binding for torch inputs
    on or off (default: on for CUDA tensors on a CUDA provider, see the module docstring).
    """

    tower_file = "ONNX file"

    def __init__(self, image_path: str | os.PathLike | None, text_path: str | os.PathLike | None,
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 io_binding: bool | None = None):
        if image_path is None and text_path is None:
            raise ValueError("OnnxEncoder needs at least one of image_path, text_path")
        self.image = _OrtTower(image_path, "image", providers, threads) if image_path else None
        self.text = _OrtTower(text_path, "text", providers, threads) if text_path else None
        self.providers = (self.image or self.text).providers
        self.io_binding = io_binding
        if self.image and self.text:
            a, b = self.image.meta.get("model_name"), self.text.meta.get("model_name")
            if a != b or self.image.meta.get("embed_dim") != self.text.meta.get("embed_dim"):
                raise ValueError(f"{self.image.path} is from model {a!r} but {self.text.path} from {b!r}: "
                                 f"their features do not share one embedding space")
        meta = (self.image or self.text).meta
        self.image_resolution = int(self.image.meta["image_resolution"]) if self.image else None
        self.context_length = int(self.text.meta["context_length"]) if self.text else None
        self.vocab_size = int(self.text.meta["vocab_size"]) if self.text and "vocab_size" in self.text.meta else None
        self.embed_dim = int(meta.get("embed_dim", 0)) or None
        self.precision = meta.get("precision")
        self.model_name = meta.get("model_name")

    def __repr__(self) -> str:
        return (f"OnnxEncoder({self.model_name!r}, precision={self.precision}, "
                f"providers={self.active_providers()})")

    def eval(self) -> "OnnxEncoder":
        """No-op, so an encoder drops in where a model is expected (e.g. eval.features.extract_*)."""
        return self

    def active_providers(self) -> list[str]:
        """The providers the sessions actually use (ONNX Runtime falls back when one fails to start)."""
        tower = self.image or self.text
        return tower.session.get_providers()

    def _binds(self, tower: _OrtTower, x: Any) -> bool:
        if not isinstance(x, torch.Tensor) or self.io_binding is False:
            return False
        on_gpu = x.is_cuda and "CUDAExecutionProvider" in tower.session.get_providers()
        return bool(self.io_binding) or on_gpu

    def _run(self, tower: _OrtTower, x: Any, dtype: type) -> Any:
        if x.shape[0] == 0:
            out = np.zeros((0, self.embed_dim or 0), np.float32)
        elif self._binds(tower, x):
            return tower.run_bound(x.detach(), self.embed_dim)  # (B, E) on x's device
        else:
            out = tower.run(_to_numpy(x, dtype)).astype(np.float32, copy=False)  # (B, E)
        return torch.from_numpy(out).to(x.device) if isinstance(x, torch.Tensor) else out

