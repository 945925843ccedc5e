"""Tripwires: while a student's answer runs in a check, the library routines the exercise builds raise.

An exercise that asks the student to write `basic_tokenize` proves nothing if the answer is
`return tok.basic_tokenize(text)`: it equals the reference on every case. So while the answer runs,
each routine named in `Exercise.builds` ("cnclip_edu.tokenizer.Tokenizer.basic_tokenize") is swapped
for one that raises `LibraryRoutineUsed`, and the check says in Chinese which routine was reached.

How: the routine's `__code__` is replaced (and put back afterwards), not the module attribute. A
notebook that did `from cnclip_edu.tokenizer import tokenize` holds the function object itself, and
a bound method `tok.encode` is looked up on the class at call time: swapping the code reaches both.
The swapped code calls `__cnclip_tripwire__` from the routine's own module globals (the only globals
a function's code can see), which is set for the duration of the check.

Only plain Python functions without closures can be tripped; anything else is left alone. The
reference runs unguarded (it *is* the library).
"""
from __future__ import annotations

import contextlib
import importlib
import sys
import types
from typing import Any, Callable, Iterator, Sequence

_HOOK = "__cnclip_tripwire__"


class LibraryRoutineUsed(RuntimeError):
    """The answer called a library routine that the exercise asks the student to write."""

    def __init__(self, name: str):
        super().__init__(f"你的答案调用了库里现成的 {name}：这一题要你自己写出它，不能直接调用库的实现")
        self.routine = name


def _trip(*args, **kwargs):  # its code replaces a tripped routine's code; the hook is in that module's globals
    return __cnclip_tripwire__()  # noqa: F821


def _hook() -> None:
    raise LibraryRoutineUsed(sys._getframe(1).f_code.co_name)  # the swapped code is named after the routine


def resolve(dotted: str) -> Any:
    """'cnclip_edu.tokenizer.Tokenizer.encode' -> the function object (import the longest module prefix)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(f"cannot resolve {dotted!r}")


@contextlib.contextmanager
def armed(names: Sequence[str]) -> Iterator[None]:
    """Within the block, calling any of the named routines raises LibraryRoutineUsed."""
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    hooked: list[dict] = []
    try:
        for name in names:
            fn = resolve(name)
            if not isinstance(fn, types.FunctionType) or fn.__code__.co_freevars:
                continue
            names_kw = {"co_name": name}
            if hasattr(_trip.__code__, "co_qualname"):  # Python >= 3.11
                names_kw["co_qualname"] = name
            code = _trip.__code__.replace(**names_kw)
            if _HOOK not in fn.__globals__:
                fn.__globals__[_HOOK] = _hook
                hooked.append(fn.__globals__)
            swapped.append((fn, fn.__code__))
            fn.__code__ = code
        yield
    finally:
        for fn, code in reversed(swapped):
            fn.__code__ = code
        for g in hooked:
            g.pop(_HOOK, None)


def guarded(answer: Any, reference: Any, names: Sequence[str]) -> Any:
    """`answer` wrapped so that it runs with the tripwires armed; the reference (or a non-callable
    answer) is returned as it is."""
    if answer is reference or not callable(answer) or not names:
        return answer

    def run(*args, **kwargs):
        with armed(names):
            return answer(*args, **kwargs)

    return run


def guard_for(reference: Any, names: Sequence[str], warm: Callable[[], Any] | None = None) -> Callable[[Any], Any]:
    """A `guard(answer)` for an exercise's cases: `warm` first builds what the library caches (so the
    tripwires never fire inside the library's own set-up)."""
    def guard(answer: Any) -> Any:
        if warm is not None:
            warm()
        return guarded(answer, reference, names)
    return guard
