"""A referee for exercise 03.1 (BERT's embeddings): the position ids a student makes must sit on the input's device.

`torch.arange(L)` without `device=` makes a CPU tensor; on a GPU, adding it to the embeddings of the
input fails ("not on the same device"). The check runs on a CPU, where the values cannot tell, so
`_DefaultDevice` (a TorchFunctionMode) follows the tensors a factory made without `device=` and
records where one of them meets the input's data.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

_FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor,
              torch.randn, torch.rand, torch.randint, torch.linspace, torch.eye}
_MOVES = {"to", "cuda", "type_as", "new_tensor"}   # ops that put a tensor where the caller says (left unflagged)


class _DefaultDevice(TorchFunctionMode):
    """Find a tensor that a factory (`torch.arange(L)`, ...) made without `device=` and that then meets the
    input's data in one op: on a GPU the two would sit on different devices and the op would fail.

    The check runs on a CPU, where both are on the CPU, so the values cannot tell; this mode follows the
    tensor instead. What it grew into (`.expand`, indexing by it) stays flagged until it is moved (`.to`);
    0-dim tensors are not flagged (PyTorch mixes a CPU scalar with a GPU tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[int, tuple[torch.Tensor, str]] = {}   # id -> (tensor, the factory's name)
        self.mixed: list[str] = []

    def _mark(self, t: Any, name: str) -> None:
        if torch.is_tensor(t) and t.dim() > 0:
            self.made[id(t)] = (t, name)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _FACTORIES:
            if "device" not in kwargs:
                self._mark(out, f"torch.{func.__name__}")
            return out
        tensors = [t for t in tree_flatten((args, kwargs))[0] if torch.is_tensor(t)]
        made = [self.made[id(t)][1] for t in tensors if id(t) in self.made and self.made[id(t)][0] is t]
        if made and getattr(func, "__name__", "") in _MOVES:  # moved where the caller says; on a CPU `.to`
            self.made.pop(id(out), None)                         # returns the same tensor: unmark it
        elif made:
            others = [t for t in tensors if id(t) not in self.made and t.dim() > 0]
            if others:
                self.mixed.append(made[0])
            else:
                self._mark(out, made[0])
        return out
