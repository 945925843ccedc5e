"""How low can the CLIP loss go on one batch, whatever the model? (notebook 05, part 7)

A batch that repeats an image or a caption has a floor that no model can beat: identical inputs give
identical features, so identical captions are identical columns of the (B, B) logit matrix and
identical images identical rows. Whatever the model, a logit can therefore only depend on *which*
image and *which* caption meet: it is an entry of a small (distinct images x distinct captions) table.
The symmetric InfoNCE is convex in that table, so plain gradient descent on the table finds the
lowest loss any model could reach on this batch.

    floors = loss_floors(image_ids, texts, gold)     # gold[i, j]: image i is a gold match of caption j
    floors.chance, floors.caption_only, floors.lowest, floors.all_gold_equal

- `chance`: ln B, every logit equal (random guessing);
- `caption_only`: sum_k n_k ln n_k / B, counting repeated captions only (n_k copies of caption k);
- `lowest`: the true floor, repeated images included (`lowest_possible_loss`);
- `all_gold_equal`: a model that scores every gold match of the batch equally high and everything
  else infinitely lower, in both directions (a "correct judge" with unbounded logit contrast; a real
  model's finite `logit_scale` keeps it a little above this).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np
import torch


class LossFloors(NamedTuple):
    chance: float
    caption_only: float
    lowest: float
    all_gold_equal: float | None


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def symmetric_infonce(logits: np.ndarray) -> float:
    """(B, B) logits, pair i on the diagonal -> mean of the image->text and text->image cross-entropies."""
    return float(-(np.log(np.diag(_softmax(logits, 1))) + np.log(np.diag(_softmax(logits, 0)))).mean() / 2)


def caption_only_floor(texts: Sequence[Hashable]) -> float:
    """sum_k n_k ln n_k / B: the floor from repeated captions alone (repeated images ignored)."""
    return sum(n * math.log(n) for n in Counter(texts).values()) / len(texts)


def _one_hot_index(items: Sequence[Hashable]) -> np.ndarray:
    # (B, K) one-hot: pair -> its distinct item, numbered by first occurrence ([7, 3, 7] -> columns 0, 1, 0)
    first: dict[Hashable, int] = {}
    index = [first.setdefault(x, len(first)) for x in items]
    return np.eye(len(first))[index]


def lowest_possible_loss(image_ids: Sequence[Hashable], texts: Sequence[Hashable], steps: int = 1000,
                         lr: float = 0.1) -> float:
    """The lowest symmetric InfoNCE any model can reach on this batch (repeated images and captions).

    Optimises one logit per (distinct image, distinct caption) with Adam; the loss is convex in that
    table, so this converges to the floor (from above: with `steps` finite it may sit ~1e-3 over it).
    Plain numpy with the gradient written out: ~50x faster than torch autograd on these tiny tables.
    """
    one_img, one_txt = _one_hot_index(image_ids), _one_hot_index(texts)      # (B, I), (B, T)
    n, eye = len(image_ids), np.eye(len(image_ids))
    table, m, v = np.zeros((one_img.shape[1], one_txt.shape[1])), 0.0, 0.0    # (I, T) logits
    for t in range(1, steps + 1):
        logits = one_img @ table @ one_txt.T                                  # (B, B) read from the table
        grad = (_softmax(logits, 1) - eye + _softmax(logits, 0) - eye) / (2 * n)   # d loss / d logits (notebook 04)
        grad = one_img.T @ grad @ one_txt                                     # summed into the table's cells
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2              # Adam, bias-corrected below
        table -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-12)
    return symmetric_infonce(one_img @ table @ one_txt.T)


def all_gold_equal_loss(gold: np.ndarray | torch.Tensor) -> float:
    """Loss of a model that scores every gold match equally and the rest -inf: (B, B) bool, gold[i, j] =
    image i matches caption j (the diagonal must be True). Each image spreads 1/(its gold count) over
    its gold captions, each caption likewise over its gold images."""
    gold = np.asarray(gold, dtype=bool)
    if not gold.diagonal().all():
        raise ValueError("every pair must be a gold match of itself (the diagonal of `gold` must be True)")
    return float((np.log(gold.sum(1)).mean() + np.log(gold.sum(0)).mean()) / 2)


def loss_floors(image_ids: Sequence[Hashable], texts: Sequence[Hashable],
                gold: np.ndarray | torch.Tensor | None = None) -> LossFloors:
    """ln B, the caption-only floor, the true floor and (given `gold`) the all-gold-equal loss of one batch."""
    if len(image_ids) != len(texts):
        raise ValueError(f"{len(image_ids)} image ids but {len(texts)} texts")
    return LossFloors(chance=math.log(len(texts)), caption_only=caption_only_floor(texts),
                      lowest=lowest_possible_loss(image_ids, texts),
                      all_gold_equal=None if gold is None else all_gold_equal_loss(gold))
