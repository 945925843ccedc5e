"""Exercise 05.3 on a platform without fork (Windows): the two forked-worker cases say they are skipped
instead of crashing, and the reference still passes the whole check."""
from __future__ import annotations

import multiprocessing

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import nb05_dataset


def test_fork_cases_are_skipped_without_fork(monkeypatch, capsys):
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(nb05_dataset, "_SAID_NO_FORK", [])
    reference = X.get("05.3").reference
    for mode in ("workers", "parent_first"):
        assert nb05_dataset._run_dataset(reference, mode) == nb05_dataset.NO_FORK
    X.check("05.3", reference)
    out = capsys.readouterr().out
    assert "✅ 练习 05.3 通过" in out and out.count(nb05_dataset.NO_FORK) == 1
