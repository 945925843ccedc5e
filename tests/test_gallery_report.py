"""eval.gallery: notebook 10's in-memory evaluation and the official-model report cell, run on the sample
photos with a local stand-in for `clip_cn_vit-b-16.pt` (the course model saved in cn_clip's .pt layout:
this machine has no copy of the official weights, and the cell must work on whatever file it is given)."""
from __future__ import annotations

import pytest

from cnclip_edu.data import convert
from cnclip_edu.data.lmdb_build import build_lmdb
from cnclip_edu.data.samples import write_sample_folder
from cnclip_edu.eval import gallery
from cnclip_edu.eval.chance import at_least_hits_p, more_hits_p
from cnclip_edu.model.checkpoint import load, save_pt


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    photos = write_sample_folder(root / "photos")
    data = root / "data"
    convert.convert_captions(photos, photos / "captions.csv", data, max_side=64, progress=False)
    build_lmdb(data, "train,valid", overwrite=True, progress=False, verbose=False)
    return root, data


def test_missing_weights_give_none(sample_data):
    root, data = sample_data
    assert gallery.official_report(root / "clip_cn_vit-b-16.pt", data, ["一只猫"]) is None


def test_report_of_a_stand_in_official_file(sample_data):
    root, data = sample_data
    model, _ = load("course")
    weights = save_pt(model, root / "clip_cn_vit-b-16.pt")
    queries = ["一只猫", "夜晚的火箭"]
    rep = gallery.official_report(weights, data, queries)
    direct = gallery.evaluate_split(model, data, "valid")
    assert rep["recall"] == pytest.approx({m: float(v) for m, v in direct["recall"].items()})
    assert rep["n_texts"] == len(direct["gold"]) == 17
    assert rep["right"] + rep["wrong"] == 17
    assert 0 <= rep["right_kept"] <= rep["right"] and 0 <= rep["wrong_blocked"] <= rep["wrong"]
    assert list(rep["queries"]) == queries and all(len(h) == 3 for h in rep["queries"].values())
    id_to_file = dict(line.split("\t") for line in (data / "valid_id_map.tsv").read_text(encoding="utf-8").splitlines())
    lines = gallery.report_lines(rep, id_to_file)
    assert lines[0].startswith("valid（17 条留出描述）：R@1")
    assert len(lines) == 2 + len(queries) and all(line.endswith(("给出", "没有找到")) for line in lines[2:])
    assert any(name in lines[2] for name in id_to_file.values())


def test_at_least_hits_p():
    assert at_least_hits_p([0.25] * 16 + [0.5], 6) == pytest.approx(0.2797, abs=1e-4)
    assert at_least_hits_p([0.5, 0.5], 1) == pytest.approx(0.75)
    assert at_least_hits_p([0.3] * 5, 0) == pytest.approx(1.0)
    assert at_least_hits_p([0.3] * 5, 6) == 0.0
    # equal probabilities: the binomial tail
    from math import comb
    assert at_least_hits_p([0.2] * 7, 3) == pytest.approx(sum(comb(7, k) * 0.2 ** k * 0.8 ** (7 - k) for k in range(3, 8)))
    with pytest.raises(ValueError):
        at_least_hits_p([1.5], 1)


def test_more_hits_p_matches_enumeration():
    from itertools import combinations

    for a in [(5, 8, 2, 9), (0, 3, 2, 4), (3, 3, 1, 5)]:
        n, hits = a[1] + a[3], a[0] + a[2]
        cs = list(combinations(range(n), hits))
        assert more_hits_p(*a) == pytest.approx(sum(sum(i < a[1] for i in c) >= a[0] for c in cs) / len(cs))
