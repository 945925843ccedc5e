"""Exercise 01.7 of notebook 01: `choose_context_length(n_ids, q)`, the smallest L that keeps a share q of
the texts whole (section 6 picks L with it), compared with the library's `choose_context_length`: the
result and its type (a Python int), on unsorted counts, q = 1, and q * N a whole number.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb01_common import _T
from .tripwire import guard_for


# ----------------------------------------------------------------------------- 01.7 choose_context_length
# public cases: (label, counts, q or None for the default 0.99); q * N is never a whole number except
# for q = 1, so "share >= q" and "index ceil(q * N) - 1" are the same rule and float rounding cannot matter
CHOOSE_CASES = [
    ("10 条文本，q=0.75（线性插值会落在两个长度之间）", [10, 10, 10, 10, 10, 10, 10, 20, 30, 40], 0.75),
    ("7 条未排序的文本，q=0.9", [7, 3, 12, 5, 9, 4, 6], 0.9),
    ("150 条文本（140 条 20 个 id，10 条 30–39 个），不传 q（默认 0.99）", [20] * 140 + list(range(30, 40)), None),
    ("q=1：全部放下，就是最长的那条", [0, 2, 5], 1.0),
    ("只有一条空文本（0 个 id），q=0.5", [0], 0.5),
    # q * N a whole number, exactly representable (8 * 0.75 = 6): "reaches q" is >=, so the 6th text is enough
    ("8 条未排序的文本，q=0.75：第 6 条放下时正好 75%", [5, 1, 8, 3, 7, 2, 6, 4], 0.75),
]


def _library_choose(n_ids, q: float = 0.99) -> int:
    from cnclip_edu.tokenizer import choose_context_length

    return choose_context_length(n_ids, q)


BUILDS_CHOOSE = (_T + "choose_context_length",)
_guard_choose = guard_for(_library_choose, BUILDS_CHOOSE)


def _choose_case(label: str, counts: list[int], q: float | None) -> Case:
    def run(f):
        import numbers

        g = _guard_choose(f)
        out = g(list(counts)) if q is None else g(list(counts), q)
        # the spec says a Python int (a numpy integer prints the same but is another type); plain data for the grader
        value = int(out) if isinstance(out, numbers.Integral) else repr(out)
        return {"L": value, "返回值的类型": type(out).__name__}
    return Case(label, run)


def _choose_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for q in (rng.choice([0.8, 0.9, 0.95]), 0.99, 0.99):
        n = rng.randint(30, 400)
        while abs(q * n - round(q * n)) < 1e-6:   # keep q * N off whole numbers (see CHOOSE_CASES)
            n += 1
        counts = [max(0, round(rng.gauss(24, 5))) for _ in range(n)]
        counts += [rng.randint(40, 90) for _ in range(rng.randint(1, max(1, n // 20)))]   # a long tail
        rng.shuffle(counts)
        if abs(q * len(counts) - round(q * len(counts))) < 1e-6:
            counts.append(rng.randint(10, 30))
        cases.append(_choose_case(f"随机的 id 个数（近似正态加一条长尾，未排序），q={q}", counts, q))
    counts = [rng.randint(0, 60) for _ in range(rng.randint(5, 50))]
    cases.append(_choose_case("随机的 id 个数，q=1", counts, 1.0))
    q = rng.choice([0.5, 0.75, 0.875])                    # dyadic: q * N is exactly a whole number
    counts = [rng.randint(0, 60) for _ in range(8 * rng.randint(2, 12))]
    cases.append(_choose_case(f"随机的 id 个数，q={q}，q·N 正好是整数", counts, q))
    return cases


def _choose_mistake(kind: str):
    import math

    import numpy as np

    def choose_context_length(n_ids, q=0.99):
        n = sorted(n_ids) if kind != "unsorted" else list(n_ids)
        if kind == "mean":
            return round(sum(n) / len(n)) + 2
        if kind == "median":
            return int(np.median(n)) + 2
        if kind == "percentile":
            return int(math.ceil(np.percentile(n, 100 * q))) + 2
        if kind == "floor_index":
            return n[max(0, int(q * len(n)) - 1)] + 2
        if kind == "strict_gt":  # "share > q" instead of "share reaches q"; all texts when none exceeds q
            return next((n[j] for j in range(len(n)) if (j + 1) / len(n) > q), n[-1]) + 2
        if kind == "numpy_int":  # np.sort and an index: right number, but a numpy.int64
            s = np.sort(np.asarray(n_ids))
            return s[math.ceil(q * len(s)) - 1] + 2
        k = math.ceil(q * len(n))
        return n[k - 1] + (0 if kind == "no_plus_2" else 2)
    return choose_context_length


register(Exercise(
    id="01.7", title="choose_context_length：让一定比例的文本完整放下的最小 L", points=2,
    hint="一条有 n 个 id 的文本在 L 里完整放下，要求 n + 2 ≤ L（[CLS] 和 [SEP] 也占位置）。把 id 个数从小到大排好，"
         "L 取在“放得下的条数 / 总条数 ≥ q”第一次成立的那条文本上；想一想排序后第几条（从 0 数还是从 1 数）"
         "是第一条满足的；插值、平均数都会落在这条规则之外。",
    reference=_library_choose,
    cases=lambda: [_choose_case(label, counts, q) for label, counts, q in CHOOSE_CASES],
    hidden=_choose_hidden,
    builds=BUILDS_CHOOSE,
    mutants=lambda: {
        "忘了给 [CLS] 和 [SEP] 留的 +2": _choose_mistake("no_plus_2"),
        "下标差一：取了排序后的第 int(q·N) − 1 个": _choose_mistake("floor_index"),
        "用平均长度 + 2": _choose_mistake("mean"),
        "用中位数 + 2": _choose_mistake("median"),
        "np.percentile 的默认线性插值再向上取整": _choose_mistake("percentile"),
        "忘了先排序": _choose_mistake("unsorted"),
        "用 > 而不是 ≥：q·N 正好是整数时多放了一条": _choose_mistake("strict_gt"),
        "返回了 numpy 的整数 (numpy.int64)，不是 Python int": _choose_mistake("numpy_int"),
    },
))
