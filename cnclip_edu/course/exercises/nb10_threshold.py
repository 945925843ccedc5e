"""Exercise 10.6 of notebook 10 (your own photos): the "nothing found" threshold of a search box.

10.6 chooses the "nothing found" threshold of a search box on validation results
(`eval.threshold.threshold_from_valid`). The notebook states goals, not the algorithm: right on the most
captions, the most cautious among equals (fewest accepted), and not on a score (a margin of at least a
quarter of the gap it sits in, the gaps below the lowest / above the highest score reaching -1 / 1).
So the number is NOT compared with the library's midpoint: each case reports properties - a number in
[-1, 1], how many captions it is right on, which captions it accepts, the margin - and any threshold
with the reference's decisions and a margin passes (finding that finitely many candidates suffice is
the student's part). Cases: mixed right / wrong with a caption whose top-1 is its second gold photo,
out-of-gallery queries (gold = []: always to be rejected; their scores sit between the wrong and the right
in-gallery ones, so leaving them out moves the threshold), all right, all wrong, ties, one caption.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 10.6 "nothing found" threshold
def _valid_results(rows):
    """(text_id, top-1 score, ranked image ids, gold ids) rows -> the three dicts of the exercise."""
    import numpy as np

    scores = {t: np.array([s, s - 0.05, s - 0.1], dtype=np.float32) for t, s, _, _ in rows}
    ranked = {t: list(r) for t, _, r, _ in rows}
    gold = {t: list(g) for t, _, _, g in rows}
    return scores, ranked, gold


_MIXED = [  # text_id, top-1 score, ranked image ids, gold: right ones mostly high, two wrong ones high too
    (53, 0.62, [1, 4, 7], [1]), (54, 0.31, [5, 2, 9], [2]), (55, 0.48, [3, 1, 2], [3]), (56, 0.44, [8, 7, 1], [7, 8]),
    (57, 0.27, [9, 3, 4], [4]), (58, 0.55, [6, 1, 2], [6]), (59, 0.38, [1, 9, 4], [9]), (60, 0.50, [2, 5, 6], [5]),
]
_OUT_OF_GALLERY = [  # three right top-1s, one wrong, and three queries whose answer is not in the gallery (gold [])
    (1, 0.70, [1, 2], [1]), (2, 0.65, [2, 1], [2]), (3, 0.60, [3, 1], [3]), (4, 0.30, [4, 1], [1]),
    (5, 0.50, [1, 2], []), (6, 0.45, [2, 3], []), (7, 0.40, [3, 1], []),
]
_TIES = [  # two wrong top-1s share a score with a right one; equal counts for several candidates
    (1, 0.40, [1, 2], [1]), (2, 0.40, [2, 1], [1]), (3, 0.40, [3, 1], [3]), (4, 0.20, [4, 1], [1]),
    (5, 0.70, [5, 1], [5]), (6, 0.60, [6, 1], [2]),
]


def _threshold_properties(f, rows):
    """What every correct threshold gives on these validation results, as plain data: the decisions
    (how many right, which captions accepted) and the margin, not the number itself."""
    import numbers

    t = f(*_valid_results(rows))
    props: dict = {"返回一个数（float）": isinstance(t, numbers.Real) and not isinstance(t, bool)}
    if not props["返回一个数（float）"]:
        return props
    t = float(t)
    top = {text_id: (float(_valid_results(rows)[0][text_id][0]), r[0] in g) for text_id, _, r, g in rows}
    props["在 [-1, 1] 里"] = -1.0 <= t <= 1.0
    props["做对的条数（接受了对的 + 挡掉了错的）"] = sum((s > t) == ok for s, ok in top.values())
    props["接受的描述（第 1 名的分数 > 阈值）的 text_id"] = sorted(k for k, (s, _) in top.items() if s > t)
    below = [s for s, _ in top.values() if s <= t]
    above = [s for s, _ in top.values() if s > t]
    lo, hi = (max(below) if below else -1.0), (min(above) if above else 1.0)   # the gap t sits in
    margin = min(([t - lo] if below else []) + ([hi - t] if above else []))   # to the nearest score
    props["不贴着分数：离两边最近的分数都至少留出所在空隙的 1/4"] = hi > lo and margin >= (hi - lo) / 4 - 1e-9
    return props


def _threshold_cases():
    return [
        Case("8 条描述：有对有错，其中一条有两张 gold 照片、排第 1 的是第二张", lambda f: _threshold_properties(f, _MIXED)),
        Case("图库外的查询（gold 是空列表，应当挡掉）：分数在排错的和排对的之间",
             lambda f: _threshold_properties(f, _OUT_OF_GALLERY)),
        Case("全部排对：一张照片都不该挡掉",
             lambda f: _threshold_properties(f, [(k, 0.3 + 0.1 * k, [k], [k]) for k in range(4)])),
        Case("全部排错：什么都不该接受",
             lambda f: _threshold_properties(f, [(k, 0.3 + 0.1 * k, [k], [k + 1]) for k in range(4)])),
        Case("几条描述的分数相同、几个阈值一样好", lambda f: _threshold_properties(f, _TIES)),
        Case("只有一条描述（排对了）", lambda f: _threshold_properties(f, [(7, 0.12, [3, 1], [1, 3])])),
    ]


def _threshold_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind in ("有对有错、分数有重复、有多张 gold 的描述", "分数很接近的一组描述"):
        rows = []
        for t in range(rng.randint(6, 20)):
            ok = rng.random() < 0.5
            gold = rng.sample(range(1, 30), rng.choice([0, 1, 1, 2, 3]))   # 0: a query with no answer in the gallery
            ok = ok and bool(gold)
            top = rng.choice(gold) if ok else rng.choice([i for i in range(1, 30) if i not in gold])
            s = round(rng.uniform(0.1, 0.7) + (0.1 if ok else 0.0), 2 if kind.startswith("有对") else 3)
            rows.append((100 + t, s, [top, rng.randint(1, 29)], gold))
        cases.append(Case(kind, lambda f, rows=rows: _threshold_properties(f, rows)))
    return cases


def _threshold_reference(scores, ranked, gold):
    from cnclip_edu.eval.threshold import threshold_from_valid

    return threshold_from_valid(scores, ranked, gold)


def _threshold_mistake(kind: str):
    def threshold_from_valid(scores, ranked, gold):
        if kind == "skip_no_gold":   # queries without a gold photo left out, as if they could not be judged
            top = [(float(scores[t][0]), ranked[t][0] in gold[t]) for t in ranked if gold[t]]
        elif kind == "first_gold":
            top = [(float(scores[t][0]), ranked[t][0] == gold[t][0]) for t in ranked]
        elif kind == "gold_score":   # the score of the best gold photo in the top-k, not of the top-1
            top = [(float(next((s for s, i in zip(scores[t], ranked[t]) if i in gold[t]), scores[t][0])),
                    ranked[t][0] in gold[t]) for t in ranked]
        else:
            top = [(float(scores[t][0]), ranked[t][0] in gold[t]) for t in ranked]
        values = sorted({s for s, _ in top})
        if kind == "max_wrong":
            return max([s for s, ok in top if not ok], default=-1.0)
        if kind == "min_right":
            return min([s for s, ok in top if ok], default=1.0)
        inner = values if kind == "scores" else [(a + b) / 2 for a, b in zip(values, values[1:])]
        candidates = inner if kind == "no_ends" else [-1.0] + inner + [1.0]
        if not candidates:
            candidates = [values[0]]
        best, best_right = -1.0, -1
        for t in candidates:
            right = sum((s > t) == ok for s, ok in top)
            if right > best_right or (right == best_right and kind != "smallest"):
                best, best_right = t, right
        return best
    return threshold_from_valid


register(Exercise(
    id="10.6", title="给搜索框定“没有找到”的阈值（在 valid 上选）", points=3,
    hint="每条 valid 描述只看排第 1 的那张照片：它的相似度，和它是不是这条描述的 gold 照片之一"
         "（gold 可能不止一张，也可能是空的：图库里没有答案，第 1 名一定不对）。"
         "阈值从 -1 移到 1 的路上，只有跨过某条描述的分数时，决定才会变：两次变化之间的阈值都一样好，"
         "所以只需比较有限几段，每段里取一个离两边都不近的值；全部接受、全部挡掉也是两段。"
         "做对的条数一样多时，选挡掉得最多的那段。"
         "常见错误：只和第一张 gold 比、跳过了 gold 为空的描述、漏了“全部接受 / 全部挡掉”、一样多时选了更松的、阈值恰好等于某个分数。",
    reference=_threshold_reference,
    cases=_threshold_cases,
    hidden=_threshold_hidden,
    builds=("cnclip_edu.eval.threshold.threshold_from_valid",),
    mutants=lambda: {
        "只和 gold 里的第一张照片比较": _threshold_mistake("first_gold"),
        "跳过没有 gold 照片的描述（图库外的查询）": _threshold_mistake("skip_no_gold"),
        "用 top-k 里 gold 照片的分数，而不是排第 1 的照片的分数": _threshold_mistake("gold_score"),
        "阈值 = 排错的描述里最高的分数": _threshold_mistake("max_wrong"),
        "阈值 = 排对的描述里最低的分数": _threshold_mistake("min_right"),
        "阈值恰好等于某条描述的分数（贴着分数）": _threshold_mistake("scores"),
        "候选里没有 -1 和 1 两端": _threshold_mistake("no_ends"),
        "判断对的条数一样多时取了最小的阈值": _threshold_mistake("smallest"),
    },
))
