"""The printed speed tables of notebook 09 (section 6): medians, middle halves, ratios and verdicts.

Timings come in as `samples[(runner, tower, batch)] = [ms, ...]` (every timed call); the functions return
lines of text, so the notebook shows numbers and verdicts without carrying the formatting. Every verdict is
`timing.verdict`'s rule (the one exercise 09.6 builds): overlapping middle halves -> "分不出".

    lines = speed_table(samples, ["PyTorch fp32", "ORT fp32"], {"image": "视觉塔"}, [1, 32])
    ratio_lines(samples, "ORT int8", "ORT fp32", {"image": "视觉塔"}, [1, 32], "int8 是 fp32 速度的")
"""
from __future__ import annotations

import statistics

from ..course.columns import left as ljust
from ..course.columns import right as rjust
from .timing import middle_half, verdict

CANNOT_TELL = "分不出（中间 50 % 范围重叠）"
Samples = dict[tuple[str, str, int], list[float]]


def judge(fast: list[float], slow: list[float], word: str = "更快") -> str:
    """`word` when `fast`'s median is the smaller and the middle halves are apart, its opposite when the
    other is faster, `CANNOT_TELL` when the middle halves overlap."""
    opposite = {"更快": "更慢", "更高": "更低"}[word]
    return {"a 更快": word, "b 更快": opposite, "分不出": CANNOT_TELL}[verdict(fast, slow)]


def speed_table(samples: Samples, runners: list[str], towers: dict[str, str], batches: list[int]) -> list[str]:
    """Median ms of every cell, the ratios of runners 2, 3, ... to runner 1 (above 1: faster), then the middle halves."""
    lines = _ms_and_ratios({k: statistics.median(v) for k, v in samples.items()}, runners, towers, batches, "ms", 17)
    lines.append("")
    lines.append(f"每格 {len(next(iter(samples.values())))} 次计时的中间 50 %（第 25–75 百分位，ms）：")
    for tower, name in towers.items():
        for b in batches:
            spans = [middle_half(samples[(n, tower, b)]) for n in runners]
            lines.append(ljust(name, 7) + rjust(str(b), 6) + "".join(rjust(f"{lo:.2f}–{hi:.2f}", 17) for lo, hi in spans))
    return lines


def ratio_lines(samples: Samples, fast: str, slow: str, towers: dict[str, str], batches: list[int],
                what: str) -> list[str]:
    """One line per (tower, batch): `what` median(slow) / median(fast) 倍, then the verdict for `fast`."""
    lines = []
    for tower, name in towers.items():
        for b in batches:
            f, s = samples[(fast, tower, b)], samples[(slow, tower, b)]
            r = statistics.median(s) / statistics.median(f)
            lines.append(f"  {name} batch {b:>2d}：{what} {r:.2f} 倍，{judge(f, s)}")
    return lines


def throughput_lines(samples: Samples, runners: list[str], towers: dict[str, str], b_lo: int, b_hi: int) -> list[str]:
    """Items per second at `b_lo` and `b_hi` for every runner and tower; "上升" / "下降" only when the middle halves
    of the per-item times are apart, else `CANNOT_TELL`."""
    lines = []
    for n in runners:
        for tower, name in towers.items():
            per1 = [v / b_lo for v in samples[(n, tower, b_lo)]]        # ms per item
            per2 = [v / b_hi for v in samples[(n, tower, b_hi)]]
            t1, t2 = 1000 / statistics.median(per1), 1000 / statistics.median(per2)
            word = judge(per2, per1, "更高")                              # less time per item: higher throughput
            word = {"更高": "上升", "更低": "下降"}.get(word, word)
            lines.append(f"  {ljust(n, 13)}{name}：{t1:8.0f} → {t2:8.0f}，{word}")
    return lines


def fastest_table(samples: Samples, runners: list[str], towers: dict[str, str], batches: list[int]) -> list[str]:
    """The fastest call of every cell (ms) and the ratios of runners 2, 3, ... to runner 1 computed from them.

    Why the minimum holds up under load: another process can only add time to a call (an interruption never
    makes the work itself shorter), so the fastest of many calls is the one least disturbed and sits close to
    what the call costs on an idle core. It is an optimistic number (a user on a busy server waits the median),
    but its ratios move much less with the load than the medians' do, as long as some call of each cell ran
    undisturbed; on a very busy machine a long call may have none, and its minimum stays high."""
    return _ms_and_ratios({k: min(v) for k, v in samples.items()}, runners, towers, batches, "最快", 19)


def _ms_and_ratios(ms_of: dict, runners: list[str], towers: dict[str, str], batches: list[int],
                   unit: str, width: int) -> list[str]:
    """Header + one row per (tower, batch): each runner's ms (one number per cell: median or fastest), then
    runner 1's ms over each other runner's (above 1: that runner is faster)."""
    head = ljust("塔", 7) + rjust("batch", 6) + "".join(rjust(f"{n} {unit}", width) for n in runners)
    head += "".join(rjust(f"{n} ×", 12) for n in runners[1:])
    lines = [head]
    for tower, name in towers.items():
        for b in batches:
            ms = [ms_of[(n, tower, b)] for n in runners]
            lines.append(ljust(name, 7) + rjust(str(b), 6) + "".join(rjust(f"{v:.2f}", width) for v in ms)
                         + "".join(rjust(f"{ms[0] / v:.2f}x", 12) for v in ms[1:]))
    return lines
