"""Is one classifier better than another on the same images, beyond noise? (a paired comparison)

Two classifiers graded on the same N images: an image both get right, or both get wrong, says nothing
about which is better, so the difference in the number right comes only from the m images where they
disagree. If the two were equally good, each of those m images would be +1 or -1 with probability 1/2,
so the difference has mean 0 and variance m: its standard error is sqrt(m) images (the idea of
McNemar's test). This is smaller than the unpaired standard error of two separate accuracies, because
what makes an image easy or hard for both cancels.

A difference beyond two standard errors happens by chance about 5 times in 100 (normal approximation),
so the course reads only those as "one is better".
"""
from __future__ import annotations

import numpy as np


def paired_gap(ok_base, ok_other) -> tuple[int, float, bool]:
    """ok_base, ok_other: (N,) booleans, image n right under each classifier (same images, same order).

    -> (how many more images `other` gets right than `base`, its standard error sqrt(m) in images,
    whether |difference| > 2 standard errors). With no disagreeing image: (0, 0.0, False).
    """
    ok_base, ok_other = np.asarray(ok_base, dtype=bool), np.asarray(ok_other, dtype=bool)   # (N,)
    if ok_base.shape != ok_other.shape:
        raise ValueError(f"the two classifiers must be graded on the same images: {ok_base.shape} vs {ok_other.shape}")
    diff = int(ok_other.sum()) - int(ok_base.sum())
    se = float(np.sqrt(np.sum(ok_base != ok_other)))     # m = the images where exactly one is right
    return diff, se, abs(diff) > 2 * se
