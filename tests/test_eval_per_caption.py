"""eval/per_caption.py: the per-caption bookkeeping of notebook 10 (gold rank, shared characters, hit counts)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnclip_edu.eval import per_caption as pc


def test_gold_rank_is_the_first_gold_photo_or_none():
    result = {"ranked": {1: [5, 7, 9], 2: [5, 7, 9]}, "gold": {1: [9, 7], 2: [4]}}
    assert pc.gold_rank(result, 1) == 2
    assert pc.gold_rank(result, 2) is None


def test_shared_characters_of_the_gold_photos_training_captions_only():
    train = [("cat.png", "一只猫的特写"), ("dog.png", "草地上的狗"), ("cat2.png", "猫咪")]
    assert pc.shared_characters("一只猫在草地上", {"cat.png"}, train) == "一只猫"   # not 草地上 (the dog's)
    assert pc.shared_characters("猫的猫", ["cat.png", "cat2.png"], train) == "猫"     # once each, 的 skipped
    assert pc.shared_characters("狗", {"cat.png"}, train) == ""


def test_hit_counts_one_grouping_and_the_cross_table():
    hits = {1: True, 2: False, 3: True, 4: False, 5: False}
    kind = {1: "彩色", 2: "黑白", 3: "黑白", 4: "彩色", 5: "彩色"}
    many = {1: "多", 2: "多", 3: "少", 4: "少", 5: "多"}
    assert pc.hit_counts(hits, kind) == {"彩色": (1, 3), "黑白": (1, 2)}
    assert list(pc.hit_counts(hits, kind)) == ["彩色", "黑白"]                     # first-seen order
    cross = pc.hit_counts(hits, kind, many)
    assert cross == {("彩色", "多"): (1, 2), ("黑白", "多"): (0, 1), ("黑白", "少"): (1, 1), ("彩色", "少"): (0, 1)}
    assert sum(n for _, n in cross.values()) == len(hits)


def test_hit_counts_bad_input():
    with pytest.raises(ValueError):
        pc.hit_counts({1: True})
    with pytest.raises(KeyError):
        pc.hit_counts({1: True, 2: False}, {1: "a"})


def test_character_photos_counts_captions_per_photo():
    train = [("a.png", "红色的车"), ("a.png", "红车"), ("b.png", "蓝色")]
    got = pc.character_photos("红色狗红", train)
    assert list(got) == ["红", "色", "狗"]
    assert got["红"] == {"a.png": 2} and got["色"] == {"a.png": 1, "b.png": 1} and not got["狗"]


def test_share_nothing_and_pairwise_cosines():
    assert pc.share_nothing("一只猫", "夜晚的火箭") and not pc.share_nothing("猫", "一只猫")
    assert pc.share_nothing("猫的", "狗的")                                           # 的 does not count
    f = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)]])
    texts = ["猫", "狗", "猫狗"]
    assert pc.pairwise_cosines(f, texts) == pytest.approx([0.0, np.sqrt(0.5), np.sqrt(0.5)])
    assert pc.pairwise_cosines(f, texts, pc.share_nothing) == pytest.approx([0.0])
    with pytest.raises(ValueError):
        pc.pairwise_cosines(f[:2], texts)


def test_is_grey():
    assert pc.is_grey(Image.new("L", (4, 4), 128))
    assert pc.is_grey(Image.new("RGB", (4, 4), (120, 125, 130)))                    # JPEG-noise level
    assert not pc.is_grey(Image.new("RGB", (4, 4), (200, 30, 30)))
