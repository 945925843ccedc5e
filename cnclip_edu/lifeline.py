"""Processes that die with whoever started them.

A process the project starts (a data-pool worker, torchrun and its training workers) must not outlive
its parent, however the parent goes: a clean exit, Ctrl-C, SIGTERM from a batch scheduler, SIGHUP from a
closed terminal, or SIGKILL (the OOM killer; a notebook kernel shut down "now" or crashed), which runs no
clean-up code at all. On a shared GPU server an orphaned training job holds GPUs for hours, for nobody.

`die_with_parent(sig)`, called in the child: on Linux the kernel itself sends `sig` when the parent
thread that started the child exits (`prctl(PR_SET_PDEATHSIG)`), which covers SIGKILL; elsewhere (or if
prctl is unavailable) a watchdog thread polls the parent pid. Either way the race where the parent died
before the call is closed by checking the parent afterwards. Children started in a session of their own
(torchrun: so that its whole group can be signalled) are covered too, since the rule follows the parent
process, not the session or the terminal.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Callable

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
