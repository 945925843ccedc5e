"""Timing a per-item pipeline step by step, so that the steps add up to the whole (notebook 05).

Why not time each step in a loop of its own and add the results: a step run 100 times in a row is
not the step run between its neighbours (its data and code stay warm in the CPU caches), and a sum
of per-step best-of-N minima is biased low against the best-of-N of the whole, since each step keeps
its own luckiest run. Here every item runs the whole pipeline once per repeat with a mark after each
step (`Laps`), so the steps of one run add up exactly to that run; for each item we keep the run
whose total is the median of `repeat` runs (a run another process interrupted is an outlier, not the
median). The plain call is timed in the same loop, item by item, so both see the same load. Each
reading of the clock is charged its measured cost (`clock_cost`): with process_time (CPU time, blind
to other processes, what notebook 05 uses) a reading can cost microseconds, as much as a quick step.

    def timed(i, lap):                       # the pipeline written out, a lap(name) after each line
        a = step1(i); lap("step 1")
        b = step2(a); lap("step 2")
        return b
    result = step_breakdown(timed, whole=lambda i: pipeline(i), items=range(100))
    result.steps    # {"step 1": mean seconds per item, "step 2": ...}; sum(...) == result.total
    result.whole    # mean seconds per item of the plain call

`best_of(fn, repeat)` is the plain tool for a loop of many quick calls timed as a whole.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

Clock = Callable[[], float]


def clock_cost(clock: Clock = time.perf_counter, n: int = 2000) -> float:
    """Seconds one reading of `clock` adds to whatever it times (median of back-to-back readings).
    On some machines, process_time is a system call costing microseconds: as much as a quick step."""
    readings = [clock() for _ in range(n + 1)]
    return float(np.median(np.diff(readings)))


def best_of(fn: Callable[[], object], repeat: int, clock: Clock = time.perf_counter) -> tuple[float, object]:
    """Run fn() `repeat` times; (seconds of the fastest run, fn's result). The runs another process
    slowed down are dropped. For a loop of many quick calls timed as one (the clock read once per loop)."""
    if repeat < 1:
        raise ValueError("need repeat >= 1")
    times, result = [], None
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        times.append(clock() - t0)
    return min(times), result


class Laps:
    """Split one run into named steps: `lap(name)` adds the time since the previous mark to `name`
    (a name used twice adds up), less `overhead` (the cost of one clock reading, see `clock_cost`).
    The marks chain, so the laps sum to the run's total less one overhead per lap."""

    def __init__(self, clock: Clock = time.perf_counter, overhead: float = 0.0):
        self.clock, self.overhead = clock, overhead
        self.start()

    def start(self) -> None:
        self.times: dict[str, float] = {}
        self._last = self.clock()

    def __call__(self, name: str) -> None:
        now = self.clock()
        self.times[name] = self.times.get(name, 0.0) + (now - self._last - self.overhead)
        self._last = now

    @property
    def total(self) -> float:
        return sum(self.times.values())


@dataclass
class StepBreakdown:
    steps: dict[str, float]   # step name -> mean over items of its seconds in the item's median run
    total: float              # sum(steps.values()): mean seconds per item of the timed run
    whole: float              # mean over items of the median seconds of the plain call
    n_items: int
    repeat: int


def step_breakdown(timed: Callable[[Hashable, Laps], object], whole: Callable[[Hashable], object],
                   items: Sequence, repeat: int = 5, clock: Clock = time.perf_counter) -> StepBreakdown:
    """Time `timed(item, lap)` (the pipeline with a lap after each step) and `whole(item)` (the
    plain call) on every item, `repeat` times each, the two alternating which goes first. Per item,
    keep the timed run with the median total and the median of the plain calls; average over items.
    Every reading of the clock is charged its own cost (`clock_cost`), laps and plain calls alike."""
    if repeat < 1 or not len(items):
        raise ValueError("need repeat >= 1 and at least one item")
    overhead = clock_cost(clock)
    laps = Laps(clock, overhead)
    steps: dict[str, float] = {}
    whole_sum = 0.0
    for item in items:
        runs, plain = [], []
        for r in range(repeat):
            for first in ((True, False) if r % 2 == 0 else (False, True)):
                if first:
                    laps.start()
                    timed(item, laps)
                    runs.append(dict(laps.times))
                else:
                    t0 = clock()
                    whole(item)
                    plain.append(clock() - t0 - overhead)
        kept = sorted(runs, key=lambda run: sum(run.values()))[(len(runs) - 1) // 2]   # the median run
        for name, seconds in kept.items():
            steps[name] = steps.get(name, 0.0) + seconds
        whole_sum += float(np.median(plain))
    n = len(items)
    steps = {name: s / n for name, s in steps.items()}
    return StepBreakdown(steps, sum(steps.values()), whole_sum / n, n, repeat)


def per_item_medians(fns: Mapping[str, Callable[[Hashable], object]], items: Sequence, repeat: int = 5,
                     clock: Clock = time.perf_counter) -> dict[str, np.ndarray]:
    """Seconds of each fn on each item: the median of `repeat` calls, the fns interleaved item by
    item (their order rotating each repeat), so that a burst of load hits them alike; each reading
    is charged its own cost (`clock_cost`). Comparing two
    fns item by item (how many items each one wins) then shows whether a gap is above the noise."""
    if repeat < 1 or not len(items):
        raise ValueError("need repeat >= 1 and at least one item")
    names = list(fns)
    overhead = clock_cost(clock)
    out = {name: np.empty(len(items)) for name in names}
    for k, item in enumerate(items):
        times: dict[str, list[float]] = {name: [] for name in names}
        for r in range(repeat):
            for name in names[r % len(names):] + names[: r % len(names)]:
                t0 = clock()
                fns[name](item)
                times[name].append(clock() - t0 - overhead)
        for name in names:
            out[name][k] = float(np.median(times[name]))
    return out
