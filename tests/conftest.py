"""Shared pytest set-up: a skip rule for GPU-only tests, and where the course run happens.

By default `course_run` runs the 12 notebooks itself, after every other test (they are ordered last).
With CNCLIP_COURSE_BACKGROUND=1 the notebooks start in a background process (`course_driver.py`) as soon as
collection is done and run beside the unit tests, which is faster on a machine with cores to spare but makes
the timing-sensitive signal tests (test_lifeline, test_lmdb_build) fail on 2 cores: not the default."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_COURSE = pytest.StashKey[tuple]()

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    # the tests that wait for the background course run last, so that every other test overlaps with it
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


def pytest_collection_finish(session):
    needs = any("course_run" in getattr(item, "fixturenames", ()) for item in session.items)
    if not needs or session.config.option.collectonly or os.environ.get("CNCLIP_COURSE_BACKGROUND") != "1":
        return
    work = session.config._tmp_path_factory.mktemp("course")
    log = open(work.parent / "course_driver.log", "wb")
    proc = subprocess.Popen([sys.executable, str(HERE / "course_driver.py"), str(work), str(work / "results.json")],
                            env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    session.config.stash[_COURSE] = (proc, work, log)


def pytest_sessionfinish(session):
    started = session.config.stash.get(_COURSE, None)
    if started is not None:
        proc, _, log = started
        if proc.poll() is None:  # the run was cut short (-x, Ctrl-C): the notebooks stop with their driver
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def course_run(request, tmp_path_factory):
    """(work folder, {"00": NotebookResult, ...}) of every course notebook, run in order in one folder."""
    from cnclip_edu.course import runner as course

    started = request.config.stash.get(_COURSE, None)
    if started is None:
        work = tmp_path_factory.mktemp("course")
        select = os.environ.get("CNCLIP_COURSE_SELECT", "").split() or None   # a subset, as course_driver.py
        return work, {nb.name[:2]: course.run_notebook(nb, work, {})
                      for nb in course.find_notebooks(course.REPO_NOTEBOOKS, select)}
    proc, work, log = started
    rc = proc.wait()
    done = work / "results.json"
    if rc != 0 or not done.is_file():
        log.flush()
        tail = (work.parent / "course_driver.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        pytest.fail(f"the background course run exited with {rc}:\n{tail}")
    rows = json.loads(done.read_text(encoding="utf-8"))
    return work, {k: course.NotebookResult(r["name"], r["status"], r["wall_s"], Path(r["output_path"]), r["metrics"],
                                           r["error"]) for k, r in rows.items()}
