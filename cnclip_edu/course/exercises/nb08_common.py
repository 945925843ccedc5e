"""What the exercises of notebook 08 (zero-shot classification) share: the course model shipped with the
package (loaded once per process: 08.1 and 08.3 run the real text tower) and seeded unit-length rows
(08.2's features, 08.6's colour and shape directions).
"""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _course_model():
    import cnclip_edu as cc

    model, _ = cc.load("course", device="cpu")
    return model.eval()


def _unit(n: int, d: int, g):
    import torch

    x = torch.randn(n, d, generator=g)
    return x / x.norm(dim=-1, keepdim=True)
