"""cnclip_edu.eval.loss_floor: the floors notebook 05 (part 7, exercise 7) relies on."""
import math

import numpy as np
import pytest

from cnclip_edu.eval.loss_floor import all_gold_equal_loss, caption_only_floor, loss_floors, lowest_possible_loss


def test_distinct_batch_has_no_floor():
    assert lowest_possible_loss([0, 1, 2, 3], ["a", "b", "c", "d"]) < 0.05


@pytest.mark.parametrize("images, texts, expected", [
    ([0, 1, 2, 3], ["甲", "甲", "乙", "乙"], math.log(2)),      # repeated captions
    ([0, 0, 1, 1], ["甲", "乙", "丙", "丁"], math.log(2)),      # repeated images
    ([0, 1, 0, 1], ["甲", "甲", "乙", "乙"], math.log(4)),      # each image with two captions: chance
])
def test_floor_of_repeats(images, texts, expected):
    assert lowest_possible_loss(images, texts) == pytest.approx(expected, abs=2e-3)


def test_distinct_images_floor_is_caption_only():
    texts = ["a"] * 3 + ["b"] * 2 + ["c"]
    assert caption_only_floor(texts) == pytest.approx((3 * math.log(3) + 2 * math.log(2)) / 6)
    assert lowest_possible_loss(list(range(6)), texts) == pytest.approx(caption_only_floor(texts), abs=2e-3)


def test_all_gold_equal_and_bundle():
    gold = np.eye(4, dtype=bool)
    gold[0, 1] = gold[1, 0] = True                               # images 0, 1 both match captions 0, 1
    assert all_gold_equal_loss(gold) == pytest.approx(math.log(2) / 2)
    floors = loss_floors([0, 1, 2, 3], ["a", "b", "c", "d"], gold)
    assert floors.chance == pytest.approx(math.log(4))
    assert floors.caption_only == 0 and floors.all_gold_equal == pytest.approx(math.log(2) / 2)
    assert loss_floors([0, 1], ["a", "b"]).all_gold_equal is None
    with pytest.raises(ValueError):
        all_gold_equal_loss(np.zeros((2, 2), dtype=bool))
