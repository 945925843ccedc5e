"""`fileio.scratch_dir` (the folder a case of exercise 10.2 writes its test photos into) leaves nothing
behind: not on success, not on an error, not when the process is killed with SIGTERM in the middle of
a case (tested with a real process), and what a SIGKILL left is removed by the next one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnclip_edu import fileio

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

# a student's answer to 10.2 that is still busy when the signal comes: it says so, then sleeps
CASE = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
{setup}
from cnclip_edu.course import exercises as X

def busy(path, max_side=None):
    Path({ready!r}).write_text(path)
    time.sleep(60)

X.get("10.2").cases()[0].run(busy)
"""
CLI_SETUP = "from cnclip_edu.cli import sigterm_raises\n_cli = sigterm_raises()\n_cli.__enter__()  # as `cnclip-edu <command>` runs"


def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def _kill_mid_case(tmp_path: Path, setup: str) -> tuple[subprocess.CompletedProcess, Path, str]:
    tmp, ready = tmp_path / "tmp", tmp_path / "ready"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    code = CASE.format(root=str(ROOT), setup=setup, ready=str(ready))
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the case never reached the answer"
        time.sleep(0.1)
    photo = ready.read_text()
    assert Path(photo).is_file() and Path(photo).parent.parent == tmp   # the photo is in a scratch folder
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), tmp, photo


@posix_only
def test_sigterm_in_a_plain_process_removes_the_photos_then_kills(tmp_path):
    done, tmp, photo = _kill_mid_case(tmp_path, setup="")
    assert done.returncode == -signal.SIGTERM, done.stderr   # still dies of SIGTERM, as without the folder
    assert _leftovers(tmp) == [], photo


@posix_only
def test_sigterm_under_the_cli_handler_removes_the_photos(tmp_path):
    done, tmp, photo = _kill_mid_case(tmp_path, setup=CLI_SETUP)
    assert done.returncode != 0 and "Terminated" in done.stderr, done.stderr   # the CLI's own exception
    assert _leftovers(tmp) == [], photo


def test_removed_on_success_and_on_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.tempfile, "gettempdir", lambda: str(tmp_path))
    with fileio.scratch_dir("cnclip-test") as d:
        (d / "a.txt").write_text("x")
    with pytest.raises(ZeroDivisionError):
        with fileio.scratch_dir("cnclip-test") as d:
            (d / "a.txt").write_text("x")
            1 / 0
    assert _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # the handler is put back


def test_what_a_sigkill_left_is_removed_next_time(tmp_path, monkeypatch):
    monkeypatch.setattr(fileio.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".cnclip-test{fileio.TMP_MARK}{int(dead.stdout)}-abcd"
    stale.mkdir()
    (stale / "photo.jpg").write_bytes(b"x")
    other = tmp_path / "someone-elses-file"
    other.write_text("kept")
    with fileio.scratch_dir("cnclip-test"):
        pass
    assert _leftovers(tmp_path) == ["someone-elses-file"]


def test_exercise_10_2_leaves_no_photos(tmp_path, monkeypatch):
    from cnclip_edu.course import exercises as X

    monkeypatch.setattr(fileio.tempfile, "gettempdir", lambda: str(tmp_path))
    ex = X.get("10.2")
    for case in [*ex.cases(), *ex.hidden(3)]:
        case.run(ex.reference)
    assert _leftovers(tmp_path) == []
