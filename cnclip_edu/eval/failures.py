"""Why a text -> image top-1 missed, from what the caption asserts and what the image holds.

Notebook 07 reads the toy world's failures: for a caption whose first-ranked image is not gold, it
compares the coloured shapes the caption asserts (`toy_text.caption_objects`) with the ones the image
holds (`scene_objects`). Both are multisets of (colour, shape) pairs; the tests go from the coarsest
difference to the finest, so each miss gets exactly one class:

- "D" 个数错: a different number of shapes (then "is the colour right?" has no pairing to compare);
- "C" 颜色错: same number, the colours differ (as a multiset: two reds and a blue is not one red and two blues);
- "B1" 配对错: same colours and same shapes, paired differently (red square + green circle drawn as
  red circle + green square: CLIP's attribute-binding failure);
- "B2" 形状错: same colours, the shapes differ (as a multiset: two circles is not a circle and a square);
- "A" 位置/大小错: exactly the coloured shapes asserted, so only place, size or order can be wrong.

The order matters: a colour test before the count test would call "one red circle vs a red circle and a
red square" a colour error, and a shape test before the colour test would call a wrong colour a shape error.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

# class -> its one Chinese name, used in every table, legend and sentence of notebook 07
MISS_CLASSES: dict[str, str] = {"A": "位置/大小错", "B1": "配对错", "B2": "形状错", "C": "颜色错", "D": "个数错"}

Pairs = Sequence[tuple[str, str]]


def scene_objects(shapes: Iterable) -> tuple[tuple[str, str], ...]:
    """The (colour, shape) pairs an image holds (its `Shape`s), sorted: sizes and places dropped,
    so it equals `caption_objects` of a caption that names exactly these shapes."""
    return tuple(sorted((p.color, p.shape) for p in shapes))


def miss_reason(said: Pairs, got: Pairs) -> str:
    """The class ("A", "B1", "B2", "C" or "D") of a miss: `said` the (colour, shape) pairs the caption
    asserts, `got` the pairs the first-ranked image holds, each in any order (compared as multisets)."""
    said, got = Counter(map(tuple, said)), Counter(map(tuple, got))
    if sum(said.values()) != sum(got.values()):
        return "D"
    if _colours(said) != _colours(got):
        return "C"
    if said == got:
        return "A"
    return "B1" if _shapes(said) == _shapes(got) else "B2"


def _colours(pairs: Counter) -> Counter:
    return Counter(c for c, _ in pairs.elements())


def _shapes(pairs: Counter) -> Counter:
    return Counter(s for _, s in pairs.elements())
