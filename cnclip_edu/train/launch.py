"""Launch `cnclip_edu.train` under torchrun from a notebook (or any Python), and watch it live.

    from .launch import run_torchrun
    result = run_torchrun(["--train-data", ".../lmdb/train", "--max-steps", "300", "--logs", "runs/x", "--name", "course"],
                          nproc_per_node=2, log_file="runs/x/course/launch.log")
    result.metrics   # every record of <logs>/<name>/metrics.jsonl

A notebook cannot run `torchrun` in its own kernel (the workers are separate processes, and a
crashed worker must not take the kernel down), so we start
`python -m torch.distributed.run --standalone --nproc_per_node=N -m -- cnclip_edu.train ...` as a child
process, stream each of its lines into the notebook as it arrives (and into a log file), redraw a
loss / accuracy plot from `metrics.jsonl` every few seconds, and raise `TrainingFailed` with the
log's tail if it exits non-zero. Several machines: pass nnodes / node_rank / master_addr /
master_port and run the same call on every machine.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from cnclip_edu.data.pool import preexec_die_with_parent


class TrainingFailed(RuntimeError):
    """torchrun exited non-zero; the message carries the tail of its log."""


@dataclass
class LaunchResult:
    returncode: int
    command: list[str]
    run_dir: Path | None
    log_file: Path | None
    wall_s: float
    metrics: list[dict] = field(default_factory=list)

    @property
    def final_loss(self) -> float | None:
        train = [m for m in self.metrics if m.get("type") == "train"]
        return train[-1]["loss"] if train else None


def _arg_value(args: list[str], *names: str, default: str | None = None) -> str | None:
    """Value of the last `--flag value` / `--flag=value` among `names` in a train argument list."""
    value = default
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                value = args[i + 1]
            elif a.startswith(n + "="):
                value = a.split("=", 1)[1]
    return value


def run_dir_of(train_args: list[str]) -> Path:
    """`<logs>/<name>` as the trainer will compute it from the same arguments."""
    logs = _arg_value(train_args, "--logs", default="./logs/")
    name = _arg_value(train_args, "--name", default="train_clip")
    return Path(logs) / name


def torchrun_command(train_args: list[str], nproc_per_node: int = 2, nnodes: int = 1, node_rank: int = 0,
                     master_addr: str | None = None, master_port: int | None = None,
                     python: str | None = None, module: str = "cnclip_edu.train") -> list[str]:
    """The command line: standalone on one machine, static rendezvous across several."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    cmd = [python or sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1 and master_addr is None:
        cmd += ["--standalone"]
    else:
        cmd += [f"--nnodes={nnodes}", f"--node_rank={node_rank}",
                f"--master_addr={master_addr or '127.0.0.1'}", f"--master_port={master_port or 29500}"]
    # `--` stops torchrun's own parser there: it would otherwise read `--logs` as an ambiguous
    # abbreviation of its `--logs-specs` and refuse to start.
    cmd += [f"--nproc_per_node={nproc_per_node}", "-m", "--", module]
    return cmd + [str(a) for a in train_args]


_TRAIN_LINE = re.compile(r"\| Global Steps: (\d+)/(\d+) \|")


