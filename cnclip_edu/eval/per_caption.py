"""One caption at a time, on a small evaluation (notebook 10): where its gold photo lands, which characters
it shares with that photo's training captions, and how many hits each group of captions has.

Why a module: with 17 held-out captions the notebook reads the table line by line and then counts hits by
group (colour / black-and-white photo, many / few shared characters). The counting is bookkeeping a
reader should not have to re-derive, and it is where a wrong lesson slips in: a cutoff that almost every
caption passes ("shares >= 2 characters": 16 of 17) cannot tell hits from misses, and two groupings that
go together (colour captions also share more characters) cannot be told apart by either count alone.
`hit_counts` therefore takes several groupings at once, so their cross table is one call.

    hits = {t: gold_rank(result, t) == 1 for t in result["ranked"]}
    hit_counts(hits, kind)                  # {"彩色": (5, 8), "黑白": (2, 9)}: (hits, captions)
    hit_counts(hits, kind, overlap)         # {("彩色", "多"): (4, 5), ...}: the cross table
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np


def gold_rank(result: Mapping, text_id: int) -> int | None:
    """1-based rank of the first gold photo in `result["ranked"][text_id]` (the top-k), or None if none is there."""
    gold = set(result["gold"][text_id])
    return next((r for r, i in enumerate(result["ranked"][text_id], 1) if i in gold), None)


def shared_characters(caption: str, photo_files: Iterable[str], train_rows: Iterable[tuple[str, str]],
                      skip: str = "的") -> str:
    """The characters of `caption` (each once, in order; those in `skip` left out) that also occur in a
    training caption of one of `photo_files`; `train_rows`: (image file, caption) pairs."""
    photo_files = set(photo_files)
    seen = set("".join(c for image, c in train_rows if image in photo_files))
    return "".join(ch for ch in dict.fromkeys(caption) if ch in seen and ch not in skip)


def hit_counts(hits: Mapping[Hashable, bool], *groupings: Mapping[Hashable, Hashable]) -> dict:
    """Per group: (hits, captions). `hits[key]` says whether a caption is a hit; each grouping maps the same
    keys to a label. One grouping: keyed by its label; several: by the tuple of labels (a cross table).
    Groups appear in the order of their first caption in `hits`."""
    if not groupings:
        raise ValueError("give at least one grouping")
    for g in groupings:
        missing = set(hits) - set(g)
        if missing:
            raise KeyError(f"a grouping has no label for {sorted(missing, key=str)[:3]}")
    counts: dict = {}
    for key, hit in hits.items():
        label = groupings[0][key] if len(groupings) == 1 else tuple(g[key] for g in groupings)
        h, n = counts.get(label, (0, 0))
        counts[label] = (h + bool(hit), n + 1)
    return counts


def character_photos(characters: Iterable[str], train_rows: Iterable[tuple[str, str]]) -> dict[str, Counter]:
    """For each character (once, in order): Counter(image file -> how many of its training captions contain it)."""
    train_rows = list(train_rows)
    return {ch: Counter(image for image, caption in train_rows if ch in caption) for ch in dict.fromkeys(characters)}


def share_nothing(a: str, b: str, skip: str = "的") -> bool:
    """True when the two texts have no character in common (those in `skip` aside)."""
    return not (set(a) & set(b)) - set(skip)


def pairwise_cosines(features, texts: Sequence[str],
                     keep: Callable[[str, str], bool] | None = None) -> list[float]:
    """Cosines of every pair i < j of the rows of `features` (L2-normalized, one row per text), keeping
    only the pairs for which keep(texts[i], texts[j]) holds (all when keep is None)."""
    f = np.asarray(features, dtype=np.float64)
    if len(f) != len(texts):
        raise ValueError(f"{len(f)} feature rows for {len(texts)} texts")
    c = f @ f.T
    return [float(c[i, j]) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if keep is None or keep(texts[i], texts[j])]


def is_grey(img, tolerance: int = 16) -> bool:
    """True when no pixel has colour: R = G = B up to `tolerance` (JPEG noise)."""
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    return int((rgb.max(-1) - rgb.min(-1)).max()) < tolerance
