"""data.split: whole photos held out, deterministic from the seed, the stated rounding, no leak."""
from __future__ import annotations

import pytest

import other_photos
from cnclip_edu.data import convert
from cnclip_edu.data.samples import caption_rows
from cnclip_edu.data.split import leaked_photos, split_by_photo, write_captions_csv


def _rows(n_photos=10, per_photo=3):
    return [(f"p{i}.jpg", f"描述 {i}-{k}") for k in range(per_photo) for i in range(n_photos)]   # interleaved


def test_every_caption_of_a_photo_on_one_side_and_rows_kept():
    rows = [(img, cap) for img, cap, _ in caption_rows()]
    out = split_by_photo(rows, 0.2, seed=0)
    assert [(i, c) for i, c, _ in out] == rows
    assert leaked_photos(out) == []
    assert len({i for i, _, s in out if s == "valid"}) == 4          # 18 * 0.2 = 3.6 -> 4


@pytest.mark.parametrize("n, fraction, expected", [(10, 0.25, 3), (18, 0.25, 5), (18, 0.2, 4), (10, 1 / 3, 3),
                                                   (4, 0.1, 0), (5, 0.1, 1), (7, 0.0, 0), (7, 1.0, 7)])
def test_rounding_is_half_up(n, fraction, expected):
    out = split_by_photo(_rows(n), fraction, seed=1)
    assert len({i for i, _, s in out if s == "valid"}) == expected


def test_deterministic_from_the_seed_and_the_seed_matters():
    rows = _rows(12)
    valid = [frozenset(i for i, _, s in split_by_photo(rows, 0.25, seed) if s == "valid") for seed in range(6)]
    assert valid[0] == frozenset(i for i, _, s in split_by_photo(rows, 0.25, 0) if s == "valid")
    assert len(set(valid)) > 1


def test_leak_check_and_bad_fraction():
    assert leaked_photos([("a", "x", "train"), ("b", "y", "valid"), ("a", "z", "valid")]) == ["a"]
    with pytest.raises(ValueError):
        split_by_photo(_rows(3), 1.5, 0)


def test_written_csv_reads_back(tmp_path):
    out = split_by_photo(_rows(4, 2), 0.5, seed=3)
    path = write_captions_csv(tmp_path / "c.csv", out + [("p0.jpg", "含, 逗号", out[0][2])])
    assert [(r.image, r.caption, r.split) for r in convert.read_captions(path)][-1] == ("p0.jpg", "含, 逗号", out[0][2])


def test_groups_are_chains_of_same_scene_pairs_in_first_seen_order():
    from cnclip_edu.data.split import scene_groups

    photos = ["a", "b", "c", "d", "e", "f"]
    assert scene_groups(photos, [("e", "c"), ("c", "a"), ("b", "zz")]) == [["a", "c", "e"], ["b"], ["d"], ["f"]]
    assert scene_groups(photos, [("f", "d", "b")]) == [["a"], ["b", "d", "f"], ["c"], ["e"]]
    assert scene_groups(photos) == [[p] for p in photos]
    # a photo without captions (not in `photos`) still links: the crops b and d of one original x
    assert scene_groups(photos, iter([("b", "x"), ("x", "d")])) == [["a"], ["b", "d"], ["c"], ["e"], ["f"]]


def test_split_scenes_finds_a_chain_through_a_photo_without_captions():
    from cnclip_edu.data.split import split_scenes

    rows = [("a", "1", "train"), ("b", "2", "valid"), ("c", "3", "train"), ("d", "4", "valid")]
    assert split_scenes(rows, [("a", "x"), ("x", "b"), ("c", "d")]) == [("a", "b"), ("c", "d")]
    assert split_scenes(rows, [("a", "c"), ("b", "zz")]) == []


