"""A "nothing found" threshold for a search box, chosen on validation captions.

    t = threshold_from_valid(scores, ranked, gold)     # dicts keyed by text_id (see below)
    hits = search.search("一只狗")
    answer = hits if hits[0][1] > t else []             # [] = "没有找到"

Why it is needed: top-k retrieval always returns k items, and a cosine similarity has no universal
"below this means absent" scale: it depends on the model (and the temperature it was trained at). So
the cut is chosen for *this* model on data where the right answer is known: for each validation
caption, is its top-1 photo a gold photo, and what was that top-1 score? A good threshold keeps the
right top-1s (score above it) and turns the wrong ones into "nothing found" (score at or below it).

The rule, stated so that it is reproducible:
  1. per caption: s = the top-1 score, ok = the top-1 photo is one of the caption's gold photos (a query
     whose answer is not in the gallery has gold = [], so ok is False: it should be rejected);
  2. candidates: -1.0 (cosines are >= -1: accept everything), the midpoint between each pair of
     neighbouring distinct values of s (sorted), and 1.0 (reject everything);
  3. a candidate t accepts a caption when s > t; it is right on a caption when it accepts an ok one
     or rejects a wrong one; the candidate right on the most captions wins, and among equals the
     largest (when in doubt, answer "nothing found" rather than show a wrong photo).
Midpoints rather than the scores themselves: a threshold equal to an observed score sits on a
validation example, while the midpoint leaves the same margin to both neighbours.
"""
from __future__ import annotations

from typing import Mapping, Sequence


def threshold_from_valid(scores: Mapping[int, Sequence[float]], ranked: Mapping[int, Sequence[int]],
                         gold: Mapping[int, Sequence[int]]) -> float:
    """The cosine threshold (accept when score > t) that is right on the most validation captions."""
    if not ranked:
        raise ValueError("threshold_from_valid: no validation captions")
    top = [(float(scores[t][0]), ranked[t][0] in set(gold[t])) for t in ranked]   # (top-1 score, is it gold)
    values = sorted({s for s, _ in top})
    candidates = [-1.0] + [(a + b) / 2 for a, b in zip(values, values[1:])] + [1.0]
    best, best_right = -1.0, -1
    for t in candidates:                       # ascending, so ">=" keeps the largest among equals
        right = sum((s > t) == ok for s, ok in top)
        if right >= best_right:
            best, best_right = t, right
    return best
