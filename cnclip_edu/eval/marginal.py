"""A shape classifier built from a colour+shape classifier: sum the combination probabilities over colour.

Notebook 08 asks "is the shape task weak because of the images or because of the classifier?". The
shape task's usual classifier averages eight colour sentences into one "圆形" prototype, a direction that
need not sit close to any one colour's circles. Keeping one prototype per colour+shape combination
("红色的圆形", ...) and then adding up, for each shape, the softmax probabilities of its combinations
(marginalising the colour out) answers the same 6-way question from the same image features; only the
classifier differs, so the change in accuracy is the classifier's share of the gap.

The probabilities are summed after the softmax, so unlike an argmax of cosines the answer depends on the
logit scale: at 100 the softmax is nearly one-hot and the sum is close to "the shape of the best
combination"; at a small scale it spreads out and the sum leans towards an average of the scores.
"""
from __future__ import annotations

from typing import Sequence


def split_combo(name: str, sep: str = "的") -> tuple[str, str]:
    """"红色的圆形" -> ("红色", "圆形"): colour before the first `sep`, shape after it."""
    colour, found, shape = name.partition(sep)
    if not found:
        raise ValueError(f"{name!r} is not a colour{sep}shape name")
    return colour, shape


def marginal_probs(image_feats, classifier, combo_names: Sequence[str], shapes: Sequence[str],
                   scale: float = 100.0, sep: str = "的"):
    """image_feats (N, D) unit rows, classifier (D, K) one column per combination in `combo_names`
    -> (N, S) float tensor: column s is the summed softmax(scale * cosine) of the combinations whose shape
    is `shapes[s]` (exact name, not a suffix: "正方形" is not "方形"). Rows sum to 1 when every
    combination's shape is in `shapes`."""
    import torch

    x = torch.as_tensor(image_feats).float()
    probs = (scale * x @ classifier.float().to(x.device)).softmax(dim=-1)                              # (N, K)
    index = {s: i for i, s in enumerate(shapes)}
    to_shape = torch.zeros(len(combo_names), len(shapes))                                             # (K, S)
    for k, name in enumerate(combo_names):
        shape = split_combo(name, sep)[1]
        if shape not in index:
            raise ValueError(f"combination {name!r}: its shape {shape!r} is not among {list(shapes)}")
        to_shape[k, index[shape]] = 1.0
    return probs @ to_shape.to(probs.device)                                                         # (N, S)
