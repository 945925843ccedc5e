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

`probe_rank` (exercise 00.3) turns one group into the test: one caption in the training phrasing per
combination, several renders of the target picture only (the negatives are the captions, so only the
target's row is read), the target's probability over the captions in each render (softmax along the
captions, as in "which caption is this picture"), the rank of its own caption, and whether it ranks
first in a majority of the renders.
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


def probe_rank(combos: Sequence[Combo], draw_fn: Callable[[str, str, int], Any],
               logits_fn: Callable[[list[str], list[Any]], Any], rounds: int) -> tuple[list[float], list[int], bool]:
    """-> (per round: the target picture's probability on its own caption, per round: that caption's rank
    (1 = highest), whether it ranks first in more than half of the rounds).

    `combos[0]` is the target (as `hard_negative_groups` returns it), the rest are its hard negatives;
    `draw_fn(color, shape, k)` draws render k of a combination (k = 0 .. rounds - 1; one render may be
    lucky, so the test is repeated on several); `logits_fn(captions, pictures)` -> logits (pictures, captions).
    The negatives are the captions: only the target picture's row is read, so only the target is drawn,
    once per round, and all rounds go through the model in one call. The softmax runs along the captions
    (dim=-1): the question is "which caption is this picture". Ties do not push a rank down: only captions
    with a strictly higher probability count. "More than half" makes an even split (2 of 4) no majority.
    """
    captions = [caption_of(c, s) for c, s in combos]
    color, shape = combos[0]
    pictures = [draw_fn(color, shape, k) for k in range(rounds)]   # round k's render of the target
    probs = logits_fn(captions, pictures).softmax(dim=-1)           # (rounds, captions)
    right = probs[:, 0]                                             # (rounds,): probability on the right caption
    ranks = [int(r) for r in (probs > right[:, None]).sum(dim=1) + 1]
    return [float(p) for p in right], ranks, 2 * ranks.count(1) > rounds


def verdict(probs) -> str:
    """A rule-of-thumb reading of one group's (n pictures, n captions) probabilities, in Chinese.

    Picture i's right caption is caption i. The rules (tried in order; the thresholds are the
    course's, not a statistical test): all right; "probabilities nearly even" when the top probabilities
    average under 1.5/n (spread flat; this reads flatness only, not whether the picture changed the answer); otherwise, over the missed pictures only, the average probability
    they gave their chosen wrong caption: >= 0.8 "confidently wrong", >= 2/n "leaning to a wrong
    caption", below that "wrong but unsure".
    """
    import torch

    n = probs.shape[0]
    top, picked = probs.max(dim=-1)
    wrong = picked != torch.arange(n)
    if not wrong.any():
        return "全对"
    if top.mean() < 1.5 / n:   # top probabilities under 1.5 x uniform on average: spread flat
        return f"概率几乎平均（每张图的最高概率平均 {top.mean():.2f}，均匀分布是 {1 / n:.2f}）"
    wrong_top = top[wrong].mean()   # what the missed pictures gave their chosen wrong caption, on average
    if wrong_top >= 0.8:
        return f"很有把握地认错（认错的图把平均 {wrong_top:.2f} 的概率给了错误描述）"
    if wrong_top >= 2 / n:   # at least 2 x uniform: the probability leans on one wrong caption
        return f"认错，而且偏向错误描述（认错的图把平均 {wrong_top:.2f} 的概率给了错误描述，均匀分布是 {1 / n:.2f}）"
    return f"认错了几张，但认错时没把握（认错的图最高概率平均 {wrong_top:.2f}）"
