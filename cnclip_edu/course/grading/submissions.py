"""Reading the hand-ins: every student folder and the teacher's notebooks, into memory, before any
student code runs.

A student folder is read without following links: a symbolic link (to the teacher's solution, to
another student's notebook, ...) is refused and named, and so is anything that is not a plain file
or folder. Nothing is read from the submissions folder after this, so a notebook that later writes
there (or into the teacher's notebooks) changes nobody's grade.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

# folders that tools make next to the students' (named in the report, never graded)
NOT_STUDENTS = {".ipynb_checkpoints", ".git", "__MACOSX", ".Trash", "__pycache__"}
MAX_FILE_BYTES = 64 * 2 ** 20
MAX_FOLDER_BYTES = 256 * 2 ** 20


@dataclass
class Submission:
    student: str                                        # the folder's name, as is
    files: dict[str, bytes] = field(default_factory=dict)   # relative path -> content
    refused: list[str] = field(default_factory=list)        # "path (why)"
    error: str = ""                                     # the whole folder could not be read


def _read_folder(folder: Path, sub: Submission) -> None:
    total = 0
    todo = [Path()]
    while todo:
        rel = todo.pop()
        try:
            entries = sorted(os.scandir(folder / rel), key=lambda e: e.name)
        except OSError as exc:
            sub.refused.append(f"{rel.as_posix() or '.'} (无法读取 unreadable: {exc.strerror})")
            continue
        for entry in entries:
            path = rel / entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                sub.refused.append(f"{path.as_posix()} (无法读取 unreadable: {exc.strerror})")
                continue
            if stat.S_ISLNK(mode):
                sub.refused.append(f"{path.as_posix()} (符号链接被拒绝 symlink refused)")
            elif stat.S_ISDIR(mode):
                if entry.name not in (".ipynb_checkpoints", "__pycache__"):
                    todo.append(path)
            elif not stat.S_ISREG(mode):
                sub.refused.append(f"{path.as_posix()} (不是普通文件 not a regular file)")
            else:
                size = entry.stat(follow_symlinks=False).st_size
                if size > MAX_FILE_BYTES or total + size > MAX_FOLDER_BYTES:
                    sub.refused.append(f"{path.as_posix()} (太大 too large: {size / 2 ** 20:.0f} MB)")
                    continue
                try:
                    fd = os.open(folder / path, os.O_RDONLY | os.O_NOFOLLOW)
                    with os.fdopen(fd, "rb") as f:
                        data = f.read(MAX_FILE_BYTES + 1)
                except OSError as exc:
                    sub.refused.append(f"{path.as_posix()} (无法读取 unreadable: {exc.strerror})")
                    continue
                total += len(data)
                sub.files[path.as_posix()] = data


def read_submissions(folder: Path) -> tuple[list[Submission], list[str]]:
    """(every student, in sorted order; what was skipped and why). A folder name starting with '.' is a
    student like any other, except the tools' own folders (NOT_STUDENTS), which are named as skipped."""
    students, skipped = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        mode = entry.stat(follow_symlinks=False).st_mode
        if entry.name in NOT_STUDENTS:
            skipped.append(f"{entry.name} (工具生成的文件夹，不是学生 a tool's folder)")
        elif stat.S_ISLNK(mode):
            students.append(Submission(entry.name, error="符号链接被拒绝 (symlink refused): 学生文件夹本身是链接"))
        elif stat.S_ISDIR(mode):
            sub = Submission(entry.name)
            try:
                _read_folder(folder / entry.name, sub)
            except OSError as exc:
                sub.error = f"无法读取 (unreadable): {exc}"
            students.append(sub)
        else:
            skipped.append(f"{entry.name} (不是文件夹 not a folder)")
    return students, skipped


def find_submission(files: dict[str, bytes], refused: list[str], notebook: str) -> tuple[str | None, str]:
    """The student's copy of course notebook `notebook` at the top of their folder: (relative path, "") or
    (None, why not). A file starting with the notebook's number (`02_…`) counts when it is the only one."""
    if notebook in files:
        return notebook, ""
    for r in refused:
        if r.split(" (")[0] == notebook:
            why = "符号链接被拒绝 (symlink refused)" if "symlink" in r else r.split(" (", 1)[1].rstrip(")")
            return None, f"{notebook}: {why}"
    hits = sorted(p for p in files if "/" not in p and p.startswith(notebook[:2]) and p.endswith(".ipynb"))
    if len(hits) == 1:
        return hits[0], ""
    if hits:
        return None, f"多个文件都像这个 notebook (ambiguous): {', '.join(hits)}"[:160]
    links = [r.split(" (")[0] for r in refused if r.startswith(notebook[:2]) and ".ipynb" in r.split(" (")[0]]
    if links:
        return None, f"{links[0]}: 符号链接被拒绝 (symlink refused)"
    return None, "没有交 (missing)"


def read_teacher(notebooks: list[Path]) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in notebooks}
