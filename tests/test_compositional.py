"""eval.compositional: the strict K-way test of held-out colour+shape combinations (notebook 08, part 4),
its per-part accuracy, its two controls, ties, and the folded confusion drawn in the notebook."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnclip_edu.eval.compositional import compositional_test, gap_table, gap_vs_control, own_color_confusion

NAMES = ["红色的圆形", "红色的方形", "蓝色的方形", "蓝色的圆形"]    # 0-2 seen, 3 held out


def _onehot(idx, k=4):
    return torch.eye(k)[list(idx)]


def test_parts_controls_and_ties():
    w = torch.eye(4)
    w[:, 3] = w[:, 2]                               # held-out column ties with 蓝色的方形 (lower index wins)
    held_x = _onehot([2, 2, 0, 1])                  # tie -> 2 (shape wrong), tie -> 2, 红色的圆形 (colour wrong), 红色的方形
    seen_x = _onehot([0, 1, 2, 0])
    r = compositional_test(held_x, [3, 3, 3, 3], seen_x, [0, 1, 2, 1], w, NAMES)
    assert r["held_preds"] == [2, 2, 0, 1] and r["seen_preds"] == [0, 1, 2, 0]
    assert r["top1"] == 0.0
    assert r["color_acc"] == 0.5                  # 2 of 4 predicted blue
    assert r["shape_acc"] == 0.25                  # only 红色的圆形 has the right shape
    assert r["combos"] == ["蓝色的圆形"] and r["held"] == [[1, 4]]
    assert r["same_shape"] == [[1, 1]]             # seen circles: 红色的圆形, right
    assert r["same_color"] == [[1, 1]]            # seen blue, other shapes: 蓝色的方形, right
    # the last seen image (红色的方形 -> 红色的圆形) is red and square: in neither control


def test_control_never_uses_held_out_images_nor_the_wrong_split():
    names = ["红色的圆形", "绿色的圆形", "蓝色的圆形"]
    w = torch.eye(3)
    r = compositional_test(_onehot([1], 3), [1], _onehot([0], 3), [0], w, names)
    assert r["same_shape"] == [[1, 1]] and r["same_color"] == [[0, 0]]


def test_gap_and_folded_confusion():
    d, se = gap_vs_control([5, 40], [6, 240])
    assert d == pytest.approx(10.0) and se == pytest.approx(100 * np.sqrt(.125 * .875 / 40 + .025 * .975 / 240))
    rows, m = own_color_confusion([2, 0, 3], [3, 3, 3], NAMES, ["圆形", "方形"])
    assert rows == ["蓝色的圆形"] and m.tolist() == [[1, 1, 1]]      # 圆形, 方形 in blue; other colour


def test_gap_table_rows_line_up():
    from cnclip_edu.course.columns import shown_width

    result = {"combos": ["红色的五角星", "橙色的三角形"], "held": [[34, 40], [40, 40]],
              "same_shape": [[220, 240], [280, 280]], "same_color": [[200, 200], [192, 200]]}
    lines = gap_table(result).splitlines()
    assert len(lines) == 3 and len({shown_width(line) for line in lines}) == 1      # header + 2 rows, same width
    assert "34/40  85.0%" in lines[1] and "40/40 100.0%" in lines[2] and "-6.7 ± 5.9" in lines[1] and "-15.0 ± 5.6" in lines[1]
    assert "+0.0 ± 0.0" in lines[2] and "+4.0 ± 1.4" in lines[2]
