"""Notebook 10: 10.6 and 10.5 accept designs other than the library's (a threshold elsewhere in the gap;
groups found by relabelling); 10.2 accepts correct image preparations that differ from the library byte for byte (filter,
quality, rounding); 10.4 accepts correct splits that shuffle differently from the library (it grades
properties, not our RNG call); 10.6's library threshold follows its stated rule. Every exercise's
grading cases: test_exercises_hidden.py. 10.7 accepts an enumeration of the choices and the count by group a."""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import nb10_chance, nb10_group, nb10_prepare, nb10_split, nb10_threshold
from hidden_cases import first_difference as _run


def _accepted_everywhere(exercise_id: str, answer) -> None:
    """Another correct answer passes the public cases, the hidden draws of seeds 0-2 and `check` itself."""
    ex = X.get(exercise_id)
    assert _run(ex, answer, ex.cases()) is None
    for seed in (0, 1, 2):
        assert _run(ex, answer, ex.hidden(seed)) is None
    X.check(exercise_id, answer)


@pytest.mark.parametrize("name", list(nb10_prepare._prepare_alternatives()))
def test_10_2_accepts_another_correct_preparation(name):
    _accepted_everywhere("10.2", nb10_prepare._prepare_alternatives()[name])


def test_10_2_catches_a_sideways_photo_and_a_black_background():
    ex = X.get("10.2")
    assert "转正" in ex.hint and "白" in ex.hint
    assert "尺寸" in _run(ex, nb10_prepare._prepare_mistake("no_exif"), ex.cases())
    assert "像素" in _run(ex, nb10_prepare._prepare_mistake("black_alpha"), ex.cases())


@pytest.mark.parametrize("name", list(nb10_split._split_alternatives()))
def test_10_4_accepts_a_different_correct_shuffle(name):
    answer = nb10_split._split_alternatives()[name]
    ex = X.get("10.4")
    assert _run(ex, answer, ex.cases()) is None
    assert _run(ex, answer, ex.hidden(0)) is None
    X.check("10.4", answer)


def test_10_4_rejects_a_split_that_changes_with_the_process_hash():
    ex = X.get("10.4")
    for kind in ("hash", "set"):
        diff = _run(ex, nb10_split._split_mistake(kind), ex.cases())
        assert diff and "另一个 Python 进程" in diff, diff


def test_threshold_rule():
    from cnclip_edu.eval.threshold import threshold_from_valid

    scores = {1: [0.6], 2: [0.5], 3: [0.4], 4: [0.3]}
    ranked = {1: [1], 2: [9], 3: [3], 4: [9]}
    gold = {1: [1], 2: [2], 3: [3], 4: [4]}
    # candidates -1, .35, .45, .55, 1 are right on 2, 3, 2, 3, 2 captions: .35 and .55 tie, the larger wins
    assert threshold_from_valid(scores, ranked, gold) == pytest.approx(0.55)
    assert threshold_from_valid({1: [0.2]}, {1: [5]}, {1: [4, 5]}) == -1.0
    assert threshold_from_valid({1: [0.2]}, {1: [5]}, {1: [4]}) == 1.0
    with pytest.raises(ValueError):
        threshold_from_valid({}, {}, {})


def _threshold_in_the_gap(scores, ranked, gold):
    """A correct 10.6 that is not the library's: 60 % into each gap between scores, the two ends -1 / 1."""
    top = [(float(scores[t][0]), ranked[t][0] in gold[t]) for t in ranked]
    edges = [-1.0] + sorted({s for s, _ in top}) + [1.0]
    best = None
    for lo, hi in zip(edges, edges[1:]):
        t = -1.0 if lo == -1.0 else (1.0 if hi == 1.0 else lo + 0.6 * (hi - lo))
        right = sum((s > t) == ok for s, ok in top)
        if best is None or right >= best[0]:
            best = (right, t)
    return best[1]


def test_10_6_grades_the_decisions_not_the_midpoint():
    ex = X.get("10.6")
    assert _run(ex, _threshold_in_the_gap, ex.cases()) is None
    for seed in (0, 1, 2):
        assert _run(ex, _threshold_in_the_gap, ex.hidden(seed)) is None
    X.check("10.6", _threshold_in_the_gap)
    assert "1/4" in _run(ex, nb10_threshold._threshold_mistake("scores"), ex.cases())   # a threshold on a score


@pytest.mark.parametrize("name", list(nb10_group._group_alternatives()))
def test_10_5_accepts_another_correct_grouping(name):
    _accepted_everywhere("10.5", nb10_group._group_alternatives()[name])


def test_10_5_rejects_groups_that_do_not_follow_chains():
    ex = X.get("10.5")
    assert _run(ex, nb10_group._group_mistake("pairs_only"), ex.cases())
    assert "同一场景" in _run(ex, nb10_group._group_mistake("by_photo"), ex.cases())


@pytest.mark.parametrize("name", list(nb10_chance._chance_alternatives()))
def test_10_7_accepts_another_exact_count(name):
    _accepted_everywhere("10.7", nb10_chance._chance_alternatives()[name])


def test_10_7_rejects_an_estimate_from_shuffles():
    ex = X.get("10.7")
    assert _run(ex, nb10_chance._chance_mistake("simulated"), ex.cases()) is not None


def _write_splits_by_hand(out_dir, rows, image_ids, encode, start_text_id=1):
    """10.3 written without the formats helpers: plain files, json.dumps, the id advanced by the records."""
    import json
    from pathlib import Path

    from cnclip_edu.data.convert import caption_records

    next_id = start_text_id
    for name in dict.fromkeys(s for _, _, s in rows):
        kept = [(img, cap) for img, cap, s in rows if s == name]
        images = list(dict.fromkeys(img for img, _ in kept))
        records = caption_records(kept, image_ids, next_id)
        next_id += len(records)
        files = {"imgs.tsv": [f"{image_ids[i]}\t{encode(i)}" for i in images],
                 "texts.jsonl": [json.dumps(r, ensure_ascii=False) for r in records],
                 "id_map.tsv": [f"{image_ids[i]}\t{i}" for i in images]}
        for suffix, lines in files.items():
            Path(out_dir, f"{name}_{suffix}").write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_10_3_accepts_plain_file_writes_and_hidden_draws_reject_every_mutant():
    _accepted_everywhere("10.3", _write_splits_by_hand)
    ex = X.get("10.3")
    for name, wrong in ex.mutants().items():
        assert any(_run(ex, wrong, ex.hidden(s)) for s in (0, 1, 2)), name
