"""Worker processes that never outlive the command that started them.

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
Ctrl-C reaches every process of the terminal's foreground group: the workers ignore it and let the
parent stop them, instead of printing one traceback each. On any exception in the `with` block
(Ctrl-C, SIGTERM turned into an exception by `cnclip_edu.cli`, an error) the workers are killed at
once rather than left to finish the queued work.
"""
from __future__ import annotations

import contextlib
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator

from cnclip_edu.fileio import pid_alive
from cnclip_edu.lifeline import die_with_parent


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
