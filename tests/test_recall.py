"""Recall@K: our numbers and output files equal cn_clip's `evaluation.py` / `evaluation_tr.py`
(run as the oracle on the same files), the t2i -> i2t annotation transform equals cn_clip's
`transform_ir_annotation_to_tr.py`, and malformed predictions fail with file:line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cn_clip.eval as cn_eval
from cnclip_edu.eval import recall

CN_EVAL = Path(cn_eval.__file__).parent


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _gold_and_preds(tmp_path: Path, seed: int = 0, n_texts: int = 60, n_images: int = 40):
    """A t2i gold file (1-3 images per text), t2i predictions (10 each) with a mix of ranks of the
    first hit, and i2t predictions for every image that some text mentions."""
    rng = np.random.default_rng(seed)
    text_ids = (rng.permutation(10_000)[:n_texts] + 100).tolist()
    image_ids = (rng.permutation(10_000)[:n_images] + 50_000).tolist()
    gold = [{"text_id": t, "text": f"第{t}句", "image_ids": rng.choice(image_ids, rng.integers(1, 4), replace=False).tolist()}
            for t in text_ids]
    preds = [{"text_id": g["text_id"], "image_ids": rng.permutation(image_ids)[:10].tolist()} for g in gold]
    inv = recall.t2i_to_i2t({g["text_id"]: g["image_ids"] for g in gold})
    preds_tr = [{"image_id": i, "text_ids": rng.permutation(text_ids)[:10].tolist()} for i in inv]
    # make some hits at rank 1 and 5 so every recall level is exercised
    for p, g in zip(preds[::3], gold[::3]):
        p["image_ids"] = [g["image_ids"][0]] + [i for i in p["image_ids"] if i != g["image_ids"][0]][:9]
    return (_write_jsonl(tmp_path / "test_texts.jsonl", gold), _write_jsonl(tmp_path / "pred.jsonl", preds),
            _write_jsonl(tmp_path / "pred_tr.jsonl", preds_tr))


def _oracle(script: str, *args) -> dict:
    subprocess.run([sys.executable, str(CN_EVAL / script), *map(str, args)], check=True, capture_output=True)
    return json.loads(Path(args[-1]).read_text())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_t2i_equals_cn_clip_evaluation(tmp_path, seed):
    gold, pred, _ = _gold_and_preds(tmp_path, seed)
    theirs = _oracle("evaluation.py", gold, pred, tmp_path / "theirs.json")
    assert recall.main([str(gold), str(pred), str(tmp_path / "ours.json")]) == 0
    assert (tmp_path / "ours.json").read_text() == (tmp_path / "theirs.json").read_text()  # byte for byte
    assert theirs["success"] and 0 < theirs["scoreJson"]["r1"] < theirs["scoreJson"]["r10"] < 100


def test_i2t_equals_cn_clip_evaluation_tr_with_their_transform(tmp_path):
    gold, _, pred_tr = _gold_and_preds(tmp_path, 3)
    subprocess.run([sys.executable, str(CN_EVAL / "transform_ir_annotation_to_tr.py"), "--input", str(gold)],
                   check=True, capture_output=True)
    theirs_tr = tmp_path / "test_texts.tr.jsonl"
    ours_tr = recall.write_tr_annotation(gold, tmp_path / "ours.tr.jsonl")
    assert ours_tr.read_text() == theirs_tr.read_text()
    theirs = _oracle("evaluation_tr.py", theirs_tr, pred_tr, tmp_path / "theirs.json")
    # our CLI takes the t2i annotation directly and inverts it on the fly; the .tr.jsonl works too
    for g in (gold, theirs_tr):
        assert recall.main([str(g), str(pred_tr), str(tmp_path / "ours.json"), "--direction", "i2t"]) == 0
        assert json.loads((tmp_path / "ours.json").read_text()) == theirs


def test_evaluate_counts_any_gold_item_and_mean_recall():
    gold = {1: [10, 11], 2: [20], 3: [30]}
    pred = {1: [11] + list(range(100, 109)),            # second gold image at rank 1 -> hit@1
            2: list(range(200, 204)) + [20] + list(range(204, 209)),  # rank 5
            3: list(range(300, 310))}                   # miss
    r = recall.evaluate(gold, pred)
    assert r == {"r1": 1 / 3, "r5": 2 / 3, "r10": 2 / 3, "mean_recall": (1 / 3 + 2 / 3 + 2 / 3) / 3}
    out = recall.score_json(r)
    assert list(out) == ["success", "score", "scoreJson"]
    assert list(out["scoreJson"]) == ["score", "mean_recall", "r1", "r5", "r10"]
    assert out["score"] == pytest.approx(500 / 9)


def test_longer_prediction_lists_are_cut_to_10(tmp_path):
    gold = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": 1, "image_ids": [11]}])
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"text_id": 1, "image_ids": list(range(100, 110)) + [11]}])
    assert recall.evaluate_files(gold, pred)["scoreJson"]["r10"] == 0.0


def test_top5_predictions_give_r1_and_r5_and_say_what_they_cannot(tmp_path, capsys):
    gold = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": 1, "image_ids": [11]}, {"text_id": 2, "image_ids": [5]}])
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"text_id": 1, "image_ids": [3, 11, 4, 6, 7]},
                                               {"text_id": 2, "image_ids": [1, 2, 3, 4, 8, 5]}])  # 5 is 6th
    out = tmp_path / "out.json"
    assert recall.main([str(gold), str(pred), str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scoreJson"] == {"score": None, "mean_recall": None, "r1": 0.0, "r5": 50.0, "r10": None}
    assert "R@10 and MR need more predictions" in result["note"]
    printed = capsys.readouterr().out
    assert "R@1 0.00  R@5 50.00 ->" in printed and "R@10 and MR need" in printed
    three = _write_jsonl(tmp_path / "p3.jsonl", [{"text_id": 1, "image_ids": [11, 2, 3]},
                                                 {"text_id": 2, "image_ids": [5, 1, 2]}])
    assert recall.evaluate_files(gold, three)["scoreJson"]["r1"] == 100.0  # R@1 from top-3; R@5 not claimed
    assert recall.evaluate_files(gold, three)["scoreJson"]["r5"] is None


BAD_LINES = {
    "string query id": ({"text_id": "1", "image_ids": list(range(10))}, "text_id must be an integer"),
    "bool query id": ({"text_id": True, "image_ids": list(range(10))}, "text_id must be an integer"),
    "string image id": ({"text_id": 2, "image_ids": ["3"] + list(range(9))}, "non-integer id '3' at rank 1"),
    "float image id": ({"text_id": 2, "image_ids": list(range(9)) + [1.5]}, "non-integer id 1.5 at rank 10"),
    "empty list": ({"text_id": 2, "image_ids": []}, "has 0 image_ids, need at least 1"),
    "duplicates": ({"text_id": 2, "image_ids": [0] + list(range(9))}, "lists the same id twice"),
    "unknown query": ({"text_id": 99, "image_ids": list(range(10))}, "text_id 99 is not in the gold"),
    "not a list": ({"text_id": 2, "image_ids": 5}, "must be a list"),
    "no query key": ({"image_id": 2, "text_ids": list(range(10))}, "wrong --direction?"),
    "predicted twice": ({"text_id": 1, "image_ids": list(range(10))}, "text_id 1 is predicted twice"),
    "query id past int64": ({"text_id": 2**63, "image_ids": list(range(10))}, "text_id 9223372036854775808 does not fit"),
    "image id past int64": ({"text_id": 2, "image_ids": list(range(9)) + [2**64]},
                            "an id that does not fit in 64 bits, 18446744073709551616 at rank 10"),
}


@pytest.mark.parametrize("case", BAD_LINES, ids=list(BAD_LINES))
def test_malformed_prediction_names_file_and_line(tmp_path, case):
    gold = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": 1, "image_ids": [1]}, {"text_id": 2, "image_ids": [2]}])
    bad, message = BAD_LINES[case]
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"text_id": 1, "image_ids": list(range(10))}, bad])
    with pytest.raises(recall.PredictionError, match=rf"p\.jsonl:2: .*{message}"):
        recall.evaluate_files(gold, pred)


def test_missing_query_and_bad_json(tmp_path, capsys):
    gold = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": i, "image_ids": [i]} for i in range(1, 4)])
    pred = _write_jsonl(tmp_path / "p.jsonl", [{"text_id": 1, "image_ids": list(range(10))}])
    with pytest.raises(recall.PredictionError, match=r"p\.jsonl: no prediction for 2 text_id\(s\): 2, 3"):
        recall.evaluate_files(gold, pred)
    (tmp_path / "p.jsonl").write_text('{"text_id": 1, "image_ids": [1,2,3,4,5,6,7,8,9,10]}\n{oops\n')
    out = tmp_path / "out.json"
    assert recall.main([str(gold), str(pred), str(out)]) == 1
    assert "p.jsonl:2: not valid JSON" in capsys.readouterr().err
    written = json.loads(out.read_text())  # like cn_clip: a result file that says what failed
    assert written["success"] is False and "p.jsonl:2" in written["errorMsg"]


def test_bad_gold_and_direction_mismatch(tmp_path):
    tr = _write_jsonl(tmp_path / "g.tr.jsonl", [{"image_id": 1, "text_ids": [2]}])
    with pytest.raises(recall.PredictionError, match="cannot score text -> image"):
        recall.read_gold(tr, "t2i")
    bad = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": 1, "image_ids": [1]}, {"text_id": 1, "image_ids": [2]}])
    with pytest.raises(recall.PredictionError, match=r"g\.jsonl:2: text_id 1 appears twice"):
        recall.read_gold(bad)
    with pytest.raises(recall.PredictionError, match="file not found"):
        recall.read_gold(tmp_path / "nope.jsonl")
    big = _write_jsonl(tmp_path / "g.jsonl", [{"text_id": 1, "image_ids": [1]}, {"text_id": 2, "image_ids": [-2**63 - 1]}])
    with pytest.raises(recall.PredictionError, match=r"g\.jsonl:2: an id in image_ids -9223372036854775809 does not fit"):
        recall.read_gold(big)
