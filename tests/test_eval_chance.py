"""The exact chance probabilities notebook 10 prints before it explains a small count."""
from __future__ import annotations

import itertools
from math import comb

import pytest

from cnclip_edu.eval.chance import more_hits_p, random_ranking_p


def _brute_force(hits_a, n_a, hits_b, n_b):
    """Every way to place the hits on the items, counted."""
    n, hits = n_a + n_b, hits_a + hits_b
    placements = list(itertools.combinations(range(n), hits))
    return sum(sum(i < n_a for i in p) >= hits_a for p in placements) / len(placements)


@pytest.mark.parametrize("counts", [(5, 8, 2, 9), (0, 3, 3, 4), (4, 4, 0, 4), (2, 5, 2, 5), (1, 1, 0, 6)])
def test_more_hits_p_is_the_permutation_tail(counts):
    assert more_hits_p(*counts) == pytest.approx(_brute_force(*counts))


def test_notebook_10_numbers():
    assert more_hits_p(5, 8, 2, 9) == pytest.approx(2845 / 24310)      # ~0.117: the colour vs grey count
    assert more_hits_p(0, 8, 0, 9) == 1.0                              # no hits: nothing to explain
    assert random_ranking_p(2, 4) == 0.5                              # "一张黑白照片": 2 gold of 4
    assert random_ranking_p(2, 4, top="all") == pytest.approx(1 / 6)
    assert random_ranking_p(1, 17, top="all") == pytest.approx(1 / 17)
    assert random_ranking_p(3, 10, top="all") == pytest.approx(1 / comb(10, 3))


def test_bad_input():
    with pytest.raises(ValueError):
        more_hits_p(3, 2, 0, 1)
    with pytest.raises(ValueError):
        random_ranking_p(0, 4)
    with pytest.raises(ValueError):
        random_ranking_p(1, 4, top="first")
