"""Exercise 03.5 of notebook 03 (part 5, the two towers as CLIP): which tower lost the information.

`tower_verdict(features, i, j, scale)` takes one tower's features (N, E), not normalised, and returns
the largest logit gap any unit vector of the other tower can give rows i and j (s * ||f_i - f_j|| for the
unit rows, = s * sqrt(2 - 2 cos)) and whether that tower keeps them apart (e^gap >= 2, the notebook's
line). The cases use rows of different lengths (normalise first), rows other than 0 and 1, a near pair
whose gap lies between ln 2 and 2 (the line is on the probability ratio e^gap, not on the gap) and a
parallel pair (gap 0). The compare forgives the rounding of a cosine computed in float32 (a correct
sqrt(2 - 2 cos) is off by ~1e-3 near cos = 1), far less than any mutant's error.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnclip_edu.eval.tower_gap import max_logit_gap, tower_verdict

from .compare import default_compare
from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts

_BUILDS = ("cnclip_edu.eval.tower_gap.max_logit_gap", "cnclip_edu.eval.tower_gap.tower_verdict")
_run = guarded(tower_verdict, _BUILDS)


def _features(n: int, e: int, seed: int, near: tuple[int, int, float] | None = None,
              parallel: tuple[int, int] | None = None) -> torch.Tensor:
    """(n, e) random rows of lengths 0.5-3; `near` = (i, j, d): row j is row i turned by a small angle
    (unit rows d apart); `parallel` = (i, j): row j is row i times another length."""
    g = torch.Generator().manual_seed(seed)
    unit = F.normalize(torch.randn(n, e, generator=g), dim=-1)
    if near is not None:
        i, j, d = near
        u = torch.randn(e, generator=g)
        u = F.normalize(u - (u @ unit[i]) * unit[i], dim=0)           # orthogonal to row i
        unit[j] = F.normalize(unit[i] + d * u, dim=0)                  # ||unit_i - unit_j|| ~ d
    if parallel is not None:
        unit[parallel[1]] = unit[parallel[0]]
    lengths = 0.5 + 2.5 * torch.rand(n, 1, generator=g)
    return unit * lengths


def _case(label: str, features: torch.Tensor, i: int, j: int, scale: float) -> Case:
    def run(f):
        out = _run(f, features.clone(), i, j, scale)
        if isinstance(out, dict):                      # the shortcut marker
            return out
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            return f"应当返回两个值 (最大 logit 差, 是否分得开)，得到的是 {type(out).__name__}"
        gap, kept = out
        return [float(gap), bool(kept)]
    return Case(label, run)


def _compare(expected, got):
    """The gap within 2e-2 (a float32 cosine near 1 costs ~1e-3 after the square root), the verdict exactly."""
    if isinstance(expected, list) and isinstance(got, list) and len(got) == 2:
        if not math.isclose(got[0], expected[0], rel_tol=1e-3, abs_tol=2e-2):
            return f"最大 logit 差：期望 {expected[0]:.4g}，得到 {got[0]:.4g}"
        if got[1] != expected[1]:
            return (f"最大 logit 差 {expected[0]:.3g}（概率之比最多 {math.exp(expected[0]):.3g} 倍）时，"
                    f"判断应当是 {expected[1]}，得到 {got[1]}")
        return None
    return default_compare(expected, got)


def _cases():
    return [_case("4 行长度不同的特征（没有归一化），第 0、1 行，缩放系数 17", _features(4, 8, 1), 0, 1, 17.0),
            _case("5 行特征，第 3 行和第 1 行", _features(5, 6, 2), 3, 1, 30.0),
            _case("很接近的两行：logit 最多差 ln 2 到 2 之间（看概率之比 e^g，不是 g）",
                  _features(4, 16, 3, near=(2, 0, 0.12)), 2, 0, 10.0),
            _case("方向相同、长度不同的两行：最多差 0，分不开", _features(3, 8, 4, parallel=(1, 2)), 1, 2, 5.0)]


def _hidden(seed: int):
    rng = random.Random(seed)
    n, e = rng.randint(3, 7), rng.randint(4, 24)
    i, j = rng.sample(range(n), 2)
    while {i, j} == {0, 1}:                             # other rows than 0 and 1
        i, j = rng.sample(range(n), 2)
    scale = rng.uniform(20.0, 50.0)                     # the near pair: cos > 0.99, unit rows < 0.08 apart
    gap = rng.uniform(1.0, 1.6)                         # e^gap between 2.7 and 5: kept apart, though gap < 2
    return [_case("随机的一批特征、随机的两行", _features(n, e, seed), i, j, scale),
            _case("随机的一对很接近的行（logit 差在 ln 2 和 2 之间）",
                  _features(n, e, seed + 1, near=(i, j, gap / scale)), i, j, scale)]


def _wrong(normalize=True, scale_it=True, distance="norm", verdict="ratio", rows=None):
    """A tower_verdict with one step done differently (for the mutants)."""
    def answer(features, i, j, scale):
        if rows is not None:
            i, j = rows
        f = F.normalize(features, dim=-1) if normalize else features
        cos = float(f[i] @ f[j])
        d = {"norm": float((f[i] - f[j]).norm()), "1-cos": 1 - cos, "sqrt(1-cos)": math.sqrt(max(1 - cos, 0.0))}[distance]
        gap = (scale if scale_it else 1.0) * d
        kept = {"ratio": math.exp(gap) >= 2, "gap": gap >= 2, "flipped": math.exp(gap) < 2, "cos": cos < 0.99}[verdict]
        return gap, kept
    return answer


register(Exercise(
    id="03.5", title="信息丢在哪个塔里：一个塔最多能把两个输入分开多少", points=2,
    hint="另一个塔的向量是单位向量，它给两个输入的 logit 之差是缩放系数乘以它和两个单位特征之差的点积；"
         "一个单位向量和一个固定向量的点积最大是多少？判断看的是概率之比 e^g，不是 g 本身。",
    reference=tower_verdict,
    cases=_cases, hidden=_hidden, builds=_BUILDS, compare=refuse_shortcuts(_compare),
    mutants=lambda: {
        "没有先归一化，直接用特征之差": _wrong(normalize=False),
        "忘了乘缩放系数": _wrong(scale_it=False),
        "用 1 − cos 当距离": _wrong(distance="1-cos"),
        "根号里漏了 2：√(1 − cos)": _wrong(distance="sqrt(1-cos)"),
        "拿 g 和 2 比，而不是概率之比 e^g 和 2 比": _wrong(verdict="gap"),
        "判断写反了": _wrong(verdict="flipped"),
        "只看余弦：cos < 0.99 就算分得开": _wrong(verdict="cos"),
        "总是比较第 0 行和第 1 行": _wrong(rows=(0, 1)),
        "直接调用库里的 max_logit_gap": lambda f, i, j, s: (max_logit_gap(f, i, j, s), math.exp(max_logit_gap(f, i, j, s)) >= 2),
    }))
