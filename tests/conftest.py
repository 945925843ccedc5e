"""Shared pytest set-up: a skip rule for GPU-only tests, and the course run (`course_run`): the 12 notebooks
run once, in order, in one folder, after every other test. CNCLIP_COURSE_SELECT="02 05" runs only those."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# What a run needs free: passing tests' folders are deleted as they end (tmp_path_retention_policy = "failed"),
# so the peak is the session-wide folders (two full-size random checkpoints, the course run) plus the largest
# single test: 1.75 GB at most in the 2026-12-07 run (`du` every 10 s), against ~4.4 GB per run, three runs kept,
# under pytest's default retention.
MIN_FREE_GB = float(os.environ.get("CNCLIP_TEST_MIN_FREE_GB", "3"))


def _free_gb(folder: Path) -> tuple[Path, float]:
    """Free space on the disk that holds `folder` (or its nearest existing parent)."""
    while not folder.exists():
        folder = folder.parent
    return folder, shutil.disk_usage(folder).free / 2**30


def pytest_sessionstart(session):
    # a full disk makes hundreds of tests error at set-up with no word about why: say it once, up front
    given = session.config.option.basetemp
    folder, free = _free_gb(Path(given) if given else Path(tempfile.gettempdir()))
    if free < MIN_FREE_GB:
        pytest.exit(f"only {free:.1f} GB free on the disk holding {folder}; the test suite needs about "
                    f"{MIN_FREE_GB:g} GB there while it runs (full-size checkpoints, the course run). Free some "
                    f"space (old pytest-of-* folders in {tempfile.gettempdir()}?) or point --basetemp at a larger "
                    f"disk; CNCLIP_TEST_MIN_FREE_GB sets the threshold.", returncode=3)


def pytest_collection_modifyitems(config, items):
    # the tests that need the course run last: a failing unit test shows up without waiting ~20 minutes
    items.sort(key=lambda item: "course_run" in getattr(item, "fixturenames", ()))  # stable: order kept otherwise
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here); this path runs on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def course_run(tmp_path_factory):
    """(work folder, {"00": NotebookResult, ...}) of every course notebook, run in order in one folder."""
    from cnclip_edu.course import runner as course

    work = tmp_path_factory.mktemp("course")
    select = os.environ.get("CNCLIP_COURSE_SELECT", "").split() or None   # a subset: the others fail as not run
    return work, {nb.name[:2]: course.run_notebook(nb, work, {})
                  for nb in course.find_notebooks(course.REPO_NOTEBOOKS, select)}
