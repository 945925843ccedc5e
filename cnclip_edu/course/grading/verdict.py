"""Judging in the grader's own process: what the kernel's probe returned against the reference.

For each exercise the grader draws the same cases the probe ran (the public ones, then the hidden
ones from the student's seed), computes the reference's results itself and compares them with
`compare.default_compare` (or the exercise's own `compare`). Only plain data decoded from the probe's
files (protocol.py) enters this process. The outcome is the points and, for a loss, one reason:

stub · public (wrong on a public case, named) · hidden (wrong on a hidden case: only its kind is
named, never its input) · library (reached a routine the exercise builds) · timeout · crash (the
answer raised; on a hidden case only the exception's type is named) · needs (it calls an earlier
exercise that is still a stub) · check_deleted · not_reached (the notebook stopped before the check)
· missing (no notebook) · bad_results (the probe's files could not be read).

An answer that is plain data (a number, a tensor, the stub's None) is judged here on the cases
directly. An answer that is code is judged by what it returned in the kernel, case by case. An
answer that is neither (an object whose results are not plain data) cannot be compared outside the
kernel and scores 0 with that reason: exercises must return plain data (tests/test_exercises.py).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from ..exercises import core
from ..exercises.compare import default_compare, show
from . import protocol

REASONS = {
    "ok": "通过 (passed)",
    "stub": "未作答 (stub)",
    "public": "公开用例不对 (wrong on a public case)",
    "hidden": "隐藏用例不对 (wrong on a hidden case)",
    "library": "用了库自己的实现 (library used)",
    "timeout": "超时 (timeout)",
    "crash": "代码出错 (crash)",
    "needs": "用到的练习还没完成 (needs an unfinished exercise)",
    "check_deleted": "检查格被删除 (check deleted)",
    "not_reached": "没有运行到检查 (check not reached)",
    "missing": "没有交 (notebook missing)",
    "bad_results": "评分数据无法读取 (results unreadable)",
    "not_plain": "结果不是纯数据，无法比较 (result not plain data)",
}
_OTHER_STUB = re.compile(r"练习 (\d\d\.q?\d+)")
# the in-check guards of the exercises (exercises/tripwire.py raises LibraryRoutineUsed, exercises/guards.py
# returns the marker {"调用了库里的实现": name}): when the probe re-runs a case they fire before the grader's
# own tripwires, and mean the same thing
_GUARD_ERROR = "LibraryRoutineUsed"
_GUARD_MARK = "调用了库里的实现"
_ROUTINE = re.compile(r"现成的 (\S+?)(?:：|$)")
_LOCK = threading.Lock()   # references are computed one at a time (torch, shared caches)
_PUBLIC_CACHE: dict[tuple[str, int], list[Any]] = {}   # the public cases' reference results, per exercise


@dataclass
class ExerciseResult:
    id: str
    points: int                 # earned
    max_points: int
    reason: str = "ok"          # a key of REASONS
    detail: str = ""            # Chinese, for the feedback file (never a hidden input)

    @property
    def summary(self) -> str:
        return REASONS[self.reason] + (f"：{self.detail}" if self.detail and self.reason in
                                       ("hidden", "library", "crash", "needs", "not_plain") else "")


def student_seed(secret: int, student: str, exercise_id: str) -> int:
    digest = hashlib.sha256(f"{secret}\0{student}\0{exercise_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _cases(ex: core.Exercise, seed: int) -> tuple[list, int]:
    """(public + hidden cases, how many are public)."""
    public = list(ex.run_cases())
    hidden = list(ex.hidden(seed)) if ex.hidden is not None else []
    return public + hidden, len(public)


def _expected(ex: core.Exercise, cases: list, n_public: int) -> list[Any]:
    key = (ex.id, id(ex))
    if key not in _PUBLIC_CACHE:
        _PUBLIC_CACHE[key] = [c.run(ex.reference) for c in cases[:n_public]]
    return _PUBLIC_CACHE[key] + [c.run(ex.reference) for c in cases[n_public:]]


def _wrong(ex: core.Exercise, index: int, n_public: int, label: str, diff: str) -> tuple[str, str]:
    if index < n_public:
        return "public", f"用例 {index + 1}「{label}」：{diff}"
    return "hidden", f"隐藏用例（类型：{label}）"


def _judge_value(ex: core.Exercise, answer: Any, cases: list, n_public: int) -> tuple[str, str]:
    if answer is None or answer is Ellipsis:
        return "stub", ""
    compare = ex.compare or default_compare
    expected = _expected(ex, cases, n_public)
    for i, (case, want) in enumerate(zip(cases, expected)):
        try:
            got = case.run(answer)
        except Exception as exc:  # the value has the wrong type for this exercise
            return _wrong(ex, i, n_public, case.label, f"答案用不了：{type(exc).__name__}")
        diff = compare(want, got)
        if diff:
            return _wrong(ex, i, n_public, case.label, diff)
    return "ok", ""


def _judge_runs(ex: core.Exercise, doc: dict, blobs: list[bytes], cases: list, n_public: int) -> tuple[str, str]:
    records = doc.get("cases")
    if not isinstance(records, list) or len(records) > len(cases):
        return "bad_results", "用例数目不符"
    if doc.get("hits") or any(isinstance(r, dict) and "tripped" in r for r in records):
        hit = next((r["tripped"] for r in records if isinstance(r, dict) and "tripped" in r), None)
        return "library", str(hit or (doc.get("hits") or ["?"])[0])[:120]
    if doc.get("intact") is False:
        return "library", "评分时库函数的代码被换了回去 (tripwire removed)"
    compare = ex.compare or default_compare
    expected = None
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            return "bad_results", "用例结果格式不对"
        label = cases[i].label
        if "raised" in record:
            name, message = str(record["raised"]), str(record.get("message", ""))
            if name == _GUARD_ERROR:
                routine = _ROUTINE.search(message)
                return "library", (routine.group(1) if routine else message)[:120]
            if name == "NotImplementedError":
                other = _OTHER_STUB.search(message)
                if other and other.group(1) != ex.id:
                    return "needs", f"练习 {other.group(1)}"
                return "stub", ""
            if i < n_public:
                return "crash", f"用例 {i + 1}「{label}」抛出 {name}: {message}"[:200]
            return "crash", f"隐藏用例（类型：{label}）抛出 {name}"
        if record.get("timeout"):
            return "timeout", f"{'用例 ' + str(i + 1) if i < n_public else '隐藏用例'}（{label}）"
        if "unencodable" in record:
            return "not_plain", str(record["unencodable"])[:120]
        if "result" not in record:
            return "bad_results", "用例结果格式不对"
        try:
            got = protocol.decode({"value": record["result"]}, blobs)
        except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote
            return "bad_results", f"{type(exc).__name__}"
        if isinstance(got, dict) and set(got) == {_GUARD_MARK}:
            return "library", str(got[_GUARD_MARK])[:120]
        if expected is None:
            expected = _expected(ex, cases, n_public)
        diff = compare(expected[i], got)
        if diff:
            return _wrong(ex, i, n_public, label, diff)
    if len(records) < len(cases):
        return "bad_results", "没有跑完全部用例"
    return "ok", ""


def judge(exercise_id: str, probe: dict | None, seed: int, check_in_source: bool, notebook_error: str) -> ExerciseResult:
    """One exercise from the probe's files (`{"json": text, "blobs": [base64]}` or None)."""
    import base64

    ex = core.get(exercise_id)
    result = ExerciseResult(exercise_id, 0, ex.points)
    if probe is None or "error" in probe or "timeout" in probe or "crash" in probe:
        if probe is not None and "timeout" in probe:
            result.reason, result.detail = "timeout", "评分时重新运行答案超过时限"
        elif probe is not None and "crash" in probe:
            result.reason, result.detail = "crash", str(probe["crash"])[:160]
        elif probe is not None:
            result.reason, result.detail = "bad_results", probe["error"]
        elif not check_in_source:
            result.reason = "check_deleted"
        elif notebook_error.startswith("超时"):
            result.reason = "timeout"
        else:
            result.reason, result.detail = "not_reached", notebook_error
        return result
    try:
        doc = json.loads(probe["json"])
        blobs = [base64.b64decode(b) for b in probe.get("blobs", [])]
        status = doc["status"]
    except Exception as exc:  # noqa: BLE001 - whatever the kernel wrote
        result.reason, result.detail = "bad_results", type(exc).__name__
        return result
    with _LOCK:
        try:
            cases, n_public = _cases(ex, seed)
            if status == "no_answer":
                reason, detail = ("not_reached", notebook_error) if check_in_source else ("check_deleted", "")
                if check_in_source and notebook_error.startswith("超时"):
                    reason = "timeout"
            elif status == "reference":
                reason, detail = "library", "交上来的是库里的参考实现本身"
            elif status == "value":
                try:
                    answer = protocol.decode({"value": doc["value"]}, blobs)
                except Exception as exc:  # noqa: BLE001
                    reason, detail = "bad_results", type(exc).__name__
                else:
                    reason, detail = _judge_value(ex, answer, cases, n_public)
            elif status == "probe_error":
                reason, detail = "bad_results", f"评分程序在内核里出错 (probe error): {doc.get('message', '')}"[:200]
            elif status == "ran":
                reason, detail = _judge_runs(ex, doc, blobs, cases, n_public)
            else:
                reason, detail = "bad_results", f"status {status!r}"
        except Exception as exc:  # noqa: BLE001 - a bug in an exercise's reference: the teacher must see it
            reason, detail = "bad_results", f"评分程序出错 (grader error) {type(exc).__name__}: {exc}"[:200]
    result.reason, result.detail = reason, detail
    result.points = ex.points if reason == "ok" else 0
    return result


__all__ = ["ExerciseResult", "REASONS", "judge", "show", "student_seed"]
