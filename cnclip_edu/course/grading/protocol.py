"""Plain data between the student's kernel and the grader: JSON plus numpy `.npy` blobs, never pickle.

The kernel encodes what an answer returned (`encode`), the grader decodes it (`decode`) with
`numpy.load(..., allow_pickle=False)`: whatever the kernel writes, decoding yields only numbers,
strings, bools, None, numpy arrays / torch tensors and lists, tuples and dicts of those — no object
of the student's can reach the grader's process. Anything else is refused when encoding
(`NotPlainData`), so an exercise whose result is a module or a model is named, not smuggled.

A value is a JSON tree; containers and arrays are tagged objects so that types survive the trip
(a tuple stays a tuple, a torch tensor a torch tensor, an int key an int key):
`{"t": "tuple", "v": [...]}`, `{"t": "dict", "v": [[key, value], ...]}`, `{"t": "tensor", "b": 3,
"dtype": "bfloat16"}` (blob 3 holds the array), `{"t": "ndarray", "b": 0}`, `{"t": "npscalar", "b": 1}`,
`{"t": "float", "v": "nan"}`, `{"t": "bytes", "v": base64}`, `{"t": "set" | "frozenset", "v": [...]}`,
`{"t": "ellipsis"}`. Lists and JSON scalars stand for themselves.
"""
from __future__ import annotations

import base64
import io
import json
import math
from typing import Any

MAX_DEPTH = 64


class NotPlainData(TypeError):
    """A value that cannot travel as plain data (a function, a module, a model, ...)."""


def _npy(arr) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach") and hasattr(x, "dtype")


def _is_numpy(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "numpy"


def encode(value: Any) -> tuple[dict, list[bytes]]:
    """-> (a JSON-able document, the blobs it points to). Raises NotPlainData."""
    blobs: list[bytes] = []

    def blob(arr) -> int:
        blobs.append(_npy(arr))
        return len(blobs) - 1

    def enc(x: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise NotPlainData("nested too deeply")
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int):
            return x if type(x) is int else int(x)
        if isinstance(x, float):
            return x if math.isfinite(x) else {"t": "float", "v": repr(float(x))}
        if x is Ellipsis:
            return {"t": "ellipsis"}
        if isinstance(x, (bytes, bytearray)):
            return {"t": "bytes", "v": base64.b64encode(bytes(x)).decode("ascii")}
        if _is_torch(x):
            import torch

            t = x.detach().cpu()
            if t.is_sparse:
                t = t.to_dense()
            dtype = str(t.dtype).replace("torch.", "")
            arr = (t.float() if t.dtype in (torch.bfloat16,) else t).resolve_conj().numpy()
            return {"t": "tensor", "b": blob(arr), "dtype": dtype}
        if _is_numpy(x):
            import numpy as np

            if isinstance(x, np.ndarray):
                if x.dtype.hasobject:
                    raise NotPlainData("a numpy array of Python objects")
                return {"t": "ndarray", "b": blob(x)}
            if isinstance(x, np.generic) and not isinstance(x, np.object_):
                return {"t": "npscalar", "b": blob(np.asarray(x))}
        if isinstance(x, list):
            return [enc(v, depth + 1) for v in x]
        if isinstance(x, tuple):
            return {"t": "tuple", "v": [enc(v, depth + 1) for v in x]}
        if isinstance(x, dict):
            return {"t": "dict", "v": [[enc(k, depth + 1), enc(v, depth + 1)] for k, v in x.items()]}
        if isinstance(x, (set, frozenset)):
            return {"t": type(x).__name__ if type(x) in (set, frozenset) else "set",
                    "v": [enc(v, depth + 1) for v in x]}
        raise NotPlainData(f"{type(x).__module__}.{type(x).__qualname__}")

    return {"value": enc(value, 0)}, blobs


def is_plain(value: Any) -> bool:
    """Whether `value` is plain data (checked without keeping the encoding)."""
    try:
        encode(value)
        return True
    except NotPlainData:
        return False
    except Exception:  # a tensor that will not move to the CPU, ...
        return False


def dumps(value: Any) -> tuple[str, list[bytes]]:
    doc, blobs = encode(value)
    return json.dumps(doc, ensure_ascii=False), blobs


def decode(doc: Any, blobs: list[bytes], max_bytes: int = 512 * 2 ** 20) -> Any:
    """The value of an `encode`d document. Raises ValueError on anything that is not plain data."""
    import numpy as np

    if sum(len(b) for b in blobs) > max_bytes:
        raise ValueError("results too large")

    def arr(i: Any):
        if not isinstance(i, int) or not 0 <= i < len(blobs):
            raise ValueError(f"bad blob reference {i!r}")
        return np.load(io.BytesIO(blobs[i]), allow_pickle=False)

    def dec(x: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("nested too deeply")
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, list):
            return [dec(v, depth + 1) for v in x]
        if not isinstance(x, dict):
            raise ValueError(f"unexpected {type(x).__name__}")
        tag = x.get("t")
        if tag == "tuple":
            return tuple(dec(v, depth + 1) for v in x["v"])
        if tag == "dict":
            out = {}
            for k, v in x["v"]:
                key = dec(k, depth + 1)
                out[tuple(key) if isinstance(key, list) else key] = dec(v, depth + 1)
            return out
        if tag == "float":
            return float(x["v"])
        if tag == "ellipsis":
            return Ellipsis
        if tag == "bytes":
            return base64.b64decode(str(x["v"]), validate=True)
        if tag in ("set", "frozenset"):
            items = [dec(v, depth + 1) for v in x["v"]]
            items = [tuple(v) if isinstance(v, list) else v for v in items]
            return set(items) if tag == "set" else frozenset(items)
        if tag == "ndarray":
            return arr(x["b"])
        if tag == "npscalar":
            return arr(x["b"])[()]
        if tag == "tensor":
            import torch

            a = arr(x["b"])
            t = torch.from_numpy(a.copy())
            dtype = getattr(torch, str(x.get("dtype", "")), None)
            return t.to(dtype) if isinstance(dtype, torch.dtype) and dtype != t.dtype else t
        raise ValueError(f"unknown tag {tag!r}")

    if not isinstance(doc, dict) or "value" not in doc:
        raise ValueError("not a result document")
    return dec(doc["value"], 0)


def loads(text: str, blobs: list[bytes]) -> Any:
    return decode(json.loads(text), blobs)
