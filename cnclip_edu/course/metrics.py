"""Course metrics: the numbers each notebook records, gathered in `<work_dir>/metrics.json`.

    from cnclip_edu.course import record
    record("toy_t2i_r1", 0.48, work_dir)

The course runner's summary table and the notebook tests (floors) read them back, so one name means
one quantity everywhere (DESIGN §6 lists the names).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from cnclip_edu.fileio import atomic_write

DEFAULT_WORK_DIR = "runs/course"
METRICS_FILE = "metrics.json"


def _metrics_path(work_dir: str | os.PathLike | None) -> Path:
    work_dir = work_dir or os.environ.get("CNCLIP_WORK_DIR", DEFAULT_WORK_DIR)
    return Path(work_dir) / METRICS_FILE


def load_metrics(work_dir: str | os.PathLike | None = None) -> dict[str, float]:
    """All metrics recorded so far in `work_dir` (empty if none)."""
    path = _metrics_path(work_dir)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def record(name: str, value: float, work_dir: str | os.PathLike | None = None) -> float:
    """Record one course metric (e.g. `toy_t2i_r1`) into `<work_dir>/metrics.json`; returns value."""
    value = float(value)
    metrics = load_metrics(work_dir)
    metrics[name] = value
    atomic_write(_metrics_path(work_dir), json.dumps(metrics, ensure_ascii=False, indent=2, sort_keys=True))
    return value
