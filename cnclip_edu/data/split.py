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
A file name is all `split_by_photo` sees: two files of one scene (a stereo pair, burst shots, a crop)
are still two photos, and can land on both sides. `split_by_group` takes the pairs of photos known to
show the same scene (found by hand, by a product id, by a near-duplicate detector) and holds out whole
groups instead: photos joined by a chain of pairs (a~b, b~c) form one group, so a, b and c go together
(also when b has no captions, so is not in `rows`: it still links a and c).
The same rule then applies to groups (first-seen order of their first photo, shuffled, round half up);
`split_by_photo` is the case with no pairs. `split_scenes` lists the pairs a split puts on both sides;
`seeds_splitting_scenes` the seeds for which `split_by_photo` does that.
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


def scene_groups(photos: Sequence[str], same_scene: Iterable[Sequence[str]] = ()) -> list[list[str]]:
    """`photos` (each once, in order) -> groups of photos joined by chains of `same_scene` pairs.

    Groups come in the order of their first photo, photos within a group in `photos` order. A photo
    named in a pair but not in `photos` (the original that two crops come from, with no captions of its
    own) is in no group but still links: a~x, x~b puts a and b together, else they could land on both
    sides. Union-find over every photo named: each points towards its group's root."""
    same_scene = [tuple(pair) for pair in same_scene]   # read twice below: a generator would be empty the 2nd time
    parent = {p: p for pair in same_scene for p in pair}
    parent.update({p: p for p in photos})

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]   # path halving: later look-ups are shorter
            p = parent[p]
        return p

    for pair in same_scene:
        for a, b in zip(pair, pair[1:]):
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[rb] = ra
    groups: dict[str, list[str]] = {}   # insertion order = order of each group's first photo
    for p in photos:
        groups.setdefault(root(p), []).append(p)
    return list(groups.values())


def split_by_group(rows: Sequence[tuple[str, str]], same_scene: Iterable[Sequence[str]], valid_fraction: float,
                   seed: int) -> list[tuple[str, str, str]]:
    """(image, caption) rows -> (image, caption, split) rows; whole groups of same-scene photos go to
    "valid" (see the module doc). With no pairs every photo is its own group: `split_by_photo`."""
    if not 0.0 <= valid_fraction <= 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1], got {valid_fraction}")
    photos = list(dict.fromkeys(image for image, _ in rows))   # each photo once, first-seen order
    groups = scene_groups(photos, same_scene)                   # deterministic order: no set() involved
    random.Random(seed).shuffle(groups)
    n_valid = math.floor(len(groups) * valid_fraction + 0.5)    # round half up
    valid = {p for group in groups[:n_valid] for p in group}
    return [(image, caption, "valid" if image in valid else "train") for image, caption in rows]


def split_by_photo(rows: Sequence[tuple[str, str]], valid_fraction: float, seed: int) -> list[tuple[str, str, str]]:
    """(image, caption) rows -> (image, caption, split) rows; whole photos go to "valid" (see the module doc)."""
    return split_by_group(rows, (), valid_fraction, seed)


def split_scenes(rows: Iterable[Sequence[str]], same_scene: Iterable[Sequence[str]]) -> list[tuple[str, str]]:
    """Photos of one scene (joined as `scene_groups` joins them, chains through photos without captions
    included) that (image, caption, split) rows put in different splits, as pairs (the group's first photo,
    a photo on the other side): the leaks a file-name check (`leaked_photos`) cannot see."""
    side: dict[str, str] = {}
    for image, _, split in rows:
        side.setdefault(image, split)
    out = []
    for group in scene_groups(list(side), same_scene):
        out += [(group[0], p) for p in group[1:] if side[p] != side[group[0]]]
    return out


def seeds_splitting_scenes(rows: Sequence[tuple[str, str]], same_scene: Iterable[Sequence[str]],
                           valid_fraction: float, seeds: Iterable[int]) -> list[int]:
    """The seeds among `seeds` for which `split_by_photo` puts a `same_scene` pair on both sides.
    [] when there are no pairs, or none of their photos are in `rows` (someone else's photo folder)."""
    same_scene = [tuple(pair) for pair in same_scene]
    return [seed for seed in seeds if same_scene and split_scenes(split_by_photo(rows, valid_fraction, seed), same_scene)]


def valid_batch_size(valid_pairs: int, most: int = 64) -> int:
    """A validation batch size <= `most` that splits `valid_pairs` into equal batches, up to the padding
    of the last one (less than one pair per batch): all of valid in one batch when it fits."""
    if valid_pairs < 1:
        raise ValueError(f"valid_pairs must be >= 1, got {valid_pairs}")
    return math.ceil(valid_pairs / math.ceil(valid_pairs / most))


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
