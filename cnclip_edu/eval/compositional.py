"""The strict compositional test of notebook 08: do never-seen colour+shape combinations get recognised?

The eight held-out combinations of the toy world all have different colours, so an 8-way test among
them needs only the colour. The strict test scores each held-out image against all K colour+shape
combinations (seen and held-out): colour and shape must both be right. Each prediction is split into its
colour and its shape, and the shape accuracy of a held-out combination is set beside two controls scored
by the same K-way classifier on *seen* images:

- same shape, other colours ("is this shape hard to read anyway?");
- same colour, other shapes ("are shapes hard to read in this colour's pixels?").

A held-out combination below both controls is not explained by its shape alone nor by its colour alone;
what remains is the combination (and whatever else differs: the images' colour-shape pairing, the text
prototype that was never trained). Predictions are argmaxes of the cosines; ties go to the lower index,
as `argmax` does (any positive logit scale or a softmax gives the same argmax).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .marginal import split_combo


def _argmax(feats, classifier) -> np.ndarray:
    import torch

    x = torch.as_tensor(feats).float()                                    # (N, D)
    w = torch.as_tensor(classifier).float().to(x.device)                  # (D, K)
    return (x @ w).argmax(dim=-1).cpu().numpy()                           # (N,) first maximum on ties


def compositional_test(held_feats, held_targets, seen_feats, seen_targets, classifier,
                       names: Sequence[str], sep: str = "的") -> dict:
    """The strict K-way test of held-out colour+shape combinations, with its per-part accuracy and controls.

    held_feats (N_h, D), seen_feats (N_s, D): image features; classifier (D, K): one column per name in
    `names` ("红色的圆形": colour before the first `sep`, shape after it); held_targets (N_h,),
    seen_targets (N_s,): each image's true index into `names`.

    -> plain data: "top1", "color_acc", "shape_acc" of the held-out images (fractions); "combos": the
    held-out names in index order; per combination [right, total] pairs of *shape* right: "held" (its own
    images), "same_shape" (seen images of its shape in other colours), "same_color" (seen images of its
    colour with other shapes, each scored against its own shape); "held_preds", "seen_preds": the argmax
    over all K columns of every image.
    """
    parts = [split_combo(n, sep) for n in names]
    color = np.array([c for c, _ in parts])
    shape = np.array([s for _, s in parts])
    t_h, t_s = np.asarray(held_targets, dtype=np.int64), np.asarray(seen_targets, dtype=np.int64)
    p_h, p_s = _argmax(held_feats, classifier), _argmax(seen_feats, classifier)
    shape_ok_h = shape[p_h] == shape[t_h]                                 # (N_h,)
    shape_ok_s = shape[p_s] == shape[t_s]                                 # (N_s,)
    combos = sorted(set(t_h.tolist()))
    held, same_shape, same_color = [], [], []
    for c in combos:
        mine = t_h == c
        ss = (shape[t_s] == shape[c]) & (color[t_s] != color[c])        # seen images: this shape, other colours
        sc = (color[t_s] == color[c]) & (shape[t_s] != shape[c])        # seen images: this colour, other shapes
        held.append([int(shape_ok_h[mine].sum()), int(mine.sum())])
        same_shape.append([int(shape_ok_s[ss].sum()), int(ss.sum())])
        same_color.append([int(shape_ok_s[sc].sum()), int(sc.sum())])
    return {
        "top1": float(np.mean(p_h == t_h)),
        "color_acc": float(np.mean(color[p_h] == color[t_h])),
        "shape_acc": float(np.mean(shape_ok_h)),
        "combos": [names[c] for c in combos],
        "held": held, "same_shape": same_shape, "same_color": same_color,
        "held_preds": p_h.tolist(), "seen_preds": p_s.tolist(),
    }


def gap_vs_control(held: Sequence[int], control: Sequence[int]) -> tuple[float, float]:
    """[right, total] of a held-out combination and of a control -> (difference of the two accuracies in
    percentage points, its standard error): two independent binomial proportions, variances added."""
    (a, n), (b, m) = held, control
    p, q = a / n, b / m
    return 100 * (p - q), 100 * float(np.sqrt(p * (1 - p) / n + q * (1 - q) / m))


def gap_table(result: dict) -> str:
    """The part-4 table of `compositional_test`'s result, one row per held-out combination:
    shape right k/n (%) for the combination, its same-shape control and its same-colour control, and each
    gap to a control in percentage points +- its standard error (`gap_vs_control`).

    Why here: the notebook keeps only the analysis (which rows are below / above two standard errors);
    the column arithmetic of a Chinese table is plumbing.
    """
    from ..course.columns import left, right

    frac = lambda k: f"{k[0]}/{k[1]} {100 * k[0] / k[1]:5.1f}%"             # 5.1f: " 87.5%" as wide as "100.0%"
    widths = (14, 14, 18, 14, 18, 14)
    head = ("没见过的组合", "形状认对", "同形状·别的颜色", "差", "同颜色·别的形状", "差")
    lines = [left(head[0], widths[0]) + "".join(right(h, w) for h, w in zip(head[1:], widths[1:]))]
    for name, h, s, c in zip(result["combos"], result["held"], result["same_shape"], result["same_color"]):
        (d1, e1), (d2, e2) = gap_vs_control(h, s), gap_vs_control(h, c)
        cells = (frac(h), frac(s), f"{d1:+.1f} ± {e1:.1f}", frac(c), f"{d2:+.1f} ± {e2:.1f}")
        lines.append(left(name, widths[0]) + "".join(right(x, w) for x, w in zip(cells, widths[1:])))
    return "\n".join(lines)


def own_color_confusion(preds, targets, names: Sequence[str], shapes: Sequence[str],
                         sep: str = "的") -> tuple[list[str], np.ndarray]:
    """The K-way confusion of held-out images, folded to what can be read: one row per true combination
    (index order), one column per shape predicted *in the image's own colour*, and a last column for any
    prediction of another colour. -> (row names, (R, S + 1) int counts)."""
    parts = [split_combo(n, sep) for n in names]
    targets, preds = np.asarray(targets, dtype=np.int64), np.asarray(preds, dtype=np.int64)
    rows = sorted(set(targets.tolist()))
    out = np.zeros((len(rows), len(shapes) + 1), dtype=np.int64)
    for t, p in zip(targets, preds):
        r = rows.index(int(t))
        same = parts[p][0] == parts[t][0]
        out[r, list(shapes).index(parts[p][1]) if same else len(shapes)] += 1
    return [names[t] for t in rows], out
