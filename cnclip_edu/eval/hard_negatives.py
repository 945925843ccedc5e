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

`probe_rank` (exercise 00.3) turns one group into the test: one caption in the training phrasing and
one picture per combination, then the target picture's probability over the captions (softmax along
the captions, as in "which caption is this picture") and the rank of its own caption.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

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


def caption_of(color: str, shape: str) -> str:
    """The toy world's training phrasing for one shape: "一个紫色的十字"."""
    return f"一个{color}的{shape}"


def probe_rank(combos: Sequence[Combo], draw_fn: Callable[[str, str], Any],
               logits_fn: Callable[[list[str], list[Any]], Any]) -> tuple[float, int]:
    """-> (the target picture's probability on its own caption, that caption's rank; 1 = highest).

    `combos[0]` is the target (as `hard_negative_groups` returns it); `draw_fn(color, shape)` makes one
    picture; `logits_fn(captions, pictures)` -> logits (pictures, captions). The softmax runs along the
    captions (dim=-1): the question is "which caption is this picture". Ties do not push the rank down:
    only captions with a strictly higher probability count.
    """
    captions = [caption_of(c, s) for c, s in combos]
    pictures = [draw_fn(c, s) for c, s in combos]
    probs = logits_fn(captions, pictures).softmax(dim=-1)   # (pictures, captions)
    target = probs[0]                                        # the target picture over all captions
    return float(target[0]), int((target > target[0]).sum()) + 1
