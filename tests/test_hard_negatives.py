"""eval/hard_negatives.py: the two hard-negative groups for one toy combination (notebook 00, exercise 00.2)."""
from __future__ import annotations

from cnclip_edu.data.toy import SHAPES, ToyConfig, heldout_combos
from cnclip_edu.data.toy_draw import COLORS
from cnclip_edu.eval.hard_negatives import hard_negative_groups


def test_held_out_target_is_kept_first_and_held_out_negatives_are_skipped():
    heldout = heldout_combos(ToyConfig())
    assert ("紫色", "十字") in heldout and ("黄色", "十字") in heldout
    same_colour, same_shape = hard_negative_groups("紫色", "十字", list(COLORS), SHAPES, heldout)
    assert same_colour == [("紫色", "十字")] + [("紫色", s) for s in SHAPES if s != "十字"]
    assert same_shape[0] == ("紫色", "十字") and ("黄色", "十字") not in same_shape
    assert [c for c, _ in same_shape[1:]] == [c for c in COLORS if c not in ("紫色", "黄色")]


def test_every_negative_differs_from_the_target_in_exactly_one_attribute():
    heldout = heldout_combos(ToyConfig())
    for color in COLORS:
        for shape in SHAPES:
            same_colour, same_shape = hard_negative_groups(color, shape, list(COLORS), SHAPES, heldout)
            for group in (same_colour, same_shape):
                assert group.count((color, shape)) == 1 and group[0] == (color, shape)
                assert not set(group[1:]) & set(heldout)
            assert all(c == color and s != shape for c, s in same_colour[1:])
            assert all(c != color and s == shape for c, s in same_shape[1:])


def test_probe_rank_reads_each_render_of_the_target_along_the_captions():
    import torch

    from cnclip_edu.eval.hard_negatives import probe_rank

    combos = [("紫色", "十字"), ("紫色", "圆形"), ("紫色", "菱形")]
    seen = {}
    rows = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 5.0, 1.0]])   # render k -> row k

    def logits_of(captions, pictures):
        seen["captions"], seen["pictures"] = captions, pictures
        return rows[[int(p[-1]) for p in pictures]]

    probs, ranks, majority = probe_rank(combos, lambda c, s, k: f"{c}{s}#{k}", logits_of, 4)
    assert seen == {"captions": ["一个紫色的十字", "一个紫色的圆形", "一个紫色的菱形"],
                    "pictures": ["紫色十字#0", "紫色十字#1", "紫色十字#2", "紫色十字#3"]}   # only the target, once a round
    assert ranks == [2, 1, 1, 3] and majority is False                     # 2 of 4 first (a tie in round 2): no majority
    assert all(isinstance(p, float) for p in probs) and abs(probs[1] - rows[1].softmax(0)[0].item()) < 1e-6
    assert probe_rank(combos, lambda c, s, k: f"{c}{s}#{k + 1}", logits_of, 3)[2] is True   # renders 1, 2, 3: 2 of 3


def test_verdict_reads_each_rule_in_order():
    import torch

    from cnclip_edu.eval.hard_negatives import verdict

    assert verdict(torch.eye(3) * 0.8 + 0.1) == "全对"
    flat = torch.tensor([[0.24, 0.26, 0.25, 0.25]] * 4)                    # top 0.26 < 1.5/4
    assert verdict(flat).startswith("概率几乎平均")
    sure = torch.tensor([[0.05, 0.9, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    assert verdict(sure).startswith("很有把握地认错")                       # the miss gives 0.9 to a wrong caption
    def five(first_row):   # pictures 1-4 right with 0.9; picture 0 gives first_row
        rows = torch.eye(5) * 0.875 + 0.025
        rows[0] = torch.tensor(first_row)
        return rows
    assert verdict(five([0.1, 0.5, 0.2, 0.1, 0.1])).startswith("认错，而且偏向错误描述")   # 0.5 >= 2/5
    assert verdict(five([0.2, 0.3, 0.2, 0.2, 0.1])).startswith("认错了几张，但认错时没把握")   # 0.3 < 2/5