def test_split_by_group_keeps_groups_whole_and_counts_groups():
    from cnclip_edu.data.split import split_by_group, split_scenes

    rows = _rows(10)
    pairs = [("p0.jpg", "p1.jpg"), ("p1.jpg", "p2.jpg"), ("p5.jpg", "p6.jpg")]   # 7 groups
    for seed in range(20):
        out = split_by_group(rows, pairs, 0.5, seed)
        assert [(i, c) for i, c, _ in out] == rows and leaked_photos(out) == []
        assert split_scenes(out, pairs) == []
        side = {i: s for i, _, s in out}
        assert side["p0.jpg"] == side["p1.jpg"] == side["p2.jpg"] and side["p5.jpg"] == side["p6.jpg"]
        groups_valid = {frozenset(g) for g in ({"p0.jpg", "p1.jpg", "p2.jpg"}, {"p5.jpg", "p6.jpg"},
                                               {"p3.jpg"}, {"p4.jpg"}, {"p7.jpg"}, {"p8.jpg"}, {"p9.jpg"})
                        if side[next(iter(g))] == "valid"}
        assert len(groups_valid) == 4                                   # 7 * 0.5 = 3.5 -> 4 groups


def test_split_by_photo_is_split_by_group_without_pairs_and_split_scenes_finds_the_stereo_pair():
    from cnclip_edu.data.split import split_by_group, split_scenes

    rows = [(img, cap) for img, cap, _ in caption_rows()]
    stereo = [("motorcycle_left.png", "motorcycle_right.png")]
    apart = [k for k in range(20) if split_scenes(split_by_photo(rows, 0.2, k), stereo)]
    assert apart                                                        # some seeds separate the pair
    for k in range(20):
        assert split_by_photo(rows, 0.2, k) == split_by_group(rows, [], 0.2, k)
        assert split_scenes(split_by_group(rows, stereo, 0.2, k), stereo) == []


def test_seeds_splitting_scenes_on_the_sample_and_on_another_folder():
    """Notebook 10 picks its leak demonstration's seed from this list: on someone else's photos (no
    motorcycle pair, or no pairs given) it is empty, and the notebook must skip the demonstration."""
    from cnclip_edu.data.samples import SAMPLE_SAME_SCENE
    from cnclip_edu.data.split import seeds_splitting_scenes, split_scenes

    rows = [(img, cap) for img, cap, _ in caption_rows()]
    apart = seeds_splitting_scenes(rows, SAMPLE_SAME_SCENE, 0.2, range(20))
    assert apart == [k for k in range(20) if split_scenes(split_by_photo(rows, 0.2, k), SAMPLE_SAME_SCENE)]
    assert apart
    other = [(img, cap) for img, cap, _ in other_photos.rows()]
    assert seeds_splitting_scenes(other, SAMPLE_SAME_SCENE, 0.2, range(20)) == []   # pair not in this folder
    assert seeds_splitting_scenes(rows, [], 0.2, range(20)) == []                   # no pairs given
    pair = [["p01_portrait.png", "p03_cat.png"]]                                    # JSON (papermill) gives lists
    assert seeds_splitting_scenes(other, pair, 0.2, range(20)) == [
        k for k in range(20) if split_scenes(split_by_photo(other, 0.2, k), [tuple(pair[0])])]


@pytest.mark.parametrize("n, batch", [(1, 1), (18, 18), (64, 64), (65, 33), (80, 40), (128, 64), (129, 43)])
def test_valid_batch_size_one_batch_when_it_fits_else_equal_batches(n, batch):
    from cnclip_edu.data.split import valid_batch_size

    assert valid_batch_size(n) == batch
    batches = -(-n // batch)
    assert batch <= 64 and batches * batch - n < batches                            # padding: < 1 pair per batch


def test_other_photo_folder_converts(tmp_path):
    """tests/other_photos.py (the second folder notebook 10 is run on): no grey photo, > 64 valid pairs."""
    folder = other_photos.write_other_folder(tmp_path / "other")
    report = convert.convert_captions(folder, folder / "captions.csv", tmp_path / "data", progress=False)
    assert report["valid"]["pairs"] > 64 and report["train"]["pairs"] == 64
    from PIL import Image
    import numpy as np
    for p in folder.glob("*.png"):
        rgb = np.asarray(Image.open(p).convert("RGB"), dtype=np.int16)
        assert (rgb.max(-1) - rgb.min(-1)).max() >= 16, p.name                     # notebook 10's is_grey: False
