"""The exact sign test used for paired comparisons with few disagreeing images (notebook 08)."""
import math

import pytest

from cnclip_edu.eval.paired import beyond_noise, sign_test_p


def test_all_one_way():
    assert sign_test_p(5, 5) == pytest.approx(2 / 32)      # 0.0625: not significant
    assert sign_test_p(-5, 5) == pytest.approx(2 / 32)
    assert sign_test_p(6, 6) == pytest.approx(2 / 64)      # 0.031: the smallest all-one-way count that is
    assert sign_test_p(7, 7) == pytest.approx(2 / 128)


def test_matches_binomial_sum():
    m, d = 15, 3                                              # 9 up, 6 down
    p = sum(math.comb(m, x) for x in range(m + 1) if abs(2 * x - m) >= 3) / 2 ** m
    assert sign_test_p(d, m) == pytest.approx(p)
    assert sign_test_p(1, 1) == 1.0 and sign_test_p(0, 4) == 1.0 and sign_test_p(0, 0) == 1.0


def test_bad_inputs():
    for d, m in ((3, 2), (1, 2), (-1, 0)):
        with pytest.raises(ValueError):
            sign_test_p(d, m)


def test_beyond_noise_small_and_large():
    assert not beyond_noise(5, 5) and not beyond_noise(-5, 5)   # 2 SE rule would say yes (5 > 2*sqrt 5)
    assert beyond_noise(6, 6) and beyond_noise(-7, 7)
    assert not beyond_noise(5, 7)
    # m >= 10: the 2 sqrt(m) rule, strict
    assert beyond_noise(7, 11) and not beyond_noise(6, 10) and beyond_noise(-9, 15)
    # no |d| <= 5 is ever beyond noise, whatever m
    assert not any(beyond_noise(d, m) for m in range(0, 60) for d in range(-min(5, m), min(5, m) + 1) if (m - d) % 2 == 0)


def test_step_gaps_and_verdict():
    import numpy as np

    from cnclip_edu.eval.paired import step_gaps, verdict

    ok = np.array([[1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],     # 5 flips, all down: -5, not beyond (p = 0.0625)
                   [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0],     # 7 flips, all up: +7, beyond
                   [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]], dtype=bool)   # no flip
    assert step_gaps(ok) == [(-5, 5, False), (7, 7, True), (0, 0, False)]
    normal_only = lambda a, b: (int(b.sum()) - int(a.sum()), float(np.sqrt(np.sum(a != b))),
                                abs(int(b.sum()) - int(a.sum())) > 2 * np.sqrt(np.sum(a != b)))
    assert step_gaps(ok, gap=normal_only) == [(-5, 5, True), (7, 7, True), (0, 0, False)]   # the passed rule decides
    assert "精确符号检验 p = 0.062" in verdict(-5, 5 ** 0.5) and "在噪声以内" in verdict(-5, 5 ** 0.5)
    assert verdict(7, 7 ** 0.5).endswith("超出噪声）")
    assert verdict(-9, 15 ** 0.5) == "-9 张（标准误 3.9 张，超出两个标准误）"
    assert verdict(6, 10 ** 0.5).endswith("在两个标准误以内）")
