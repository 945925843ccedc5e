"""Checked exercises: a student's build-along answer compared with the library on fixed cases.

    from cnclip_edu.course import check
    check("02.1", patchify)        # ✅ 练习 02.1 通过 (3/3), or a Chinese message saying what is wrong

Each exercise is registered once (`register`) in the module of its notebook (`nb02.py`, ...,
or one of its parts `nb03_checkpoint.py`, ... that `nb03.py` imports): an id,
a Chinese title and hint, points, a `reference` (usually the library's own function, or a number)
and the cases to run. A case runs the answer and the reference the same way and compares the two
results, so a check proves "same output as the tested library on these inputs", nothing weaker.

Three outcomes: a pass prints one line; a missing answer (the student version's
`raise NotImplementedError`, `...` or `None`) raises `ExerciseNotAttempted`; a wrong one raises
`ExerciseFailed` naming the case, what was expected, what came out and the hint. Both are
AssertionErrors whose traceback in Jupyter is just that message (`_render_traceback_`), not 40
lines of our internals. With `CNCLIP_EXERCISE_LOG=path` set, each check also appends one JSON line
(id, passed, points, error) — a convenience for the student's own records: the grader does not read it.

Grading (`cnclip-edu grade`, course/grading/) never trusts what `check` said in the student's kernel:
`check` records each answer in `_ANSWERS`, and after the check cell has run the grader re-runs the
recorded answer on its own cases (public and hidden) and compares the results in its own process.
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .compare import default_compare, show


class _ExerciseMessage(AssertionError):
    """An AssertionError that Jupyter shows as its message only."""

    def __init__(self, exercise_id: str, message: str):
        super().__init__(message)
        self.exercise_id = exercise_id

    def _render_traceback_(self) -> list[str]:  # IPython: use these lines instead of the traceback
        return [f"{type(self).__name__}: {self}"]


class ExerciseNotAttempted(_ExerciseMessage):
    """The answer is still the stub (NotImplementedError, `...` or None)."""


class ExerciseFailed(_ExerciseMessage):
    """The answer ran but differs from the reference (or raised) on a case."""


@dataclass(frozen=True)
class Case:
    label: str                     # what the input is, in Chinese, as the student will read it
    run: Callable[[Any], Any]      # answer -> result; called with the reference too


@dataclass(frozen=True)
class Exercise:
    id: str                        # "02.1": notebook 02, exercise 1 ("02.q1" for a question)
    title: str                     # Chinese
    points: int
    hint: str                      # Chinese; names the usual mistake
    reference: Any                 # a correct answer: the library's function, or the value
    cases: Callable[[], Sequence[Case]] | None = None   # built lazily; None: the answer is a value
    compare: Callable[[Any, Any], str | None] | None = None   # None if equal, else what differs
    # the wrong answers a student plausibly writes (description -> answer); tests/test_exercises.py
    # proves each one is rejected, so a check cannot pass everything
    mutants: Callable[[], dict[str, Any]] | None = None
    # grading cases drawn at grading time from a per-student seed, besides the public `cases`; a case's
    # label names its kind ("长度恰好等于上限的词"), which is all the feedback shows of it. Results must be
    # plain data (tensors / arrays, numbers, str, bool, None, and lists / tuples / dicts of those): the
    # grader compares them in its own process
    hidden: Callable[[int], Sequence[Case]] | None = None
    # dotted names of the library routines this exercise builds ("cnclip_edu.tokenizer.Tokenizer.wordpiece"):
    # while graded they are tripwires, and an answer that reaches one scores 0 for this exercise
    builds: tuple[str, ...] = ()
    # earlier exercises whose answers this one calls (a stub there is named when this one fails)
    needs: tuple[str, ...] = ()
    # False for a decision whose expected value *is* the answer (a table to derive): a failed check then shows
    # what the student wrote and where it differs, never the reference
    show_expected: bool = True

    def run_cases(self) -> Sequence[Case]:
        return self.cases() if self.cases is not None else [Case("你的答案", lambda answer: answer)]


_REGISTRY: dict[str, Exercise] = {}
_LOADED = False
# the last answer handed to `check` for each id, in this process (the grader re-runs these)
_ANSWERS: dict[str, Any] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.id in _REGISTRY and _REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise {exercise.id!r} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load_all() -> None:
    """Import every `nbNN` module of this package: each registers its notebook's exercises."""
    global _LOADED
    if not _LOADED:
        here = str(Path(__file__).resolve().parent)
        for info in sorted(pkgutil.iter_modules([here]), key=lambda m: m.name):
            if re.fullmatch(r"nb\d\d", info.name):
                importlib.import_module(f"{__package__}.{info.name}")
        _LOADED = True


