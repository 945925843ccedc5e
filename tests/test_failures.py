"""eval.failures: each class of miss on hand-made inputs, order-free and count-aware, and the toy
world's scenes read through `scene_objects` agree with `caption_objects` of their own captions."""
from __future__ import annotations

import pytest

from cnclip_edu.data.toy import split_meanings
from cnclip_edu.data.toy_text import caption_objects
from cnclip_edu.eval.failures import MISS_CLASSES, miss_reason, scene_objects

R, G, B = "红色", "绿色", "蓝色"


@pytest.mark.parametrize("said, got, expected", [
    ([(G, "圆形"), (R, "正方形")], [(R, "正方形"), (G, "圆形")], "A"),            # order does not count
    ([(R, "圆形"), (R, "圆形")], [(R, "圆形"), (R, "圆形")], "A"),                # repeats
    ([(R, "正方形"), (G, "圆形")], [(G, "正方形"), (R, "圆形")], "B1"),           # attribute binding
    ([(R, "圆形")], [(R, "正方形")], "B2"),
    ([(R, "圆形"), (G, "圆形")], [(R, "圆形"), (G, "正方形")], "B2"),            # 圆形 drawn, but once
    ([(R, "圆形"), (G, "圆形"), (B, "正方形")], [(R, "圆形"), (G, "正方形"), (B, "正方形")], "B2"),
    ([(R, "圆形")], [(B, "正方形")], "C"),                                          # colour before shape
    ([(R, "圆形"), (R, "正方形"), (B, "五角星")], [(R, "圆形"), (B, "正方形"), (B, "五角星")], "C"),
    ([(R, "圆形")], [(R, "圆形"), (R, "正方形")], "D"),                            # count before colour
    ([(R, "圆形"), (R, "圆形")], [(R, "圆形")], "D"),
])
def test_each_class(said, got, expected):
    assert miss_reason(said, got) == expected
    assert expected in MISS_CLASSES


def test_scene_objects_match_the_captions_of_single_set_scenes():
    scenes, keys = split_meanings("test")
    assert all(scene_objects(s["shapes"]) == tuple(sorted(scene_objects(s["shapes"]))) for s in scenes.values())
    sets = [k for k in keys.values() if k[0] == "set"]
    held = {scene_objects(s["shapes"]) for s in scenes.values()}
    assert sets and sum(caption_objects(k) in held for k in sets) == len(sets)   # every set caption has its image
