"""How much the toy world's training pairs ask a model to see *where* a shape is.

Notebook 00 finds that the course model cannot tell four corners apart. Two facts about the
training split bear on why, and both come from the generator's bookkeeping (no drawing):

* how many training captions name a grid cell at all (kinds "pos" and "full"), and whether the
  "pos" phrasing (place without size) was paired with big and small shapes alike;
* how often a contrastive batch holds a negative that differs from a pair *only* in position.
  The loss only learns what separates a pair from the other pairs in its batch: if a picture's
  wrong captions almost never share its colour and shape, seeing colour and shape is enough to
  lower the loss, and position is never needed.

The second number is exact, not sampled: batches are uniform draws of training pairs, so the
expected share of a pair's in-batch negatives of some kind is that kind's count among all the
other pairs of the split.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .toy import ToyConfig, _make_split, _split_combos

POSITION_KINDS = ("pos", "full")   # caption kinds that name a grid cell


def _place(key: tuple) -> tuple[str, str, tuple[int, int]] | None:
    """(colour, shape, cell) a position caption asserts; None for a caption that names no cell."""
    if key[0] == "pos":         # ("pos", colour, shape, cell)
        return key[1], key[2], key[3]
    if key[0] == "full":        # ("full", (size, colour, shape), cell)
        return key[1][1], key[1][2], key[2]
    return None


@dataclass(frozen=True)
class PositionEvidence:
    captions: int             # distinct training captions
    cell_captions: int        # ... that name a grid cell ("pos" + "full")
    full_captions: int        # ... that name a cell and the size ("full")
    pos_captions: int         # ... that name a cell without the size ("pos")
    pos_both_sizes: int       # "pos" captions whose (colour, shape, cell) was drawn both big and small
    pairs: int                # (image, caption) training pairs: what a batch samples
    position_pairs: int       # ... whose caption names a cell
    position_only_share: float   # of a position pair's negative captions: share that differ from it only in position
    image_side_share: float      # of its negative pictures: share showing its colour and shape alone, in another cell

    def per_batch(self, batch_size: int) -> float:
        """Expected in-batch negative captions of one position pair that differ from it only in position."""
        return (batch_size - 1) * self.position_only_share

    def per_batch_images(self, batch_size: int) -> float:
        """Expected in-batch negative pictures of one position pair that differ from it only in position."""
        return (batch_size - 1) * self.image_side_share


def position_evidence(split: str = "train", cfg: ToyConfig = ToyConfig()) -> PositionEvidence:
    """Count the captions that name a place, and the position-only negatives a batch would hold.

    A negative "differs only in position" from a position pair when its caption also names a cell
    and the same colour and shape, in another cell: the one kind of wrong caption that a model
    blind to position could not rank below the right one.
    """
    _, scenes, text_items, keys = _make_split(cfg, split, _split_combos(cfg, split),
                                              seed=f"{cfg.seed}-{split}", with_keys=True)
    kinds = Counter(key[0] for key in keys)
    sizes: dict[tuple, set[str]] = {}   # (colour, shape, cell) -> sizes drawn alone in that cell
    for sc in scenes:
        if sc["layout"] == "one":
            p = sc["shapes"][0]
            sizes.setdefault((p.color, p.shape, p.cell), set()).add(p.size)
    pos_both = sum(sizes.get(_place(k), set()) == {"大", "小"} for k in keys if k[0] == "pos")

    base = cfg.id_offsets[split]   # image id of scenes[0]
    placed: Counter = Counter()   # (colour, shape, cell) -> pairs whose caption names it
    shown: Counter = Counter()    # (colour, shape, cell) -> pairs whose picture is that one shape alone
    pairs = 0
    for (_, _, image_ids), key in zip(text_items, keys):
        pairs += len(image_ids)
        if (place := _place(key)) is not None:
            placed[place] += len(image_ids)
        for iid in image_ids:
            sc = scenes[iid - base]
            if sc["layout"] == "one":
                p = sc["shapes"][0]
                shown[p.color, p.shape, p.cell] += 1
    per_object: Counter = Counter()   # (colour, shape) -> position pairs over all cells
    for (colour, shape, _), n in placed.items():
        per_object[colour, shape] += n
    # for each position pair: the other pairs naming the same colour and shape in a different cell
    position_only = sum(n * (per_object[c, s] - n) for (c, s, _), n in placed.items())
    # the other direction (the caption picks among the batch's pictures): pictures of its colour and
    # shape alone in another cell (its own picture sits in its own cell, so it is never counted)
    shown_per_object: Counter = Counter()
    for (c, s, _), n in shown.items():
        shown_per_object[c, s] += n
    image_side = sum(n * (shown_per_object[c, s] - shown[c, s, cell]) for (c, s, cell), n in placed.items())
    n_position = sum(placed.values())
    denom = n_position * (pairs - 1)
    share = position_only / denom if n_position and pairs > 1 else 0.0
    return PositionEvidence(
        captions=len(keys), cell_captions=kinds["pos"] + kinds["full"], full_captions=kinds["full"],
        pos_captions=kinds["pos"], pos_both_sizes=pos_both, pairs=pairs, position_pairs=n_position,
        position_only_share=share, image_side_share=image_side / denom if denom else 0.0)
