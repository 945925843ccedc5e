"""Two referees for exercise 07.2 (chunked top-k), so that its check enforces what the notebook teaches.

`ChunkedGallery` stands in for a gallery too large for memory: an answer may ask for its length and
shape and read rows `gallery[start:end]`, at most `chunk_size` rows per read; a larger read, or any
operation on the whole gallery (`gallery.norm(...)`, `q @ gallery.T`, `gallery.float()`), stops with
a Chinese sentence saying why. So an answer that builds the whole (Q, N) similarity matrix cannot pass.

`unstable_ties()` plays a sort that is not stable, as on a GPU: while it is active, every `sort`,
`argsort` and `topk` called WITHOUT `stable=True` returns equal scores in reverse index order (a valid
answer for an unstable sort, whose order among ties is unspecified). Torch's CPU sort happens to keep
equal elements in order on short rows, so without this referee an answer that forgot `stable=True`
would pass the tie cases by luck.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class ChunkReadError(RuntimeError):
    """The answer read more of the gallery at once than one chunk (or used the gallery as a whole)."""


def _how(chunk: int) -> str:
    return (f"检查时的检索库像一个放不进内存、只能分块读的大文件：只能用 len(gallery)、gallery.shape，"
            f"和 gallery[start:end] 一次读出至多一块（chunk_size = {chunk} 条）；归一化、乘法都在读出来的这一块上做。")


class ChunkedGallery:
    """A read-only (N, D) gallery that hands out at most `chunk_size` rows per read."""

    def __init__(self, rows: Any, chunk_size: int):
        self._rows, self._chunk = rows, int(chunk_size)   # rows: a float tensor (N, D)

    # ------------------------------------------------------------------ what an answer may ask
    def __len__(self) -> int:
        return len(self._rows)

    @property
    def shape(self):
        return self._rows.shape

    @property
    def dtype(self):
        return self._rows.dtype

    @property
    def device(self):
        return self._rows.device

    @property
    def ndim(self) -> int:
        return self._rows.ndim

    def size(self, dim: int | None = None):
        return self._rows.size() if dim is None else self._rows.size(dim)

    def dim(self) -> int:
        return self._rows.dim()

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) and key else key
        if isinstance(first, int):
            n = 1
        elif isinstance(first, slice):
            n = len(range(*first.indices(len(self._rows))))
        else:
            raise ChunkReadError(f"检索库只能按连续的行号区间读（gallery[start:end]），不能用 {type(first).__name__} 作下标。"
                                 + _how(self._chunk))
        if n > self._chunk:
            shown = f"{first.start or 0}:{'' if first.stop is None else first.stop}"
            raise ChunkReadError(f"你一次读了检索库的 {n} 条（gallery[{shown}]），超过了一块：练习 07.2 要一块一块地读。"
                                 + _how(self._chunk))
        return self._rows[key].clone()                      # a copy: writing into it leaves the gallery as it was

    def split(self, split_size: int, dim: int = 0) -> tuple:
        if dim not in (0, -self._rows.ndim):
            raise ChunkReadError("检索库只能沿第 0 维（条目那一维）分块。" + _how(self._chunk))
        return tuple(self[s:s + split_size] for s in range(0, len(self._rows), split_size))

    # ------------------------------------------------------------------ what it refuses
    def __getattr__(self, name: str):
        if name.startswith("__"):                          # copy / pickle probing: behave like a plain object
            raise AttributeError(name)
        raise ChunkReadError(f"你对整个检索库用了 gallery.{name}：这等于把它整个读进内存。" + _how(self._chunk))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        chunk = next((a._chunk for a in args if isinstance(a, ChunkedGallery)), 0)
        name = getattr(func, "__name__", str(func))
        raise ChunkReadError(f"你把整个检索库交给了 {name}：这等于把它整个读进内存。" + _how(chunk))

    def __repr__(self) -> str:
        n, d = self._rows.shape
        return f"ChunkedGallery({n} 条 × {d} 维，一次最多读 {self._chunk} 条)"


# ----------------------------------------------------------------------------- an unstable sort
def _arg(args: tuple, kwargs: dict, position: int, name: str, default: Any) -> Any:
    return args[position] if len(args) > position else kwargs.get(name, default)


def _ties_reversed(x, dim: int, descending: bool):
    """Sort `x` along `dim`; equal values come in DEcreasing index order (what an unstable sort may do)."""
    import torch

    n = x.size(dim)
    values, idx = torch.sort(x.flip(dim), dim=dim, descending=descending, stable=True)
    return values, n - 1 - idx


@contextmanager
def unstable_ties() -> Iterator[None]:
    """While active: `sort` / `argsort` / `topk` without `stable=True` put equal scores last index first."""
    import torch
    from torch.overrides import TorchFunctionMode

    sorts = {torch.sort, torch.Tensor.sort}
    argsorts = {torch.argsort, torch.Tensor.argsort}
    topks = {torch.topk, torch.Tensor.topk}

    class _UnstableTies(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if "out" in kwargs or func not in sorts | argsorts | topks:
                return func(*args, **kwargs)
            x = args[0]
            if func in topks:
                k = _arg(args, kwargs, 1, "k", None)
                dim = _arg(args, kwargs, 2, "dim", -1)
                largest = _arg(args, kwargs, 3, "largest", True)
                if not 0 <= k <= x.size(dim):                 # torch's own error for a k out of range
                    return func(*args, **kwargs)
                values, idx = _ties_reversed(x, dim, largest)
                return torch.return_types.topk((values.narrow(dim, 0, k), idx.narrow(dim, 0, k)))
            stable = _arg(args, kwargs, 3, "stable", False) if func in argsorts else kwargs.get("stable", False)
            if stable:
                return func(*args, **kwargs)
            dim = _arg(args, kwargs, 1, "dim", -1)
            descending = _arg(args, kwargs, 2, "descending", False)
            values, idx = _ties_reversed(x, dim, descending)
            return idx if func in argsorts else torch.return_types.sort((values, idx))

    with _UnstableTies():
        yield
