"""data/pool.py: the worker processes of build-lmdb and of the toy world's drawing die with their
parent, even when it is SIGKILLed (issue 16 item 1: they stayed, re-parented to init, for good)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnclip_edu.data.pool import worker_pool

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import time
from cnclip_edu.data.pool import worker_pool
with worker_pool(2) as pool:
    futures = [pool.submit(time.sleep, 60) for _ in range(2)]
    time.sleep(0.5)
    print(" ".join(str(p.pid) for p in pool._processes.values()), flush=True)
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; kills real processes")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_a_killed_parent(sig):
    parent = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.send_signal(sig)
    parent.wait(timeout=10)
    t0 = time.monotonic()
    while any(_alive(p) for p in workers) and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    survivors = [p for p in workers if _alive(p)]
    for p in survivors:  # do not leave them behind if the test fails
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"{signal.Signals(sig).name} of the parent left workers {survivors} alive"


def test_an_exception_in_the_block_stops_the_workers_at_once():
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with worker_pool(2) as pool:
            [pool.submit(time.sleep, 30) for _ in range(4)]
            time.sleep(0.2)
            raise KeyboardInterrupt
    assert time.monotonic() - t0 < 10  # not 2 x 30 s of queued sleeps
