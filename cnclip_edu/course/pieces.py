"""The student's own pieces, kept as files so that a later notebook can run them together.

    from cnclip_edu.course import pieces
    pieces.enable(work_dir)          # once per notebook: registers the %%my_clip cell magic

    %%my_clip 01.4                   # first line of a build-along cell
    def encode(text, vocab): ...     # runs as a normal cell, and is also saved as work_dir/my_clip/ex01_4.py

    mine = pieces.load_all(work_dir)     # the capstone: every saved piece, in course order, one namespace
    mine.encode, mine.VisionTower, ...

Why files: a notebook's kernel forgets everything when it stops, and the course promises that the
student's tokenizer (01), towers (02, 03), loss (04) and Dataset (05) end up running together. A
piece is the whole cell as the student wrote it, so it can use whatever the student defined in it;
pieces are run in course order into one namespace, so a later piece may use an earlier one's names
(as the notebooks do). Pieces are saved with the usual atomic write (never half a file) and run
under their own file name, so a traceback points at the student's line.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..fileio import atomic_write

DIRNAME = "my_clip"
_ID = re.compile(r"^\d\d\.\d+$")
_dir: Path | None = None


def piece_dir(work_dir: str | os.PathLike | None = None) -> Path:
    """Where pieces live: `work_dir/my_clip`, or the folder `enable` set."""
    if work_dir is not None:
        return Path(work_dir) / DIRNAME
    if _dir is None:
        raise RuntimeError("cnclip_edu.course.pieces: call pieces.enable(work_dir) first")
    return _dir


def piece_path(exercise_id: str, work_dir: str | os.PathLike | None = None) -> Path:
    if not _ID.match(exercise_id):
        raise ValueError(f"%%my_clip needs an exercise id like 01.4, got {exercise_id!r}")
    return piece_dir(work_dir) / f"ex{exercise_id.replace('.', '_')}.py"


def _id_of(path: Path) -> str:
    return path.stem[2:].replace("_", ".")


def save(exercise_id: str, source: str, work_dir: str | os.PathLike | None = None) -> Path:
    """Save one piece's source (the cell without its magic line)."""
    path = piece_path(exercise_id, work_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# 练习 {exercise_id}: saved by %%my_clip from the student's notebook cell\n"
    return atomic_write(path, header + source.rstrip("\n") + "\n")


def run_into(path: Path, namespace: dict[str, Any]) -> None:
    """Run a saved piece in `namespace` under its own file name (tracebacks show the student's lines)."""
    code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    exec(code, namespace)  # noqa: S102 - the student's own code, in the student's own kernel


def _magic(line: str, cell: str) -> None:
    from IPython import get_ipython

    path = save(line.strip(), cell)
    ip = get_ipython()
    run_into(path, ip.user_ns)


def enable(work_dir: str | os.PathLike) -> Path:
    """Register `%%my_clip ID` in this IPython kernel; pieces go to `work_dir/my_clip`. Outside IPython
    (a plain script) only the folder is set."""
    global _dir
    _dir = Path(work_dir) / DIRNAME
    _dir.mkdir(parents=True, exist_ok=True)
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:
        ip = None
    if ip is not None:
        ip.register_magic_function(_magic, magic_kind="cell", magic_name="my_clip")
    return _dir


def saved(work_dir: str | os.PathLike | None = None) -> list[str]:
    """Exercise ids with a saved piece, in course order."""
    folder = piece_dir(work_dir)
    ids = [_id_of(p) for p in folder.glob("ex*.py")] if folder.is_dir() else []
    return sorted(ids, key=lambda i: tuple(int(t) for t in i.split(".")))


def load_all(work_dir: str | os.PathLike | None = None, needed: tuple[str, ...] = ()) -> SimpleNamespace:
    """Every saved piece run in course order into one fresh namespace. `needed`: exercise ids that must
    have a saved piece (a missing one is named: the notebook that writes it has not been run)."""
    have = saved(work_dir)
    missing = [i for i in needed if i not in have]
    if missing:
        where = ", ".join(f"练习 {i}（第 {i[:2]} 节）" for i in missing)
        raise FileNotFoundError(f"还没有找到你自己写的 {where}：先运行那个 notebook 里以 %%my_clip 开头的格子，"
                                f"它会把你的代码存进 {piece_dir(work_dir)}")
    namespace: dict[str, Any] = {"__name__": "my_clip"}
    for exercise_id in have:
        run_into(piece_path(exercise_id, work_dir), namespace)
    # leave __builtins__ in the namespace: it is the pieces' globals, and without it a C extension's import
    # from inside a piece fails (torch.tensor(...) -> "storage_module ... INTERNAL ASSERT FAILED")
    return SimpleNamespace(**{k: v for k, v in namespace.items() if k != "__builtins__"})
