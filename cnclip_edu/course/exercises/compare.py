"""How a student's answer is compared with the reference: a Chinese sentence saying what differs.

Tensors and arrays: same shape, same kind of number (float vs integer/bool), then close within a
tolerance that forgives float reordering (rtol 1e-4, atol 1e-5) but not a missing scale or a wrong
axis. Numbers: close within the same tolerance. Sequences and dicts: element by element, naming the
first position that differs. Everything else: `==`.
"""
from __future__ import annotations

import math
from typing import Any

RTOL, ATOL = 1e-4, 1e-5


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


def _is_numpy(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "numpy" and hasattr(x, "shape")


def show(x: Any, limit: int = 120) -> str:
    """A short, readable rendering of a value for an error message."""
    if _is_torch(x) or _is_numpy(x):
        arr = x.detach().cpu().float().numpy() if _is_torch(x) and x.is_floating_point() else (
            x.detach().cpu().numpy() if _is_torch(x) else x)
        flat = arr.reshape(-1)[:6]
        vals = ", ".join(f"{v:.4g}" if isinstance(v, float) or getattr(v, "dtype", None) is not None and
                         v.dtype.kind == "f" else str(v) for v in flat.tolist())
        more = ", …" if arr.size > 6 else ""
        return f"{type(x).__name__} 形状 {tuple(arr.shape)} [{vals}{more}]"
    text = repr(x)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(dtype_kind: str) -> str:
    return "浮点数" if dtype_kind in "fc" else "整数/布尔"


def _compare_arrays(expected: Any, got: Any) -> str | None:
    import numpy as np

    if _is_torch(expected):
        if not _is_torch(got):
            return f"应当是 torch.Tensor，得到的是 {type(got).__name__}"
        e, g = expected.detach().cpu(), got.detach().cpu()
        e_kind, g_kind = ("f" if e.is_floating_point() else "i"), ("f" if g.is_floating_point() else "i")
        e, g = e.double().numpy() if e_kind == "f" else e.numpy(), g.double().numpy() if g_kind == "f" else g.numpy()
    else:
        if not (_is_numpy(got) or _is_torch(got)):
            return f"应当是数组 (numpy.ndarray)，得到的是 {type(got).__name__}"
        e = np.asarray(expected)
        g = got.detach().cpu().numpy() if _is_torch(got) else np.asarray(got)
        e_kind, g_kind = ("f" if e.dtype.kind in "fc" else "i"), ("f" if g.dtype.kind in "fc" else "i")
    if tuple(e.shape) != tuple(g.shape):
        return f"形状 (shape) 不同：期望 {tuple(e.shape)}，得到 {tuple(g.shape)}"
    if e_kind != g_kind:
        return f"数的类型不同：期望{_kind(e_kind)}，得到{_kind(g_kind)}"
    if e_kind != "f":
        bad = np.argwhere(e != g)
        if len(bad):
            pos = tuple(int(i) for i in bad[0])
            return f"共 {len(bad)} 个元素不同，第一个在位置 {pos}：期望 {e[pos]}，得到 {g[pos]}"
        return None
    if not np.isfinite(g).all() and np.isfinite(e).all():
        return "结果里有 NaN 或 inf"
    close = np.isclose(g, e, rtol=RTOL, atol=ATOL)
    if close.all():
        return None
    diff = np.abs(g - e)
    pos = tuple(int(i) for i in np.unravel_index(np.argmax(diff), diff.shape)) if diff.ndim else ()
    return (f"{int((~close).sum())} / {close.size} 个元素超出容差，最大差值 {float(diff.max()):.3g}"
            f"（位置 {pos}：期望 {float(e[pos]):.6g}，得到 {float(g[pos]):.6g}）")


def default_compare(expected: Any, got: Any, where: str = "") -> str | None:
    """None if `got` matches `expected`, else a Chinese sentence saying where and how they differ."""
    at = f"（{where}）" if where else ""
    if _is_torch(expected) or _is_numpy(expected):
        msg = _compare_arrays(expected, got)
        return f"{msg}{at}" if msg else None
    if isinstance(expected, bool) or expected is None:
        return None if got is expected or got == expected else f"期望 {expected!r}，得到 {show(got)}{at}"
    if isinstance(expected, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)) and not hasattr(got, "__float__"):
            return f"应当是一个数，得到的是 {type(got).__name__}{at}"
        g = float(got)
        if isinstance(expected, int) and not isinstance(got, float) and int(g) != expected:
            return f"期望 {expected}，得到 {got}{at}"
        if math.isclose(g, float(expected), rel_tol=RTOL, abs_tol=ATOL):
            return None
        return f"期望 {expected:.6g}，得到 {g:.6g}{at}"
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return f"应当是列表/元组，得到的是 {type(got).__name__}{at}"
        if len(got) != len(expected):
            return f"长度不同：期望 {len(expected)} 个元素，得到 {len(got)} 个{at}"
        for i, (e, g) in enumerate(zip(expected, got)):
            msg = default_compare(e, g, f"{where}第 {i} 个元素" if not where else f"{where} → 第 {i} 个")
            if msg:
                return msg
        return None
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"应当是字典 (dict)，得到的是 {type(got).__name__}{at}"
        if set(expected) != set(got):
            missing, extra = set(expected) - set(got), set(got) - set(expected)
            return f"键不同：缺少 {sorted(map(str, missing))}，多出 {sorted(map(str, extra))}{at}"
        for k in expected:
            msg = default_compare(expected[k], got[k], f"{where}键 {k!r}" if not where else f"{where} → {k!r}")
            if msg:
                return msg
        return None
    return None if got == expected else f"期望 {show(expected)}，得到 {show(got)}{at}"
