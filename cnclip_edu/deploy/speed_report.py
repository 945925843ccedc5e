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

CANNOT_TELL = "分不出（中间 50% 范围重叠）"
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
    lines.append(f"每格 {len(next(iter(samples.values())))} 次计时的中间 50%（第 25–75 百分位，ms）：")
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


def report(samples: Samples, runners: list[str], towers: dict[str, str], batches: list[int]) -> list[str]:
    """Section 6's printout: the median table with middle halves, int8 vs fp32, throughput from the smallest to
    the largest batch, ORT fp32 vs PyTorch at the largest batch, and the fastest-call table.
    Runner names are "PyTorch fp32", "ORT fp32", "ORT int8"."""
    b_lo, b_hi = min(batches), max(batches)
    return [*speed_table(samples, runners, towers, batches),
            "", "int8 相对 fp32（中位数）：",
            *ratio_lines(samples, "ORT int8", "ORT fp32", towers, batches, "int8 是 fp32 速度的"),
            "", f"吞吐量（个/秒）从 batch {b_lo} 到 batch {b_hi}：",
            *throughput_lines(samples, runners, towers, b_lo, b_hi),
            "", f"batch {b_hi}，ORT fp32 相对 PyTorch fp32：",
            *ratio_lines(samples, "ORT fp32", "PyTorch fp32", towers, [b_hi], "ONNX Runtime 是 PyTorch 速度的"),
            "", "每格最快的一次（ms）和由它算的倍数（负载只会加时间，最快的一次最接近空闲时的开销）：",
            *fastest_table(samples, runners, towers, batches)]


def ratio_span(samples: Samples, fast: str, slow: str, towers: dict[str, str], batches: list[int]) -> str:
    """The range of median(slow) / median(fast) over the cells, and how many cells the middle halves tell apart:
    "1.43–1.57 倍（4 格里 4 格分得开）"."""
    cells = [(samples[(fast, t, b)], samples[(slow, t, b)]) for t in towers for b in batches]
    ratios = [statistics.median(s) / statistics.median(f) for f, s in cells]
    apart = sum(verdict(f, s) != "分不出" for f, s in cells)
    lo, hi = f"{min(ratios):.2f}", f"{max(ratios):.2f}"
    span = lo if lo == hi else f"{lo}–{hi}"
    return f"{span} 倍（{len(cells)} 格里 {apart} 格分得开）"


def padding_split(ways: dict[str, list[float]], table_pair: tuple[list[float], list[float]] | None = None) -> list[str]:
    """Appendix A: split ONNX Runtime's ratio against the per-sentence PyTorch into two factors.

    ways (ms of every call): "pt52" PyTorch dense on the full columns, "pt_trim" PyTorch dense on the trimmed
    columns, "ort_trim" ONNX Runtime on the trimmed columns, "pt_unpad" PyTorch skipping [PAD] per sentence.
    pt_unpad / ort_trim = (pt_trim / ort_trim) x (pt_unpad / pt_trim); each row gets its own verdict.
    table_pair: (PyTorch, ORT) samples of the same columns from section 6's table, shown as a second measurement."""
    med = {k: statistics.median(v) for k, v in ways.items()}

    def row(label: str, pt: list[float], ort: list[float]) -> str:
        v = verdict(pt, ort)
        word = {"分不出": "分不出", "b 更快": "ONNX Runtime 更快", "a 更快": "ONNX Runtime 更慢"}[v]
        return ljust(label, 42) + rjust(f"{statistics.median(pt) / statistics.median(ort):.2f}", 7) + "  " + word

    def own(label: str, slow: list[float], fast: list[float]) -> str:
        says = "分不出" if verdict(fast, slow) == "分不出" else "分得开"
        return ljust(label, 42) + rjust(f"{statistics.median(slow) / statistics.median(fast):.2f}", 7) + "  " + says

    lines = [own("截 padding：PyTorch 全部列的时间 ÷ 截后的", ways["pt52"], ways["pt_trim"]),
             "", ljust("PyTorch 的时间 ÷ ONNX Runtime 的时间", 42) + rjust("倍数", 7) + "  判断",
             row("对按句跳过 [PAD] 的 PyTorch", ways["pt_unpad"], ways["ort_trim"]),
             row("  = 同样列数时", ways["pt_trim"], ways["ort_trim"]),
             own("  × PyTorch：按句跳过的时间 ÷ 整批截齐的", ways["pt_unpad"], ways["pt_trim"])]
    if table_pair is not None:
        lines.append(row("同样列数，第 6 部分的表", *table_pair))
    return lines
