"""Exercise 08.5 of notebook 08 (zero-shot classification): a paired comparison of two classifiers.

08.5 (is a difference beyond noise? the rule every later "beyond noise" in the notebook uses) is compared
with `eval.paired.paired_gap` on boolean "right / wrong" arrays for two classifiers graded on the same
images, built so that each mistake shows: many images both get right (an unpaired or sqrt(N) standard
error differs), a difference of exactly two standard errors with m >= 10 disagreeing images (`>=`
instead of `>`), a classifier that is worse (a missing abs or a reversed sign), two identical classifiers
(no disagreeing image: standard error 0), and small m where the student's own exact sign test decides:
5 flips all one way (the 2-SE rule and a one-sided p say "beyond", the two-sided exact p = 0.0625 does
not), 6 all one way (p = 0.031: beyond; "never beyond for small m" fails), 7 or 8 flips with d = m - 2
(a tail that leaves out the observed value says "beyond").
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 08.5 paired comparison
def _library_paired(ok_base, ok_other):
    from cnclip_edu.eval.paired import paired_gap

    return paired_gap(ok_base, ok_other)


def _paired_arrays(both: int, neither: int, only_base: int, only_other: int, seed: int):
    """(N,) booleans for base and other: `both` images right under both, ... , in a shuffled order."""
    import numpy as np

    rows = [(1, 1)] * both + [(0, 0)] * neither + [(1, 0)] * only_base + [(0, 1)] * only_other
    rows = np.array(rows, dtype=bool).reshape(-1, 2)
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    return rows[:, 0].copy(), rows[:, 1].copy()


def _paired_run(f, counts, seed):
    """The answer on one pair of arrays -> (difference, standard error, beyond two SE) as plain numbers."""
    result = f(*_paired_arrays(*counts, seed))
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return f"应当返回 (差几张, 标准误, 是否超出两个标准误) 三个值，得到 {result!r}"
    d, se, beyond = result
    return float(d), float(se), bool(beyond)


_PAIRED_CASES = [  # (label, (both right, both wrong, only base right, only other right))
    ("200 张图，150 张两边都对；other 多对 7 张，只有 9 张图两边不同", (150, 41, 1, 8)),
    ("140 张图；16 张图两边不同，other 多对 8 张：差正好是两个标准误", (100, 24, 4, 12)),
    ("135 张图；other 少对 13 张（更差），15 张图两边不同", (100, 20, 14, 1)),
    ("60 张图；other 少对 5 张，5 张图两边不同（全朝一边翻）", (40, 15, 5, 0)),
    ("50 张图；other 多对 6 张，6 张图两边不同（全朝一边翻）", (30, 14, 0, 6)),
    ("70 张图；other 多对 5 张，7 张图两边不同", (50, 13, 1, 6)),
    ("30 张图，两个分类器每张图的对错完全一样", (20, 10, 0, 0)),
    ("320 张图；两边各有十几张独有的对，差在噪声以内", (250, 40, 14, 16)),
]


def _paired_cases():
    return [Case(label, lambda f, c=c, s=i: _paired_run(f, c, s)) for i, (label, c) in enumerate(_PAIRED_CASES)]


def _paired_hidden(seed: int):
    import random

    rng = random.Random(seed)
    k = rng.randint(2, 4)            # m = 4k^2 = 16, 36 or 64 disagreeing images: m >= 10
    runs = [("一边明显更好", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(0, 2), rng.randint(12, 25))),
            ("一边明显更差", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(12, 25), rng.randint(0, 2))),
            # a = 2k^2 + 2k right only under one, b = 2k^2 - 2k only under the other: |a - b| = 4k = 2 sqrt(a + b)
            ("差正好是两个标准误", (rng.randint(10, 80), rng.randint(0, 10)) + tuple(
                sorted((2 * k * k + 2 * k, 2 * k * k - 2 * k), reverse=rng.random() < 0.5))),
            ("两边差不多", (rng.randint(100, 300), rng.randint(10, 50), rng.randint(8, 15), rng.randint(8, 15))),
            # small m, the exact sign test decides: 5 all one way (p = 0.0625), 6 to 9 all one way (p <= 0.031),
            # m = 7 or 8 with d = m - 2 (p = 0.125 or 0.070; leaving the observed value out of the tail gives < 0.02)
            ("m 很小、全朝一边翻", (rng.randint(20, 80), rng.randint(0, 20)) + ((5, 0) if rng.random() < 0.5 else (0, 5))),
            ("m 很小、全朝一边翻得更多", (rng.randint(20, 80), rng.randint(0, 20)) + tuple(
                sorted((rng.randint(6, 9), 0), reverse=rng.random() < 0.5))),
            ("m 很小、几乎全朝一边翻", (rng.randint(20, 80), rng.randint(0, 20)) + tuple(
                sorted((rng.choice((6, 7)), 1), reverse=rng.random() < 0.5))),
            ("两边完全一样", (rng.randint(5, 60), rng.randint(0, 30), 0, 0))]
    return [Case(kind, lambda f, c=c, s=rng.randrange(10 ** 6): _paired_run(f, c, s)) for kind, c in runs]


def _paired_mistake(kind: str):
    def paired_gap(ok_base, ok_other):
        import math

        import numpy as np

        ok_base, ok_other = np.asarray(ok_base, dtype=bool), np.asarray(ok_other, dtype=bool)
        n = len(ok_base)
        d = int(ok_other.sum()) - int(ok_base.sum())
        if kind == "reversed":
            d = -d
        m = int(np.sum(ok_base != ok_other))
        if kind == "one_way":
            m = int(np.sum(ok_other & ~ok_base))
        se = float(np.sqrt(m))
        if kind == "sqrt_n":
            se = float(np.sqrt(n))
        elif kind == "unpaired":
            p, q = ok_base.mean(), ok_other.mean()
            se = float(np.sqrt(n * p * (1 - p) + n * q * (1 - q)))
        elif kind == "m_not_sqrt":
            se = float(m)
        if kind == "fraction":
            d = d / n
        beyond = abs(d) > 2 * se
        if kind == "geq":
            beyond = abs(d) >= 2 * se
        elif kind == "no_abs":
            beyond = d > 2 * se
        if m < 10 and kind not in ("normal_only", "sqrt_n", "unpaired"):
            if kind == "never_small":
                beyond = False
            else:
                extreme = {"one_sided": lambda x: 2 * x - m >= abs(d),
                           "strict_tail": lambda x: abs(2 * x - m) > abs(d)}.get(kind, lambda x: abs(2 * x - m) >= abs(d))
                beyond = sum(math.comb(m, x) for x in range(m + 1) if extreme(x)) / 2 ** m < 0.05
        return d, se, beyond
    return paired_gap


register(Exercise(
    id="08.5", title="配对比较：两个分类器在同一批图上的差，超出噪声了吗", points=2,
    hint="两边都对、两边都错的图对差没有贡献；差只来自一边对、一边错的那些图。假设两个分类器一样好，"
         "这样的每张图是 +1 还是 -1 各占一半，m 张图的和的方差是 m。m ≥ 10 时差要超过两个标准误（严格大于）才算超出噪声；"
         "m < 10 时朝 other 翻的张数 X 服从 Binomial(m, 1/2)，p 把和观察到的一样极端的那些值也算进去，两个方向都算。"
         "变好、变差都算。",
    reference=_library_paired,
    cases=_paired_cases,
    hidden=_paired_hidden,
    builds=("cnclip_edu.eval.paired.paired_gap", "cnclip_edu.eval.paired.beyond_noise",
            "cnclip_edu.eval.paired.sign_test_p"),
    mutants=lambda: {
        "差的方向反了（base 减 other）": _paired_mistake("reversed"),
        "标准误用了全部图片数 √N": _paired_mistake("sqrt_n"),
        "当成两组独立的图（两个二项分布的标准误）": _paired_mistake("unpaired"),
        "只数了 other 对、base 错的图": _paired_mistake("one_way"),
        "标准误写成了 m 而不是 √m": _paired_mistake("m_not_sqrt"),
        "差写成了比例而不是张数": _paired_mistake("fraction"),
        "超出两个标准误用了 >=（正好两个标准误也算超出）": _paired_mistake("geq"),
        "忘了取绝对值（变差的永远不算超出）": _paired_mistake("no_abs"),
        "m < 10 时也用两个标准误（没有精确检验）": _paired_mistake("normal_only"),
        "精确检验只算了一个方向（单侧 p）": _paired_mistake("one_sided"),
        "精确检验的 p 没算和观察值一样极端的那些（> 而不是 ≥）": _paired_mistake("strict_tail"),
        "m < 10 时一律不算超出": _paired_mistake("never_small"),
    },
))
