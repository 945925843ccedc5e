"""One way to time code, shared by bench/ and notebook 09: warm-up calls, then the median of repeats.

    from cnclip_edu.deploy.timing import time_samples, timeit
    sec = timeit(lambda: enc.encode_image(x), repeat=10, warmup=2)   # median seconds of one call
    secs = time_samples(lambda: enc.encode_image(x), repeat=10, warmup=2)   # all 10, to see the spread
    runs = time_interleaved({"a": fa, "b": fb}, repeat=10, warmup=2)  # round-robin: drift hits both alike
    middle_half(secs), overlap(secs_a, secs_b)                        # 25-75 % range; "can't tell" test
    compare_timings(fa, fb, repeat=10, warmup=2)  # both timed in turns, medians, "a 更快" / "b 更快" / "分不出"
    recorded_benchmark("onnx")                                       # what bench/bench_onnx.py wrote
    recorded_rows("mllm-seeds")                                      # its table as rows {column: text}

Why not time one call: the first call of a runtime pays for one-off work (ONNX Runtime allocates
its buffers and picks kernels, PyTorch warms its allocator and thread pool), so a single timing can
be off by 100x (a notebook once showed PyTorch 256 ms against 2.3 ms measured properly). Why the
median and not the mean: on a shared machine a few runs are slowed by other processes; the median
ignores them, the mean does not. On a GPU, pass `sync=torch.cuda.synchronize`: kernels run
asynchronously, and without a sync the clock stops before the work is done.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Callable

BENCHMARKS_MD = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"  # in a source checkout


def time_samples(fn: Callable[[], object], repeat: int = 5, warmup: int = 1,
                 sync: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Wall seconds of each of `repeat` calls of `fn()` after `warmup` untimed calls (the spread, not just the median).

    `clock` reads the time (a test or exercise check passes a fake one whose time moves only when `fn` runs)."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if sync:
            sync()
        t0 = clock()
        fn()
        if sync:
            sync()
        times.append(clock() - t0)
    return times


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, sync: Callable[[], None] | None = None) -> float:
    """Median wall seconds of `fn()` over `repeat` runs after `warmup` untimed runs."""
    return statistics.median(time_samples(fn, repeat, warmup, sync))


def time_interleaved(fns: dict[str, Callable[[], object]], repeat: int = 5, warmup: int = 1,
                     sync: Callable[[], None] | None = None,
                     clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Wall seconds of `repeat` calls of each function, taken round-robin (a, b, c, a, b, c, ...).

    Why interleave: on a shared machine the load drifts within seconds. Timing a's calls and then b's
    lets a drift land on one side only and pass for a difference between them; taking turns spreads it
    over every function alike. `warmup` untimed calls of each come first.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"need repeat >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            times[name].extend(time_samples(fn, repeat=1, warmup=0, sync=sync, clock=clock))
    return times


def middle_half(samples: list[float]) -> tuple[float, float]:
    """The 25th and 75th percentiles (the interquartile range): how spread the typical calls are."""
    import numpy as np

    lo, hi = np.percentile(samples, [25, 75])
    return float(lo), float(hi)


def overlap(a: list[float], b: list[float]) -> bool:
    """True when the middle halves of two timings overlap: this run cannot tell which is faster."""
    (a_lo, a_hi), (b_lo, b_hi) = middle_half(a), middle_half(b)
    return a_hi >= b_lo and b_hi >= a_lo


def verdict(a: list[float], b: list[float]) -> str:
    """"a 更快" / "b 更快" by the medians, or "分不出" when the middle halves overlap (touching counts as overlap).

    Why not the medians alone: on a busy machine two medians always differ a little; only when the typical
    calls of one (its middle half) all beat the typical calls of the other does this run say which is faster."""
    if overlap(a, b):
        return "分不出"
    return "a 更快" if statistics.median(a) < statistics.median(b) else "b 更快"


def compare_timings(fa: Callable[[], object], fb: Callable[[], object], repeat: int = 5, warmup: int = 1,
                    clock: Callable[[], float] = time.perf_counter) -> dict:
    """Time two functions fairly and say which is faster (notebook 09's exercise 09.6 builds this).

    `warmup` untimed calls of each, then `repeat` rounds of one timed call of `fa` and one of `fb` (taking
    turns, so a change of load hits both), each timed with `clock`. Returns {"a": [s, ...], "b": [s, ...]}
    (the timed calls in order), "median_a", "median_b", and "verdict" (see `verdict`).
    """
    runs = time_interleaved({"a": fa, "b": fb}, repeat=repeat, warmup=warmup, clock=clock)
    a, b = runs["a"], runs["b"]
    return {"a": a, "b": b, "median_a": statistics.median(a), "median_b": statistics.median(b),
            "verdict": verdict(a, b)}


def recorded_benchmark(section: str, path: str | os.PathLike | None = None) -> str | None:
    """The markdown a bench/ script wrote into section `section` of docs/benchmarks.md, or None if absent.

    Notebook 09 shows recorded numbers it cannot measure itself (ViT-B-16 on the CPU takes minutes,
    a GPU run needs a GPU) with this, labelled as recorded: the section names its command, machine and date.
    """
    path = Path(path) if path else BENCHMARKS_MD
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    begin, end = f"<!-- BEGIN {section} -->", f"<!-- END {section} -->"
    if begin not in text or end not in text:
        return None
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def recorded_rows(section: str, path: str | os.PathLike | None = None) -> list[dict[str, str]] | None:
    """The table of a recorded section as rows {column: cell text}, or None if the section is absent (an installed
    package has no docs/). A notebook shows the numbers with `markdown_table`, without the section's English notes
    on commands and machines (a Chinese lesson says in one line where they are)."""
    text = recorded_benchmark(section, path)
    if text is None:
        return None
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    if len(lines) < 2:
        return []
    head = [h.strip() for h in lines[0].strip().strip("|").split("|")]
    return [dict(zip(head, (v.strip() for v in ln.strip().strip("|").split("|")))) for ln in lines[2:]]


def markdown_table(rows: list[dict[str, str]], columns: dict[str, str] | list[str]) -> str:
    """A markdown table of some columns of `recorded_rows`; `columns` maps a column to its shown header (or lists them)."""
    names = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    out = ["| " + " | ".join(names.values()) + " |", "|" + "---|" * len(names)]
    out += ["| " + " | ".join(r.get(c, "") for c in names) + " |" for r in rows]
    return "\n".join(out)
