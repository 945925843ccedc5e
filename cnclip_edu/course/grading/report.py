"""What the teacher and the students get: the CSV, one feedback file per student, the pass rates.

CSV (UTF-8 with a byte-order mark, so that Excel shows Chinese names): one row per student folder,
sorted by name whatever order they finished in: `student`, one column per exercise (points earned),
`total`, `max`, `errors` (why the folder, a notebook or an exercise lost points). A cell that starts
with = + - @ (or a tab / carriage return) is prefixed with ' so a spreadsheet shows it as text
instead of running it as a formula.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ...fileio import atomic_write
from .verdict import REASONS, ExerciseResult

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class StudentGrade:
    student: str
    results: dict[str, ExerciseResult] = field(default_factory=dict)
    notebook_errors: list[str] = field(default_factory=list)   # "01_tokenizer.ipynb: why"
    folder_errors: list[str] = field(default_factory=list)     # refused files, an unreadable folder
    wall_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(r.points for r in self.results.values())

    @property
    def max_points(self) -> int:
        return sum(r.max_points for r in self.results.values())

    @property
    def passed(self) -> set[str]:
        return {i for i, r in self.results.items() if r.reason == "ok"}

    @property
    def errors(self) -> str:
        lost = [f"{i}: {r.summary}" for i, r in self.results.items() if r.reason not in ("ok", "missing")]
        return "; ".join(self.folder_errors + self.notebook_errors + lost)


def cell(value: object) -> object:
    """A CSV cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_text(grades: list[StudentGrade], ids: list[str], points: dict[str, int]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *ids, "total", "max", "errors"])
    for g in sorted(grades, key=lambda g: g.student):
        earned = [g.results[i].points if i in g.results else 0 for i in ids]
        writer.writerow([cell(g.student), *earned, sum(earned), sum(points.values()), cell(g.errors)])
    return buf.getvalue()


def write_csv(path: Path, grades: list[StudentGrade], ids: list[str], points: dict[str, int]) -> None:
    atomic_write(path, csv_text(grades, ids, points), encoding="utf-8-sig")


def feedback_markdown(g: StudentGrade, hints: dict[str, str], titles: dict[str, str]) -> str:
    lines = [f"# 评分反馈：{g.student}", "", f"总分 **{g.total} / {g.max_points}**", ""]
    if g.folder_errors or g.notebook_errors:
        lines += ["## 提交的问题", ""] + [f"- {e}" for e in g.folder_errors + g.notebook_errors] + [""]
    lines += ["## 每道练习", "", "| 练习 | 得分 | 结果 |", "|---|---|---|"]
    for i, r in g.results.items():
        lines.append(f"| {i} {titles.get(i, '')} | {r.points} / {r.max_points} | {REASONS[r.reason]} |")
    lost = [r for r in g.results.values() if r.reason != "ok"]
    if lost:
        lines += ["", "## 丢分的原因和提示", ""]
        for r in lost:
            lines.append(f"### {r.id} {titles.get(r.id, '')}")
            lines.append(f"- 原因：{REASONS[r.reason]}" + (f"：{r.detail}" if r.detail else ""))
            lines.append(f"- 提示：{hints.get(r.id, '')}")
            lines.append("")
    lines += ["", "隐藏用例只写出它的类型，不写输入；评分时重新运行的是你交给 `check` 的答案。", ""]
    return "\n".join(lines)


def feedback_name(student: str) -> str:
    """A file name for the student's feedback (their folder name, kept readable; never a path)."""
    safe = "".join("_" if ch in '/\\\0' else ch for ch in student)
    return (safe if not safe.startswith(".") else "_" + safe) + ".md"


def pass_rates(grades: list[StudentGrade], ids: list[str]) -> list[tuple[str, int, int, dict[str, int]]]:
    """Per exercise: (id, passed, graded, how many lost it for each reason)."""
    rows = []
    for i in ids:
        reasons: dict[str, int] = {}
        for g in grades:
            r = g.results.get(i)
            if r is not None and r.reason != "ok":
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
        passed = sum(1 for g in grades if i in g.results and g.results[i].reason == "ok")
        rows.append((i, passed, len(grades), reasons))
    return rows


def summary_markdown(grades: list[StudentGrade], ids: list[str], titles: dict[str, str], sandbox: str) -> str:
    lines = ["# 全班每道练习的通过率", "", f"隔离方式：{sandbox}", "",
             "| 练习 | 通过 | 通过率 | 丢分原因 |", "|---|---|---|---|"]
    for i, passed, n, reasons in pass_rates(grades, ids):
        why = ", ".join(f"{REASONS[k].split(' (')[0]} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        lines.append(f"| {i} {titles.get(i, '')} | {passed}/{n} | {passed / max(n, 1):.0%} | {why or '-'} |")
    return "\n".join(lines) + "\n"
