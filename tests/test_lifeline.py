"""Every process the project starts dies with whoever started it — tested with real processes.

torchrun is launched as notebook 06 launches it (`run_torchrun`), with a stand-in worker that only
sleeps, so that what is tested is the process tree, not training. Then the launcher's parent goes
the ways users' runs go: a closed terminal (SIGHUP), SIGKILL, a batch scheduler's SIGTERM to a plain
`papermill` run, SIGKILL of `cnclip-edu course`, and a kernel shut down "now" (which is also what a
crashed kernel looks like). Each time torchrun and both workers must be gone within seconds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LAUNCH = """
from cnclip_edu.train.launch import run_torchrun
run_torchrun([], nproc_per_node=2, module="lifeline_sleeper", live_plot=False, echo=False,
             log_file={log!r}, env={{"SLEEPER_DIR": {dir!r}, "PYTHONPATH": {tests!r}}})
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent has not collected it yet


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _workers(folder: Path) -> list[int]:
    pids = [int(p.read_text()) for p in folder.glob("rank*.pid") if p.read_text().strip()]
    return pids if len(pids) == 2 else []


def _torchrun_of(worker: int) -> int:
    return int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _started_tree(folder: Path) -> list[int]:
    """[torchrun, worker, worker] once both workers have written their pids."""
    workers = _wait_for(lambda: _workers(folder), 120, "both torchrun workers to start")
    return [_torchrun_of(workers[0]), *workers]


def _stop_and_check(tree: list[int], stop, timeout_s: float = 30) -> None:
    stop()
    try:
        _wait_for(lambda: not any(_alive(p) for p in tree), timeout_s, f"processes {tree} to exit")
    finally:
        for pid in tree:  # never leave a sleeper behind, whatever the test said
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}


def _as_in_a_terminal() -> None:
    """preexec_fn: SIGHUP back to its default (terminate). A suite started under `nohup` passes SIGHUP down
    ignored, and an ignored signal stays ignored across exec: the launcher would then rightly survive the
    "closed terminal" and the test would wait 30 s for nothing."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGHUP, signal.SIGTERM], ids=["SIGKILL", "SIGHUP", "SIGTERM"])
def test_torchrun_dies_with_the_python_process_that_launched_it(tmp_path, how):
    code = LAUNCH.format(log=str(tmp_path / "launch.log"), dir=str(tmp_path), tests=str(HERE))
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=_env(), start_new_session=True,
                              preexec_fn=_as_in_a_terminal)
    try:
        tree = _started_tree(tmp_path)
        _stop_and_check(tree, lambda: os.kill(parent.pid, how))
    finally:
        parent.kill()
        parent.wait()


def _notebook(path: Path, code: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("work_dir = '.'", metadata={"tags": ["parameters"]}), new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_a_kernel_shut_down_now_takes_training_with_it(tmp_path):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path), env=_env())
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.execute(LAUNCH.format(log=str(tmp_path / "launch.log"), dir=str(tmp_path), tests=str(HERE)))
        tree = _started_tree(tmp_path)
        assert _torchrun_of(tree[1]) == tree[0]
        _stop_and_check(tree, lambda: km.shutdown_kernel(now=True))
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)


def test_sigterm_to_papermill_stops_the_kernel_and_training(tmp_path):
    nb = _notebook(tmp_path / "train.ipynb", LAUNCH.format(log=str(tmp_path / "launch.log"), dir=str(tmp_path),
                                                         tests=str(HERE)))
    run = subprocess.Popen([sys.executable, "-m", "papermill", str(nb), str(tmp_path / "out.ipynb"), "-k", "python3"],
                           cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        tree = _started_tree(tmp_path)
        _stop_and_check(tree, lambda: run.send_signal(signal.SIGTERM))
    finally:
        run.kill()
        run.wait()


def test_sigkill_of_the_course_runner_stops_training(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "99_train.ipynb", LAUNCH.format(log=str(tmp_path / "launch.log"), dir=str(tmp_path),
                                                         tests=str(HERE)))
    run = subprocess.Popen([sys.executable, "-m", "cnclip_edu", "course", "--notebooks-dir", str(notebooks),
                            "--work-dir", str(tmp_path / "work")], cwd=tmp_path, env=_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        tree = _started_tree(tmp_path)
        _stop_and_check(tree, lambda: run.kill())
    finally:
        run.kill()
        run.wait()


def test_die_with_parent_fires_when_the_parent_is_already_gone(tmp_path):
    # the race: the parent died before the child asked; the child must notice by itself
    code = ("import os, signal, sys, time\n"
            "from cnclip_edu.data.pool import die_with_parent\n"
            "die_with_parent(signal.SIGTERM, parent_pid=-12345)\n"  # a parent pid that is not ours: gone
            "time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], env=_env(), timeout=20)
    assert done.returncode == -signal.SIGTERM


def test_a_stopped_course_run_says_what_was_stopped_in_one_line(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "98_sleep.ipynb", f"from pathlib import Path\nimport time\n"
                                             f"Path({str(tmp_path / 'started')!r}).touch()\ntime.sleep(120)")
    # Ctrl-C in a terminal: SIGINT to the whole foreground group (a shell's `cmd &` would ignore it: reset it)
    run = subprocess.Popen([sys.executable, "-m", "cnclip_edu", "course", "--notebooks-dir", str(notebooks),
                            "--work-dir", str(tmp_path / "work")], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(lambda: (tmp_path / "started").exists(), 120, "the notebook to start")
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 128 + signal.SIGINT
    assert "Traceback" not in err and "ZMQError" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("course:")]
    assert len(lines) == 1 and "stopped (SIGINT) while running 98_sleep.ipynb" in lines[0], err
    assert str(tmp_path / "work" / "executed" / "98_sleep.ipynb") in lines[0]
