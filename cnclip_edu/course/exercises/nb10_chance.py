"""Exercise 10.7 of notebook 10 (your own photos): could a difference on 17 captions be chance?

10.7 (`eval.chance.more_hits_p`): two groups of captions, n_a and n_b of them, got hits_a and hits_b
hits. If being a hit had nothing to do with the group, every choice of which hits_a + hits_b of the
n_a + n_b captions are the hits would be equally likely; the answer is the share of those choices
that give group a hits_a hits or more (a one-sided exact permutation test; Fisher's exact test for
a 2x2 table). The student may count with binomial coefficients or enumerate the choices: both are
exact, and the case sizes keep enumeration fast. Cases: the notebook's 5 of 8 vs 2 of 9, no hits,
every caption a hit, group a holding every hit, group a with none, a one-caption group, more hits
than group a has captions.
"""
from __future__ import annotations

import random
from math import comb

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 10.7 permutation test
def _p_cases(rows):
    return [Case(label, lambda f, a=a: float(f(*a))) for label, a in rows]


def _chance_cases():
    return _p_cases([
        ("第 6 部分的数：彩色 8 条里 5 条、黑白 9 条里 2 条", (5, 8, 2, 9)),
        ("一条命中也没有", (0, 8, 0, 9)),
        ("每一条都命中", (6, 6, 4, 4)),
        ("命中全在 a 组", (4, 5, 0, 7)),
        ("a 组一条也没命中（概率应为 1）", (0, 5, 3, 6)),
        ("a 组只有 1 条描述", (1, 1, 3, 12)),
        ("命中比 a 组的描述还多", (3, 3, 4, 5)),
        ("两组一样大、命中一样多", (3, 7, 3, 7)),
    ])


def _chance_hidden(seed: int):
    rng = random.Random(seed)
    rows = []
    for kind in ("一般的两组", "一般的两组", "a 组很小", "命中很多"):
        n_a = rng.randint(1, 3) if kind == "a 组很小" else rng.randint(4, 12)
        n_b = rng.randint(4, 12)
        hits_a = rng.randint(0, n_a)
        hits_b = rng.randint(n_b // 2, n_b) if kind == "命中很多" else rng.randint(0, n_b)
        rows.append((kind, (hits_a, n_a, hits_b, n_b)))
    return _p_cases(rows)


def _chance_reference(hits_a, n_a, hits_b, n_b):
    from cnclip_edu.eval.chance import more_hits_p

    return more_hits_p(hits_a, n_a, hits_b, n_b)


def _chance_mistake(kind: str):
    def more_hits_p(hits_a, n_a, hits_b, n_b):
        hits, n = hits_a + hits_b, n_a + n_b
        point = [comb(hits, k) * comb(n - hits, n_a - k) / comb(n, n_a) for k in range(0, min(hits, n_a) + 1)]
        if kind == "strict":        # "more than": the observed count itself left out
            return sum(point[hits_a + 1:])
        if kind == "point":         # only exactly hits_a
            return point[hits_a]
        if kind == "lower":         # the other tail: hits_a or fewer
            return sum(point[:hits_a + 1])
        if kind == "two_sided":     # both directions: every count no more likely than the observed one
            return min(1.0, sum(p for p in point if p <= point[hits_a] * (1 + 1e-12)))
        if kind == "group_b":       # group b's tail instead of group a's
            return sum(comb(hits, k) * comb(n - hits, n_b - k) for k in range(hits_b, min(hits, n_b) + 1)) / comb(n, n_b)
        if kind == "binomial":      # each hit lands in group a with probability n_a / n, independently
            q = n_a / n
            return sum(comb(hits, k) * q ** k * (1 - q) ** (hits - k) for k in range(hits_a, hits + 1))
        if kind == "rates":         # "a's rate is higher" as a yes / no
            return 0.0 if hits_a / n_a > hits_b / n_b else 1.0
        if kind == "simulated":     # an estimate from 2000 shuffles, not the exact value
            rng = random.Random(0)
            labels = [1] * hits + [0] * (n - hits)
            more = 0
            for _ in range(2000):
                rng.shuffle(labels)
                more += sum(labels[:n_a]) >= hits_a
            return more / 2000
        raise ValueError(kind)
    return more_hits_p


def _chance_alternatives():
    """Correct answers written differently from the library: each must pass (tests prove it)."""
    from itertools import combinations

    def enumerate_choices(hits_a, n_a, hits_b, n_b):
        n, hits = n_a + n_b, hits_a + hits_b
        choices = list(combinations(range(n), hits))       # which captions are the hits
        return sum(sum(i < n_a for i in c) >= hits_a for c in choices) / len(choices)

    def choose_group_a(hits_a, n_a, hits_b, n_b):
        hits, n = hits_a + hits_b, n_a + n_b
        return sum(comb(n_a, k) * comb(n_b, hits - k) for k in range(hits_a, hits + 1)) / comb(n, hits)

    return {"逐一列出命中落在哪几条上": enumerate_choices, "按 a 组分到几条命中来数": choose_group_a}


register(Exercise(
    id="10.7", title="置换检验：这个差别会不会只是碰巧", points=3,
    hint="先想“什么都没发生”时会怎样：命中与否和分组无关，那么这几次命中落在哪几条描述上，每一种落法都一样可能。"
         "把所有落法数一遍，a 组分到的命中不少于实际数的落法占几成，就是答案。要的是精确值，不是抽样估计；"
         "只算一侧（a 组更多）；“不少于”包括恰好相等。",
    reference=_chance_reference,
    cases=_chance_cases,
    hidden=_chance_hidden,
    builds=("cnclip_edu.eval.chance.more_hits_p",),
    mutants=lambda: {
        "“不少于”写成了“多于”：漏了恰好相等": _chance_mistake("strict"),
        "只算恰好等于实际数的概率": _chance_mistake("point"),
        "算反了一侧：a 组分到的不多于实际数": _chance_mistake("lower"),
        "双侧：两个方向都算": _chance_mistake("two_sided"),
        "算的是 b 组的那一侧": _chance_mistake("group_b"),
        "当成二项分布：每次命中独立地以 n_a / n 落在 a 组": _chance_mistake("binomial"),
        "只比较两组的命中率，答 0 或 1": _chance_mistake("rates"),
        "随机打乱 2000 次来估计（不精确）": _chance_mistake("simulated"),
    },
))
