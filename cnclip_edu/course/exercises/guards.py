"""Refuse an answer that reaches the library's own implementation of the piece being built; and a
compare that also insists on the exact dtype (where the exercise's spec names one).

    run = guarded(VisionTransformer.forward, builds=("cnclip_edu.model.vision.VisionTransformer.forward",))
    Case("两张图", lambda f: run(f, model, images))      # the reference runs plainly, an answer under watch

Why a profiler hook and not a patched attribute: a student may hold the library function under any
name (`from cnclip_edu.model.vision import random_masking`, `visual(images)` through nn.Module's
`__call__`), and every one of them runs the same code object; `sys.setprofile` sees each Python call
by its code object, and each call of a C function (`F.scaled_dot_product_attention`) by the
function itself. The watch only records; the case then returns a plain marker instead of the
answer's result, and `refuse_shortcuts(compare)` turns that marker into a Chinese sentence naming
the routine (so the message is about the student's choice, not an exception the checker raised).
"""
from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .compare import default_compare
from .tripwire import resolve  # one resolver for both guards (the grader keeps its own: it runs in the kernel)

MARK = "调用了库里的实现"   # the key of the marker a refused answer returns (plain data: the grader compares it)


@contextmanager
def watch(builds: tuple[str, ...]) -> Iterator[list[str]]:
    """Record (into the yielded list) the dotted names of `builds` called while the block runs."""
    codes, c_funcs = {}, {}
    for dotted in builds:
        obj = inspect.unwrap(resolve(dotted))
        code = getattr(obj, "__code__", None)
        if code is not None:
            codes[code] = dotted
        else:  # a C function (torch.nn.functional.scaled_dot_product_attention)
            c_funcs[id(obj)] = dotted
    hits: list[str] = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            hits.append(codes[frame.f_code])
        elif event == "c_call" and id(arg) in c_funcs:
            hits.append(c_funcs[id(arg)])

    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield hits
    finally:
        sys.setprofile(previous)


def guarded(reference: Any, builds: tuple[str, ...]) -> Callable[..., Any]:
    """-> run(answer, *args): `answer(*args)`; unless `answer` is `reference`, a call into `builds` while it
    runs makes the result the marker `{MARK: 'name'}` instead."""
    def run(answer: Callable[..., Any], *args: Any) -> Any:
        if answer is reference or not builds:
            return answer(*args)
        with watch(builds) as hits:
            result = answer(*args)
        return {MARK: hits[0]} if hits else result
    return run


def refuse_shortcuts(compare: Callable[[Any, Any], str | None] = default_compare) -> Callable[[Any, Any], str | None]:
    """A compare that first says so when the answer returned the shortcut marker."""
    def judged(expected: Any, got: Any) -> str | None:
        if isinstance(got, dict) and set(got) == {MARK}:
            return (f"你的代码调用了库里现成的 {got[MARK]}：这一题要你自己把它写出来"
                    f"（可以用更底层的张量运算和模块的参数，不能调用要你实现的这个函数本身）")
        return compare(expected, got)
    return judged


def strict_dtype(compare: Callable[[Any, Any], str | None] = default_compare) -> Callable[[Any, Any], str | None]:
    """A compare that also requires a tensor result to have exactly the expected dtype (float64 stays
    float64): the default compare only tells floating point from integer."""
    def judged(expected: Any, got: Any) -> str | None:
        if torch_tensor(expected) and torch_tensor(got) and expected.dtype != got.dtype:
            return f"数据类型 (dtype) 不同：期望 {expected.dtype}，得到 {got.dtype}"
        return compare(expected, got)
    return judged


def torch_tensor(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "dtype") and hasattr(x, "detach")
