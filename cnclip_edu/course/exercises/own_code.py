""""Write it yourself": while a student's answer runs, the library routines the exercise builds raise.

    result = own_code(answer, reference, ex_builds, lambda: answer(x))

An answer that only calls the library's own implementation of the piece being built (`ClipLoss` for
04.1, `accumulated_step` for 04.4, `LMDBDataset` for 05.3) would pass every case: it *is* the
reference. So, in the notebook as well as under grading, a case runs the answer with those routines
disarmed: calling one raises a RuntimeError that names it, and the check reports that (in Chinese).
The reference itself runs untouched. Routines are disarmed by swapping their code object, so a name
the notebook imported earlier (`from cnclip_edu.loss import contrastive_loss`) is caught too.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable

LIBRARY_CALLED = "这一题要你自己写：你的答案调用了库里的实现（库的版本只用来和你的答案比较）"


def _tripwire(*args, **kwargs):
    raise RuntimeError("这一题要你自己写：你的答案调用了库里的实现（库的版本只用来和你的答案比较）")


def _resolve(dotted: str) -> Any:
    """'pkg.mod.Class.method' -> the plain function object behind it."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return getattr(obj, "__func__", obj)
    raise ImportError(dotted)


@contextlib.contextmanager
def disarmed(builds: tuple[str, ...]):
    """Inside: every routine in `builds` raises RuntimeError(LIBRARY_CALLED) when called."""
    saved = []
    try:
        for dotted in builds:
            fn = _resolve(dotted)
            saved.append((fn, fn.__code__))
            fn.__code__ = _tripwire.__code__.replace(co_name=fn.__code__.co_name)
        yield
    finally:
        for fn, code in saved:
            fn.__code__ = code


def own_code(answer: Any, reference: Any, builds: tuple[str, ...], call: Callable[[], Any]) -> Any:
    """`call()` with `builds` disarmed unless `answer` is the reference."""
    if answer is reference or not builds:
        return call()
    with disarmed(builds):
        return call()


def guarded(answer: Any, reference: Any, builds: tuple[str, ...]) -> Any:
    """`answer` as a callable that runs with `builds` disarmed (the reference is returned as it is)."""
    if answer is reference or not builds or not callable(answer):
        return answer

    def run(*args, **kwargs):
        with disarmed(builds):
            return answer(*args, **kwargs)

    return run
