"""Is one classifier better than another on the same images, beyond noise? (a paired comparison)

Two classifiers graded on the same N images: an image both get right, or both get wrong, says nothing
about which is better, so the difference in the number right comes only from the m images where they
disagree. If the two were equally good, each of those m images would be +1 or -1 with probability 1/2,
so the difference has mean 0 and variance m: its standard error is sqrt(m) images (the idea of
McNemar's test). This is smaller than the unpaired standard error of two separate accuracies, because
what makes an image easy or hard for both cancels.

A difference beyond two standard errors happens by chance about 5 times in 100 (normal approximation),
so the course reads only those as "one is better"; with fewer than SMALL_M disagreeing images that
approximation is too rough and the exact sign test decides (`beyond_noise`).
"""
from __future__ import annotations

import math

import numpy as np


def paired_gap(ok_base, ok_other) -> tuple[int, float, bool]:
    """ok_base, ok_other: (N,) booleans, image n right under each classifier (same images, same order).

    -> (how many more images `other` gets right than `base`, its standard error sqrt(m) in images,
    whether the difference is beyond noise by the course's two-part rule `beyond_noise`: |d| > 2 SE for
    m >= SMALL_M, the exact sign test below it). With no disagreeing image: (0, 0.0, False).
    """
    ok_base, ok_other = np.asarray(ok_base, dtype=bool), np.asarray(ok_other, dtype=bool)   # (N,)
    if ok_base.shape != ok_other.shape:
        raise ValueError(f"the two classifiers must be graded on the same images: {ok_base.shape} vs {ok_other.shape}")
    diff = int(ok_other.sum()) - int(ok_base.sum())
    m = int(np.sum(ok_base != ok_other))                 # the images where exactly one is right
    return diff, float(np.sqrt(m)), beyond_noise(diff, m)


SMALL_M = 10   # below this many disagreeing images the normal approximation is too rough: use the exact test


def sign_test_p(d: int, m: int) -> float:
    """Two-sided exact sign (McNemar) test: d = (#right only under other) - (#right only under base), m = both counts.

    Under "equally good" each of the m images goes either way with probability 1/2, so the number going
    other's way is X ~ Binomial(m, 1/2) and d = 2X - m. p = P(|2X - m| >= |d|). With m = 0: 1.0.
    Why: sqrt(m) is a normal approximation; with 5 flips all one way it says "beyond 2 SE" while the exact
    p is 2/2**5 = 0.0625.
    """
    if m < 0 or abs(d) > m or (m - d) % 2:
        raise ValueError(f"need |d| <= m and d, m of the same parity: d={d}, m={m}")
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, x) for x in range(m + 1) if abs(2 * x - m) >= abs(d))
    return tail / 2 ** m


def beyond_noise(d: int, m: int, alpha: float = 0.05) -> bool:
    """Is a paired difference of d images (m disagreeing images) beyond noise?

    m < SMALL_M: exact sign test, p < alpha. Otherwise the course's rule |d| > 2 sqrt(m).
    """
    if m < SMALL_M:
        return sign_test_p(d, m) < alpha
    return abs(d) > 2 * math.sqrt(m)


def step_gaps(ok, gap=None) -> list[tuple[int, int, bool]]:
    """ok: (T, N) booleans, row t = which images are right with the first t+1 templates (`correct_vs_templates`).

    -> one (d, m, beyond_noise) per step t -> t+1 (T - 1 of them): how many more images the larger ensemble
    gets right, how many images flip between the two, and whether that step is beyond noise. Why a helper:
    the notebook's figure and its printed step list must apply the same rule to the same numbers.
    `gap(ok_before, ok_after) -> (d, se, beyond)`: the paired comparison to use (the notebook passes the
    student's own `paired_gap`); None: `paired_gap` here. m is recovered as round(se**2).
    """
    ok = np.asarray(ok, dtype=bool)
    gap = paired_gap if gap is None else gap
    out = []
    for before, after in zip(ok[:-1], ok[1:]):
        d, se, beyond = gap(before, after)
        out.append((int(d), round(float(se) ** 2), bool(beyond)))
    return out


def verdict(d: int, se: float, beyond: bool | None = None) -> str:
    """One Chinese phrase for a paired difference of d images with standard error se = sqrt(m).

    m < SMALL_M: names the exact sign test and its p; otherwise the standard error and the 2-SE rule.
    `beyond`: the decision to word (the notebook passes the student's own); None: `beyond_noise` decides.
    """
    m = round(se * se)
    beyond = beyond_noise(d, m) if beyond is None else bool(beyond)
    if m < SMALL_M:
        return f"{d:+d} 张（m = {m} 张 < {SMALL_M}，精确符号检验 p = {sign_test_p(d, m):.3f}，{'超出噪声' if beyond else '在噪声以内'}）"
    return f"{d:+d} 张（标准误 {se:.1f} 张，{'超出两个标准误' if beyond else '在两个标准误以内'}）"