def keep_line(line: str, every: int) -> bool:
    """Whether the compact echo shows this log line: a training line only every `every` steps (and the
    last one); no routine "Saved checkpoint" lines; everything else (set-up, validation, resume,
    warnings, errors, tracebacks) always. The full log is in out.log either way."""
    m = _TRAIN_LINE.search(line)
    if m:
        step, last = int(m.group(1)), int(m.group(2))
        return step % every == 0 or step == last
    return "| Saved checkpoint " not in line


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Records of a metrics.jsonl (a half-written last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        return get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except Exception:
        return False


class _LivePlot:
    """Redraw the training curves in one notebook output (a display handle), at most every `every` s.

    A redraw (three panels rendered to PNG in the notebook's kernel) costs about half a CPU-second, and
    the kernel shares the cores with the training processes: on 2 cores with 2 ranks, a redraw every
    5 s took ~10 % of a core away from them, and each rank waits for the slower one at every step. So
    the wait between redraws is also at least `cpu_share_inv` times the last redraw's duration (<= ~3 %
    of a core), and a metrics file that has not grown since the last redraw is not drawn again.
    """

    def __init__(self, metrics_path: Path, every: float = 5.0, cpu_share_inv: float = 30.0):
        from IPython.display import display

        from cnclip_edu.viz.training import plot_training_curves

        self.path, self.every, self.cpu_share_inv = metrics_path, every, cpu_share_inv
        self.last, self.wait, self.drawn = 0.0, every, None
        self._plot, self._handle = plot_training_curves, display("(waiting for the first metrics ...)", display_id=True)

    def update(self, force: bool = False) -> None:
        if not force and time.time() - self.last < self.wait:
            return
        self.last = time.time()
        try:
            st = self.path.stat()
        except OSError:
            return
        if (st.st_size, st.st_mtime_ns) == self.drawn:  # nothing new since the last redraw
            return
        records = read_metrics(self.path)
        if not records:
            return
        import matplotlib.pyplot as plt

        t0 = time.perf_counter()
        fig = self._plot(records)
        self._handle.update(fig)
        plt.close(fig)
        self.drawn = (st.st_size, st.st_mtime_ns)
        self.wait = max(self.every, self.cpu_share_inv * (time.perf_counter() - t0))


def run_torchrun(train_args: list[str], nproc_per_node: int = 2, log_file: str | os.PathLike | None = None,
                 live_plot: bool = True, nnodes: int = 1, node_rank: int = 0, master_addr: str | None = None,
                 master_port: int | None = None, env: dict[str, str] | None = None, tail_lines: int = 40,
                 echo: bool | int = True, timeout_s: float | None = None,
                 module: str = "cnclip_edu.train") -> LaunchResult:
    """Run training under torchrun, streaming its output; raise TrainingFailed on a non-zero exit.

    train_args: flags of `cnclip-edu train` (strings). log_file: default `<logs>/<name>/launch.log`.
    live_plot: in a notebook, a loss/accuracy figure redrawn from metrics.jsonl while it runs
        (ignored in plain Python, where the lines are simply printed).
    echo: True prints every line as it arrives, False none; an int N prints a compact log: training
        lines every N steps, validation, resume and error lines, no routine checkpoint lines
        (`keep_line`). The log file always gets every line.
    env: extra environment variables for the workers. timeout_s: kill the run after this long.
    module: the program every worker runs (`python -m <module> <train_args>`); another one than the
        trainer (notebook 06's DDP worker, `cnclip_edu.train.ddp_demo`; a test's stand-in) writes no metrics.jsonl.
    """
    train_args = [str(a) for a in train_args]
    cmd = torchrun_command(train_args, nproc_per_node, nnodes, node_rank, master_addr, master_port, module=module)
    run_dir = run_dir_of(train_args)
    log_path = Path(log_file) if log_file else run_dir / "launch.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc_per_node))
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": threads, **(env or {})}
    plot = _LivePlot(run_dir / "metrics.jsonl") if live_plot and _in_notebook() else None
    tail: deque[str] = deque(maxlen=tail_lines)
    t0 = time.time()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        # a session of its own, so that its whole group can be signalled; and it dies with this process,
        # however this one goes (a kernel shut down "now", SIGKILL, a closed terminal): torchrun turns the
        # SIGTERM into stopping its workers, and each worker also dies with torchrun (data/pool.py)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env, text=True,
                                bufsize=1, encoding="utf-8", errors="replace", start_new_session=True,
                                preexec_fn=preexec_die_with_parent(signal.SIGTERM))
        try:
            for line in proc.stdout:  # one line at a time, as soon as torchrun writes it
                log.write(line)
                log.flush()
                tail.append(line.rstrip("\n"))
                if echo is True or (echo and keep_line(line, int(echo))):
                    print(line, end="", flush=True)
                if plot is not None:
                    plot.update()
                if timeout_s is not None and time.time() - t0 > timeout_s:
                    raise TimeoutError(f"training ran longer than {timeout_s} s")
            proc.wait()
        except BaseException:  # KeyboardInterrupt (notebook stop button), timeout: take the workers down
            _terminate(proc)
            raise
    if plot is not None:
        plot.update(force=True)
    result = LaunchResult(proc.returncode, cmd, run_dir, log_path, time.time() - t0,
                          read_metrics(run_dir / "metrics.jsonl"))
    if proc.returncode != 0:
        own = worker_error(log_path.read_text(encoding="utf-8", errors="replace").splitlines())
        if own is not None:  # the worker's own words first; torchrun's report adds nothing to them
            raise TrainingFailed(f"training exited with code {proc.returncode} after {result.wall_s:.1f} s. "
                                 f"The first error a worker printed:\n{own}\nFull log: {log_path}")
        raise TrainingFailed(f"training exited with code {proc.returncode} after {result.wall_s:.1f} s; "
                             f"full log: {log_path}\n--- last {len(tail)} lines ---\n" + "\n".join(tail))
    return result


_GLOG = re.compile(r"^[EWIF]\d{4} \d\d:\d\d:\d\d")        # torchrun's own log lines
_RANK_PREFIX = re.compile(r"^\[(?:default|rank)?\d+\]: ?")        # torchrun's per-rank line prefix
_ARGPARSE_ERROR = re.compile(r"^\S+( \S+)*: error: ")                 # `cnclip-edu train: error: argument ...`


def worker_error(lines: list[str]) -> str | None:
    """The first error a worker printed (its traceback, or an argparse error line), or None. torchrun's
    own report (its ChildFailedError traceback and the "Root Cause" table) only says *that* a rank failed."""
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\n")
        text = _RANK_PREFIX.sub("", line)
        if _ARGPARSE_ERROR.match(text) and not _GLOG.match(text):
            return text
        if text.startswith("Traceback (most recent call last):"):
            block = [text]
            j = i + 1
            while j < len(lines):
                nxt = _RANK_PREFIX.sub("", lines[j].rstrip("\n"))
                block.append(nxt)
                j += 1
                if nxt and not nxt.startswith((" ", "\t")) and not nxt.startswith("Traceback"):
                    break  # the exception line ends the traceback
            if not any("torch/distributed/run.py" in b or "ChildFailedError" in b for b in block):  # not torchrun's
                return "\n".join(block)
            i = j
            continue
        i += 1
    return None


def _terminate(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM torchrun's whole process group (it forwards to the workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
