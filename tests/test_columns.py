import numpy as np

from cnclip_edu.course.columns import left, right, shown_width, yes


def test_shown_width_counts_chinese_twice():
    assert shown_width("abc") == 3
    assert shown_width("召回率") == 6
    assert shown_width("R@1（%）") == 3 + 2 + 1 + 2


def test_padding_by_shown_width():
    assert right("描述数", 8) == "  描述数"
    assert left("说法", 6) == "说法  "
    assert right("太长了的标题", 4) == "太长了的标题"    # never cut, never negative padding
    assert shown_width(right("R@1 基准", 12)) == 12


def test_yes():
    assert yes(True) == "是" and yes(False) == "否"
    assert yes(np.bool_(True)) == "是" and yes((np.array([1, 2]) == 1).all()) == "否"