def _natural(exercise_id: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", exercise_id)]


def all_ids() -> list[str]:
    """Every exercise id, in notebook order ("01.1", "01.2", ..., "02.q1", ...)."""
    _load_all()
    return sorted(_REGISTRY, key=_natural)


def get(exercise_id: str) -> Exercise:
    _load_all()
    try:
        return _REGISTRY[exercise_id]
    except KeyError:
        raise KeyError(f"没有编号为 {exercise_id!r} 的练习 (no exercise {exercise_id!r}); "
                       f"已有：{', '.join(all_ids())}") from None


def _log(exercise: Exercise, passed: bool, error: str = "") -> None:
    path = os.environ.get("CNCLIP_EXERCISE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"id": exercise.id, "passed": passed, "points": exercise.points if passed else 0,
                                "error": error}, ensure_ascii=False) + "\n")


def _not_attempted(ex: Exercise) -> ExerciseNotAttempted:
    msg = (f"练习 {ex.id}「{ex.title}」还没有作答：删掉 raise NotImplementedError，写上你的代码后再运行这一格和检查格。"
           f"\n提示：{ex.hint}")
    err = ExerciseNotAttempted(ex.id, msg)
    err.log_detail = "not attempted"
    return err


def _failed(ex: Exercise, index: int, total: int, case: Case, detail: str) -> ExerciseFailed:
    msg = f"练习 {ex.id}「{ex.title}」未通过：用例 {index}/{total}「{case.label}」\n{detail}\n提示：{ex.hint}"
    err = ExerciseFailed(ex.id, msg)
    err.log_detail = f"case {index}/{total} ({case.label}): {detail}"
    return err


_STUB = re.compile(r"练习 (\d\d\.q?\d+)")


def _stub_of_other(ex: Exercise, exc: NotImplementedError) -> str | None:
    """The id of another exercise whose student stub raised `exc` (`raise NotImplementedError("练习 01.2")`)."""
    m = _STUB.search(str(exc))
    return m.group(1) if m and m.group(1) != ex.id else None


def _judge(ex: Exercise, answer: Any) -> int:
    """Run every case; -> how many passed (all of them), or raise ExerciseNotAttempted / ExerciseFailed."""
    if answer is None or answer is Ellipsis:
        raise _not_attempted(ex)
    if os.environ.get("CNCLIP_GRADING") and ex.cases is not None and answer is ex.reference:
        raise _failed(ex, 1, 1, Case("提交的答案", lambda a: a), "交上来的是库里的参考实现本身，不是你写的代码")
    cases = ex.run_cases()
    compare = ex.compare or default_compare
    for i, case in enumerate(cases, 1):
        expected = case.run(ex.reference)
        try:
            got = case.run(answer)
        except NotImplementedError as exc:
            other = _stub_of_other(ex, exc)
            if other:
                raise _failed(ex, i, len(cases), case, f"这一题用到了练习 {other} 的答案，但练习 {other} 还没有完成："
                                                       f"先回去完成它。") from None
            raise _not_attempted(ex) from None
        except Exception as exc:  # the student's code raised: say what, on which case
            raise _failed(ex, i, len(cases), case, f"你的代码抛出了 {type(exc).__name__}: {exc}") from None
        diff = compare(expected, got)
        if diff:
            detail = (f"期望：{show(expected)}\n" if ex.show_expected else "") + f"得到：{show(got)}\n差别：{diff}"
            raise _failed(ex, i, len(cases), case, detail)
    return len(cases)


def check(exercise_id: str, answer: Any) -> None:
    """Run exercise `exercise_id` on `answer`: print ✅ or raise ExerciseNotAttempted / ExerciseFailed."""
    ex = get(exercise_id)
    _ANSWERS[ex.id] = answer
    try:
        n = _judge(ex, answer)
    except _ExerciseMessage as err:
        _log(ex, False, getattr(err, "log_detail", str(err)))
        raise
    _log(ex, True)
    print(f"✅ 练习 {ex.id} 通过 ({n}/{n})")


def passes(exercise_id: str, answer: Any) -> bool:
    """Whether `answer` passes, quietly (nothing printed or logged). A notebook uses it to go on with the
    student's own result only when it is right, and with the library's otherwise."""
    try:
        _judge(get(exercise_id), answer)
        return True
    except _ExerciseMessage:
        return False
