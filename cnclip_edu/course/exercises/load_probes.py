"""Two referees for exercise 03.7 (loading a cn_clip checkpoint safely and strictly).

`_Payload` makes a file whose unpickling would run code (`_mark_ran`: it only leaves a marker file
behind), which a safe loader refuses. `_record_loads` reads the arguments that `torch.load` /
`load_state_dict` were given: on torch >= 2.6 a bare `torch.load(path)` is safe only by default, which
is what the notebook tells students not to rely on, and `strict=True` is the default too.
"""
from __future__ import annotations

import functools
import inspect
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

def _mark_ran(marker: str) -> int:
    """What the malicious file runs when it is unpickled: it only leaves a marker file behind (a real
    attacker's file would run anything here), so the case can tell that the file's code ran."""
    Path(marker).write_text("ran")
    return 0


class _Payload:
    """An object whose unpickling calls `_mark_ran`: `torch.load(weights_only=True)` refuses it,
    `weights_only=False` (and torch < 2.6's default) runs it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _mark_ran, (self.marker,)


_TORCH_LOAD_CODE = inspect.unwrap(torch.load).__code__


@contextmanager
def _record_loads() -> Iterator[dict[str, list]]:
    """Record how `torch.load` and `nn.Module.load_state_dict` are called while the block runs.

    `torch.load`: a profile hook reads the arguments as the call starts (any alias of the function runs
    the same code object), so `weights_only` / `map_location` are what the caller passed or the
    default (None on torch >= 2.6, False before). `load_state_dict`: its default `strict=True` cannot be
    told from an explicit one by the values, so the method is wrapped and the call's own arguments read."""
    seen: dict[str, list] = {"load": [], "strict": []}

    def hook(frame, event, arg):
        if event == "call" and frame.f_code is _TORCH_LOAD_CODE:
            seen["load"].append((frame.f_locals.get("weights_only"), frame.f_locals.get("map_location")))

    original = torch.nn.Module.load_state_dict
    signature = inspect.signature(original)

    @functools.wraps(original)
    def recording(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        seen["strict"].append(bound.arguments.get("strict", "默认值"))
        return original(self, *args, **kwargs)

    previous = sys.getprofile()
    torch.nn.Module.load_state_dict = recording
    sys.setprofile(hook)
    try:
        yield seen
    finally:
        sys.setprofile(previous)
        torch.nn.Module.load_state_dict = original
