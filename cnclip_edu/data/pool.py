"""Worker processes that never outlive the command that started them: the data pool's, and torchrun's.

    with worker_pool(4) as pool:
        results = list(pool.map(decode_chunk, chunks))

Building an LMDB decodes every image of a TSV (a MUGE train TSV holds ~10 GB of JPEG), and the toy
world draws thousands of PNGs: both fan the work out to a process pool. A pool's clean-up runs only
if its parent gets to run it. A parent killed outright (SIGKILL, the OOM killer, a notebook kernel
restarted) runs nothing, and its workers, blocked on a pipe whose other end they themselves hold,
would wait for work forever (~100 MB each, re-parented to init). So each worker arranges at start
to die with its parent:
- on Linux the kernel kills it (`prctl(PR_SET_PDEATHSIG, SIGKILL)`) when the thread that forked it
  exits: the parent's main thread, which submits the work, or the fork server, which exits with
  the parent;
- elsewhere a watchdog thread in the worker notices that its parent is gone.
The same rule (`die_with_parent`, `preexec_die_with_parent`) keeps torchrun and its training workers
from outliving a notebook kernel or `cnclip-edu course` however those go (SIGKILL, a closed terminal,
a kernel shut down "now"): on a shared GPU server an orphaned job holds GPUs for hours, for nobody.
Ctrl-C reaches every process of the terminal's foreground group: the workers ignore it and let the
parent stop them, instead of printing one traceback each. On any exception in the `with` block
(Ctrl-C, SIGTERM turned into an exception by `cnclip_edu.cli`, an error) the workers are killed at
once rather than left to finish the queued work.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator

from cnclip_edu.fileio import pid_alive

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch(parent_pid: int, sig: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), sig)
        time.sleep(5)
        os._exit(1)  # `sig` was caught and ignored: leave anyway

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None, watchdog: bool = True) -> bool:
    """Arrange for this process to get `sig` when its parent dies. -> True if the kernel will do it (Linux).

    parent_pid: the parent as the caller knew it (default: the current parent); if it is already gone, `sig`
    is sent at once. watchdog: start a polling thread where prctl is not available (never in a preexec_fn,
    where threads must not start)."""
    parent = os.getppid() if parent_pid is None else parent_pid
    if sys.platform.startswith("linux"):
        try:
            if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
                if os.getppid() != parent:  # the parent died before prctl took effect
                    os.kill(os.getpid(), sig)
                return True
        except (OSError, AttributeError):
            pass
    if watchdog:
        _watch(parent, sig)
    return False


def preexec_die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `subprocess.Popen(preexec_fn=...)` that makes the child die with this process (Linux; elsewhere a
    no-op: use a watchdog in the child)."""
    parent = os.getpid()

    def preexec() -> None:
        die_with_parent(sig, parent, watchdog=False)

    return preexec


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer (runs in each worker): see the module docstring."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not pid_alive(parent_pid):
        os._exit(1)  # the parent died before this worker got going
    die_with_parent(signal.SIGKILL)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    # `_processes` is private, but has been there since Python 3.2; without it we only cancel the queue
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        p.kill()


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A ProcessPoolExecutor of `workers` processes that die with this one (see the module docstring)."""
    pool = ProcessPoolExecutor(workers, initializer=_die_with_parent, initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        _kill_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
