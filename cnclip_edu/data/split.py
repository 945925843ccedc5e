"""Hold out whole photos: a train / valid split of a captions file in which no photo is on both sides.

    rows = [(r.image, r.caption) for r in convert.read_captions("my_photos/captions.csv")]
    split_rows = split_by_photo(rows, valid_fraction=0.2, seed=0)   # [(image, caption, "train" | "valid")]
    assert leaked_photos(split_rows) == []
    write_captions_csv("my_photos/captions_by_photo.csv", split_rows)   # then `cnclip-edu convert captions`

Why by photo: if one caption of a photo is in train and another in valid, the valid question "find
this photo" has been answered in training already, and valid recall measures memory of that photo,
not recognition of an unseen one. So every caption of a photo goes to the side its photo went to.
(Holding out *captions* of training photos is a different, legitimate question - "does a new phrasing
find a photo I know?" - and notebook 10's sample data asks that one; the two must not be confused.)

The rule, deterministic from `seed` with the rounding stated:
  1. the photos, each once, in the order they first appear in `rows`;
  2. shuffled with `random.Random(seed).shuffle`;
  3. `n_valid = floor(n_photos * valid_fraction + 0.5)` - round half up (Python's `round` rounds a
     half to the even neighbour: round(2.5) == 2, so it is not used); the first `n_valid` shuffled
     photos go to valid, the others to train;
  4. the rows keep their order; each gets the split of its photo.
A file name is all this sees: two files of one scene (a stereo pair, burst shots, a crop) are still
two photos, and can land on both sides - group them by hand if that matters.
"""
from __future__ import annotations

import csv
import io
import math
import os
import random
from pathlib import Path
from typing import Iterable, Sequence

from cnclip_edu import fileio


def split_by_photo(rows: Sequence[tuple[str, str]], valid_fraction: float, seed: int) -> list[tuple[str, str, str]]:
    """(image, caption) rows -> (image, caption, split) rows; whole photos go to "valid" (see the module doc)."""
    if not 0.0 <= valid_fraction <= 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1], got {valid_fraction}")
    photos = list(dict.fromkeys(image for image, _ in rows))   # each photo once, first-seen order
    random.Random(seed).shuffle(photos)
    n_valid = math.floor(len(photos) * valid_fraction + 0.5)   # round half up
    valid = set(photos[:n_valid])
    return [(image, caption, "valid" if image in valid else "train") for image, caption in rows]


def leaked_photos(rows: Iterable[Sequence[str]]) -> list[str]:
    """Photos of (image, caption, split) rows that sit in more than one split, in first-seen order."""
    sides: dict[str, set[str]] = {}
    for image, _, split in rows:
        sides.setdefault(image, set()).add(split)
    return [image for image, s in sides.items() if len(s) > 1]


def write_captions_csv(path: str | os.PathLike, rows: Iterable[Sequence[str]]) -> Path:
    """(image, caption, split) rows -> a UTF-8 `image,caption,split` CSV that `convert captions` reads."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "caption", "split"])
    writer.writerows(rows)
    return fileio.atomic_write(path, buf.getvalue())
