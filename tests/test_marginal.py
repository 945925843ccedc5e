"""eval.marginal: a shape classifier from a colour+shape classifier, by summing probabilities over colour."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.eval.marginal import marginal_probs, split_combo


def test_split_combo_cuts_at_the_first_de():
    assert split_combo("红色的圆形") == ("红色", "圆形")
    with pytest.raises(ValueError):
        split_combo("圆形")


def test_sums_softmax_probabilities_per_shape_in_the_given_order():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0]])                       # (2, 2)
    clf = torch.tensor([[1.0, 0.0, 0.6], [0.0, 1.0, 0.8]])               # (2, 3): three combinations
    names = ["红色的正方形", "蓝色的方形", "蓝色的正方形"]
    out = marginal_probs(feats, clf, names, ["方形", "正方形"], scale=2.0)
    probs = (2.0 * feats @ clf).softmax(dim=-1)
    expected = torch.stack([probs[:, 1], probs[:, 0] + probs[:, 2]], dim=1)   # exact names, not suffixes
    assert torch.allclose(out, expected)
    assert torch.allclose(out.sum(dim=-1), torch.ones(2))


def test_a_combination_whose_shape_is_missing_is_an_error():
    with pytest.raises(ValueError, match="菱形"):
        marginal_probs(torch.eye(2), torch.eye(2), ["红色的圆形", "红色的菱形"], ["圆形"])
