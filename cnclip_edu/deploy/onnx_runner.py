"""ONNX Runtime runner for the exported towers: `OnnxEncoder`, with the PyTorch model's interface.

    from .onnx_runner import OnnxEncoder     # also cc.export.OnnxEncoder
    enc = OnnxEncoder("deploy/course.img.fp32.onnx", "deploy/course.txt.fp32.onnx")
    enc.encode_image(images)   # (B, 3, R, R) float, numpy or torch -> (B, E), same type back
    enc.encode_text(tokens)    # (B, L) int ids -> (B, E)

Everything the runner needs (resolution, context length, vocabulary size, precision) comes from the
files' metadata. Providers are chosen automatically: TensorRT EP, CUDA EP, CPU, whichever this
onnxruntime build offers, in that order. Bad inputs fail here, before ONNX Runtime, with an error
naming the input, the expected shape or dtype, and what was given. The input checks are shared
with the TensorRT runner (`cnclip_edu.trt`).
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


def check_text_input(x: Any, context_length: int, vocab_size: int | None = None) -> None:
    """Raise a clear error unless `x` is an integer (B, L) batch of token ids within the vocabulary."""
    shape, dtype = tuple(x.shape), str(x.dtype).replace("torch.", "")
    if len(shape) != 2 or shape[1] != context_length:
        raise ValueError(f"text: expected shape (batch, {context_length}), got {shape} "
                         f"(tokenize with cc.tokenize(texts, context_length={context_length}))")
    if not dtype.startswith(("int", "uint")):
        raise TypeError(f"text: expected integer token ids (int64), got dtype {dtype}")
    if shape[0] and vocab_size:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"text: token ids must lie in [0, {vocab_size}), got min {lo}, max {hi}")


# ----------------------------------------------------------------------------- ONNX Runtime
def default_providers() -> list[str]:
    """TensorRT EP, CUDA EP, CPU: those of them this onnxruntime build offers, in that order."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in order if p in available] or ["CPUExecutionProvider"]


class _OrtTower:
    def __init__(self, path: str | os.PathLike, kind: str, providers: list, threads: int | None):
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{kind} ONNX file not found: {path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.meta.get("tower", kind) != kind:
            raise ValueError(f"{path}: this is the {self.meta['tower']} tower, passed as the {kind} tower")
        self.path = path
        self.input = self.session.get_inputs()[0]
        self.output = self.session.get_outputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input.name: x})[0]


def _to_numpy(x: Any, dtype: np.dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype == torch.bfloat16 else x
        x = x.numpy()
    return np.ascontiguousarray(x, dtype=dtype)


class OnnxEncoder:
    """The two ONNX towers with the PyTorch model's interface: `encode_image`, `encode_text`.

    Inputs may be numpy arrays or torch tensors; the result has the input's type (a torch tensor comes
    back float32 on the input's device, a numpy array as float32 numpy). Either path may be None to load
    one tower only. `providers` overrides the automatic choice (`default_providers()`).
    """

    def __init__(self, image_path: str | os.PathLike | None, text_path: str | os.PathLike | None,
                 providers: Sequence[str] | None = None, threads: int | None = None):
        if image_path is None and text_path is None:
            raise ValueError("OnnxEncoder needs at least one of image_path, text_path")
        self.providers = list(providers) if providers else default_providers()
        self.image = _OrtTower(image_path, "image", self.providers, threads) if image_path else None
        self.text = _OrtTower(text_path, "text", self.providers, threads) if text_path else None
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

    def _run(self, tower: _OrtTower, x: Any, dtype: type) -> Any:
        if x.shape[0] == 0:
            out = np.zeros((0, self.embed_dim or 0), np.float32)
        else:
            out = tower.run(_to_numpy(x, dtype)).astype(np.float32, copy=False)  # (B, E)
        return torch.from_numpy(out).to(x.device) if isinstance(x, torch.Tensor) else out

    def encode_image(self, images: Any) -> Any:
        """(B, 3, R, R) float preprocessed images -> (B, E) unnormalized features."""
        if self.image is None:
            raise RuntimeError("this OnnxEncoder was created without an image ONNX file")
        images = images if hasattr(images, "shape") else np.asarray(images, np.float32)
        check_image_input(images, self.image_resolution)
        return self._run(self.image, images, np.float32)

    def encode_text(self, tokens: Any) -> Any:
        """(B, L) int token ids (cc.tokenize) -> (B, E) unnormalized features."""
        if self.text is None:
            raise RuntimeError("this OnnxEncoder was created without a text ONNX file")
        tokens = tokens if hasattr(tokens, "shape") else np.asarray(tokens, np.int64)
        check_text_input(tokens, self.context_length, self.vocab_size)
        return self._run(self.text, tokens, np.int64)
