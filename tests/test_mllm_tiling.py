"""Dynamic tiling as InternVL-1.5's `dynamic_preprocess`: the grid rule and its tie-break, the tiles'
order and pixels, the thumbnail, and what a grid costs in tokens. transformers' GotOcr2
`get_optimal_tiled_canvas` (the same rule, ported by Hugging Face for InternVL) is the oracle."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from PIL import Image

from cnclip_edu.mllm import dynamic_preprocess, find_closest_aspect_ratio
from cnclip_edu.mllm.tiling import candidate_grids, choose_grid, count_image_tokens


def _img(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_square_image_of_one_tile_stays_one_tile_without_thumbnail():
    tiles = dynamic_preprocess(_img(448, 448), max_num=12, image_size=448, use_thumbnail=True)
    assert len(tiles) == 1 and tiles[0].size == (448, 448)  # 2x2 ties with 1x1 but 448^2 <= 2 * 448^2
    assert np.array_equal(np.asarray(tiles[0]), np.asarray(_img(448, 448)))  # no resize happened


def test_800x600_is_4x3_plus_thumbnail():
    img = _img(800, 600)
    assert choose_grid(800, 600, max_num=12) == (4, 3)
    tiles = dynamic_preprocess(img, max_num=12, image_size=448, use_thumbnail=True)
    assert len(tiles) == 13 and all(t.size == (448, 448) for t in tiles)
    assert count_image_tokens(800, 600, tokens_per_tile=256) == 13 * 256 == 3328
    # tiles are cut row by row from the image resized to 4*448 x 3*448; the thumbnail comes last
    big = np.asarray(img.resize((4 * 448, 3 * 448), Image.Resampling.BICUBIC))
    for k, t in enumerate(tiles[:12]):
        r, c = divmod(k, 4)
        assert np.array_equal(np.asarray(t), big[r * 448:(r + 1) * 448, c * 448:(c + 1) * 448])
    assert np.array_equal(np.asarray(tiles[12]), np.asarray(img.resize((448, 448), Image.Resampling.BICUBIC)))


def test_tie_break_needs_more_than_half_the_grid_area():
    # square images: 1x1, 2x2, 3x3 all have ratio 1; 2x2 wins once the area exceeds half of 4 tiles
    # (2 * 448^2 = 401,408 px, i.e. a side of 633.6 px), 3x3 once it exceeds 4.5 tiles (950.4 px)
    assert choose_grid(633, 633) == (1, 1)
    assert choose_grid(634, 634) == (2, 2)
    assert choose_grid(950, 950) == (2, 2)
    assert choose_grid(951, 951) == (3, 3)


def test_tie_between_different_ratios_follows_the_area_rule():
    # ratio 1.25 is exactly 0.25 from 1x1 and 2x2 (1.0) and from 3x2 (1.5): with max_num=6 all three
    # tie, and each later grid replaces the best only if the area exceeds half of its pixels
    half = {n: 0.5 * n * 448 * 448 for n in (4, 6)}  # 401,408 and 602,112
    for (w, h), grid in [((500, 400), (1, 1)), ((865, 692), (2, 2)), ((875, 700), (3, 2))]:
        assert w / h == 1.25
        assert choose_grid(w, h, max_num=6) == grid, (w, h, w * h, half)
    assert choose_grid(50, 40, max_num=6) == (1, 1)  # a small image is not blown up on a tie


def test_small_elongated_image_is_blown_up_to_many_tiles():
    # the aspect ratio rules: a 10x90 strip (900 px) becomes a 1x9 grid of 448-px tiles
    assert choose_grid(10, 90) == (1, 9)
    tiles = dynamic_preprocess(_img(10, 90), image_size=448, use_thumbnail=True)
    assert len(tiles) == 10
    assert count_image_tokens(10, 90) == 10 * 256  # 2,560 language-model tokens for 900 pixels
    assert count_image_tokens(10, 90, tokens_per_tile=4, image_size=32) == 40  # the course's sizes


def test_thumbnail_only_with_more_than_one_tile_and_only_if_asked():
    assert len(dynamic_preprocess(_img(64, 32), image_size=32, use_thumbnail=False)) == 2
    assert len(dynamic_preprocess(_img(64, 32), image_size=32, use_thumbnail=True)) == 3
    assert len(dynamic_preprocess(_img(32, 32), image_size=32, use_thumbnail=True)) == 1
    one = dynamic_preprocess(_img(96, 32), max_num=1, image_size=32, use_thumbnail=True)  # "thumbnail only"
    assert len(one) == 1 and one[0].size == (32, 32)


def test_course_canvases_give_one_tile_per_cell():
    for cells in (1, 2, 3):
        assert choose_grid(32 * cells, 32, max_num=12, image_size=32) == (cells, 1)


def test_candidates_sorted_by_tile_count_and_bounded():
    grids = candidate_grids(2, 6)
    assert all(2 <= c * r <= 6 for c, r in grids) and len(grids) == len(set(grids))
    assert [c * r for c, r in grids] == sorted(c * r for c, r in grids)
    assert set(grids) == {(c, r) for c in range(1, 7) for r in range(1, 7) if 2 <= c * r <= 6}
    with pytest.raises(ValueError, match="min_num"):
        candidate_grids(0, 4)
    with pytest.raises(ValueError, match="positive"):
        choose_grid(0, 10)


def test_same_grids_as_transformers_internvl_processor():
    """The oracle: transformers' port of InternVL's rule, on random sizes and every tie we can make."""
    got_ocr2 = pytest.importorskip("transformers.models.got_ocr2.image_processing_got_ocr2")
    rng = random.Random(0)
    sizes = [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(1500)]
    sizes += [(w, h) for w, h in itertools.product([1, 16, 32, 64, 96, 100, 448, 633, 634, 896, 1344], repeat=2)]
    for (w, h), (lo, hi, size) in itertools.product(sizes[:400], [(1, 12, 448), (1, 6, 32), (2, 9, 448)]):
        ours = choose_grid(w, h, lo, hi, size)
        theirs = got_ocr2.get_optimal_tiled_canvas((h, w), (size, size), lo, hi)
        assert ours == tuple(theirs), (w, h, lo, hi, size)
    for w, h in sizes[400:]:
        assert choose_grid(w, h) == tuple(got_ocr2.get_optimal_tiled_canvas((h, w), (448, 448), 1, 12)), (w, h)


def test_find_closest_aspect_ratio_has_internvl_signature():
    grids = candidate_grids(1, 12)
    assert find_closest_aspect_ratio(800 / 600, grids, 800, 600, 448) == (4, 3)
    assert find_closest_aspect_ratio(1.0, grids, 448, 448, 448) == (1, 1)
