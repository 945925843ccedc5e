"""Hard negatives for one (colour, shape) of the toy world: change one attribute, keep the other.

A test caption set in which every other caption differs from the right one by colour *and* shape
proves little: a model that only reads colour gets it right. To ask "does it see the shape?" the
wrong captions must share the colour; to ask "does it see the colour?" they must share the shape.
Notebook 00 (exercise 00.2) builds these two groups for a held-out combination ("紫色十字"):

    same_color, same_shape = hard_negative_groups("紫色", "十字", COLORS, SHAPES, heldout)
    # same_color = [("紫色", "十字"), ("紫色", "圆形"), ...]; same_shape = [("紫色", "十字"), ("红色", "十字"), ...]

The negatives skip combinations the training split held out: a held-out negative is a combination
the model never saw either, so a miss on it would not say which of the two it failed on. The
target itself stays even when held out, since testing it is the point.
"""
from __future__ import annotations

from typing import Iterable, Sequence

Combo = tuple[str, str]   # (colour, shape), e.g. ("紫色", "十字")


def hard_negative_groups(color: str, shape: str, colors: Sequence[str], shapes: Sequence[str],
                         heldout: Iterable[Combo]) -> tuple[list[Combo], list[Combo]]:
    """-> (same colour / other shapes, same shape / other colours), each with the target first.

    Negatives keep the order of `shapes` / `colors` and leave out the held-out combinations; the
    target is never left out.
    """
    skip = set(map(tuple, heldout))
    same_color = [(color, shape)] + [(color, s) for s in shapes if s != shape and (color, s) not in skip]
    same_shape = [(color, shape)] + [(c, shape) for c in colors if c != color and (c, shape) not in skip]
    return same_color, same_shape
