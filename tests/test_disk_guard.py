"""The suite refuses to start on a nearly full disk, saying why (a full /tmp once made hundreds of tests
error at set-up with no word about the cause)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def _run_suite_start(tmp_path: Path, min_free_gb: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CNCLIP_TEST_MIN_FREE_GB": min_free_gb}
    return subprocess.run([sys.executable, "-m", "pytest", str(TESTS / "test_course_map.py"), "-q",
                           "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "base"), "--co"],
                          cwd=TESTS.parent, env=env, capture_output=True, text=True, timeout=120)


def test_too_little_free_space_stops_the_run_with_a_reason(tmp_path):
    run = _run_suite_start(tmp_path, "1e9")        # more than any disk has
    assert run.returncode == 3, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "GB free on the disk holding" in out and "--basetemp" in out, out


def test_enough_free_space_lets_it_run(tmp_path):
    run = _run_suite_start(tmp_path, "0")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test_course_map" in run.stdout
