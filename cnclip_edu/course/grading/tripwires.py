"""Tripwires: while the grader re-runs an answer, the library routines its exercise builds refuse to run.

An exercise names what it builds (`Exercise.builds`, dotted paths such as
"cnclip_edu.tokenizer.Tokenizer.basic_tokenize"). `arm(paths)` swaps the *code object* of each of
those Python functions (`fn.__code__`) for one that raises `Tripped` — so every reference to the
function trips, also one the student captured earlier (`f = tok.basic_tokenize`,
`from m import fn as g`, a bound method, a decorator's `__wrapped__`): they all share the function
object whose code was swapped. A class path trips every function defined in its body (methods,
static and class methods, properties). A routine without Python code (a C builtin) is replaced on its
module or class instead, which only catches lookups made while armed. `disarm()` puts everything back.

`Tripped` derives from BaseException, so `except Exception` in an answer does not swallow it; every
trip is also recorded (`hits`), so an answer that catches it anyway is still known to have reached
the library. `intact()` says whether the swapped code is still in place (an answer that put the
original code back has bypassed the wire on purpose).

This module runs in the student's kernel: the grader loads a fresh copy of it from its file for
every probe rather than importing it, so a notebook cannot have replaced it beforehand.
"""
from __future__ import annotations

import importlib
import inspect
import types
import warnings
from typing import Any, Callable


class Tripped(BaseException):
    """An answer reached a library routine its exercise builds."""


def _trip_code(fn: types.FunctionType, name: str, hook: Callable[[str], BaseException]) -> types.CodeType:
    """A code object that raises `hook(name)`, with as many free variables as `fn` has (a closure's code
    can only be swapped for code with as many). `hook` and `name` are constants of the code, not names
    looked up in the library module's globals."""
    free = [f"_v{i}" for i in range(len(fn.__code__.co_freevars))]
    lines = ["def _outer():"] + [f"    {v} = None" for v in free] + ["    def _trip(*args, **kwargs):"]
    if free:
        lines.append("        (" + ", ".join(free) + ",)")
    lines += ['        raise "__cnclip_hook__"("__cnclip_name__")', "    return _trip"]
    scope: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "'str' object is not callable": the constants are swapped below
        exec(compile("\n".join(lines), f"<tripwire {name}>", "exec"), scope)
    code = scope["_outer"]().__code__
    swap = {"__cnclip_hook__": hook, "__cnclip_name__": name}
    names = {"co_name": fn.__code__.co_name}
    if hasattr(code, "co_qualname"):  # Python >= 3.11
        names["co_qualname"] = fn.__code__.co_qualname
    return code.replace(co_consts=tuple(swap.get(c, c) if isinstance(c, str) else c for c in code.co_consts), **names)


def _functions_of(obj: Any) -> list[types.FunctionType]:
    """The Python functions behind `obj` (unwrapping static/class methods, properties, decorators)."""
    out: list[types.FunctionType] = []

    def add(f: Any) -> None:
        seen = 0
        while f is not None and seen < 10:
            if isinstance(f, (staticmethod, classmethod)):
                f = f.__func__
                continue
            if isinstance(f, property):
                for part in (f.fget, f.fset, f.fdel):
                    add(part)
                return
            if isinstance(f, types.MethodType):
                f = f.__func__
                continue
            if isinstance(f, types.FunctionType) and f not in out:
                out.append(f)
            f = getattr(f, "__wrapped__", None)
            seen += 1

    if inspect.isclass(obj):
        for value in vars(obj).values():
            if isinstance(value, (types.FunctionType, staticmethod, classmethod, property)):
                add(value)
    else:
        add(obj)
    return out


def resolve(path: str) -> tuple[Any, str, Any] | None:
    """(owner, attribute name, raw attribute) for a dotted path, or None when it does not exist here
    (e.g. cn_clip not installed). The longest importable prefix is the module."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except Exception:
            continue
        break
    else:
        return None
    owner, attr = None, parts[i - 1]
    for attr in parts[i:]:
        owner = obj
        try:
            obj = inspect.getattr_static(owner, attr)
        except AttributeError:
            return None
    if owner is None:  # the path is a module: nothing callable to trip
        return None
    return owner, attr, obj


class Armed:
    """The tripwires of one exercise, armed; `disarm()` restores the library."""

    def __init__(self, paths: tuple[str, ...] | list[str]):
        self.hits: list[str] = []
        self._codes: list[tuple[types.FunctionType, types.CodeType, types.CodeType]] = []
        self._attrs: list[tuple[Any, str, Any]] = []
        self.missing: list[str] = []
        for path in paths:
            found = resolve(path)
            if found is None:
                self.missing.append(path)
                continue
            owner, attr, raw = found
            fns = _functions_of(raw)
            for fn in fns:
                if any(fn is f for f, _, _ in self._codes):
                    continue
                trip = _trip_code(fn, path, self._hook)
                original = fn.__code__
                fn.__code__ = trip
                self._codes.append((fn, original, trip))
            if not fns and callable(raw):  # a builtin: replace the attribute itself
                self._attrs.append((owner, attr, raw))
                setattr(owner, attr, self._wrapper(path))

    def _hook(self, name: str) -> BaseException:
        self.hits.append(name)
        return Tripped(f"用了库自己的实现：{name}")

    def _wrapper(self, name: str) -> Callable[..., Any]:
        def tripped(*args: Any, **kwargs: Any) -> Any:
            raise self._hook(name)
        return tripped

    def intact(self) -> bool:
        return all(fn.__code__ is trip for fn, _, trip in self._codes)

    def disarm(self) -> None:
        for fn, original, _ in self._codes:
            fn.__code__ = original
        for owner, attr, raw in self._attrs:
            setattr(owner, attr, raw)
        self._codes, self._attrs = [], []


def arm(paths: tuple[str, ...] | list[str]) -> Armed:
    return Armed(paths)
