"""Which tower lost the information: how far one tower lets two inputs apart (notebook 03, exercise 03.5).

A CLIP logit is s * <v, t> with unit vectors v (image) and t (text) and s = exp(logit_scale). Two texts
t_i, t_j get, from any unit image vector v, logits that differ by s * <v, t_i - t_j>, and by
Cauchy-Schwarz that is at most s * ||t_i - t_j|| = s * sqrt(2 - 2 cos(t_i, t_j)), reached when v points
along t_i - t_j. So a tower that maps two inputs to nearly the same direction caps the logit gap, and
the probability ratio e^gap, however good the other tower is. The same holds with the towers swapped.

    gap = max_logit_gap(text_features, 0, 1, model.logit_scale.exp().item())
    kept_apart = math.exp(gap) >= 2      # notebook 03's line: below 2x, the tower "did not tell them apart"
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

KEPT_APART_RATIO = 2.0   # notebook 03's convention: a probability ratio below this = "not told apart"


def max_logit_gap(features: torch.Tensor, i: int, j: int, scale: float) -> float:
    """features (N, E) of one tower (any length), rows i and j, scale = exp(logit_scale) ->
    the largest logit gap any unit vector of the other tower can give the two inputs.

    Written as a norm of the difference rather than sqrt(2 - 2 cos): the same number, without the NaN
    that a cosine rounded to just above 1 gives for two parallel rows."""
    f = F.normalize(features.float(), dim=-1)      # (N, E) unit rows
    return float(scale * (f[i] - f[j]).norm())


def tower_verdict(features: torch.Tensor, i: int, j: int, scale: float) -> tuple[float, bool]:
    """-> (the largest logit gap, whether the tower keeps the two inputs apart: e^gap >= 2)."""
    gap = max_logit_gap(features, i, j, scale)
    return gap, math.exp(gap) >= KEPT_APART_RATIO
