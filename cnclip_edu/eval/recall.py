"""Recall@1/5/10 and mean recall (MR) of retrieval predictions, scored exactly as cn_clip scores them.

    cnclip-edu recall test_texts.jsonl test_predictions.jsonl output.json                     # text -> image
    cnclip-edu recall test_texts.jsonl test_tr_predictions.jsonl output.json --direction i2t  # image -> text

A query counts as a hit at K when ANY of its gold items is among its first K predictions
(a caption may match several images). R@K = hits / number of gold queries; MR ("mean recall",
the `MR` column of cn_clip's result tables) = (R@1 + R@5 + R@10) / 3. The output file is cn_clip's
`evaluation.py` JSON, with the same keys and the same numbers (percentages):
`{"success": true, "score": MR, "scoreJson": {"score", "mean_recall", "r1", "r5", "r10"}}`.

For image -> text, the gold file may be the usual text -> image annotation (`{"text_id",
"image_ids"}`): it is inverted on the fly to `{"image_id", "text_ids"}`, as cn_clip's
`transform_ir_annotation_to_tr.py` does (`write_tr_annotation` writes that `.tr.jsonl` file).
Predictions are validated strictly; a bad line is reported with its file and line number.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cnclip_edu.data.formats import id_problem
from cnclip_edu.fileio import atomic_open, atomic_write

NUM_K = 10
KEYS = {"t2i": ("text_id", "image_ids"), "i2t": ("image_id", "text_ids")}


class PredictionError(ValueError):
    """A malformed prediction or gold file; the message names the file and line."""


def _read_jsonl(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise PredictionError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise PredictionError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise PredictionError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, obj


# ----------------------------------------------------------------------------- gold annotations
def t2i_to_i2t(gold_t2i: dict[int, list[int]]) -> dict[int, list[int]]:
    """Invert text -> images gold into image -> texts (images in first-seen order, as cn_clip)."""
    out: dict[int, list[int]] = {}
    for text_id, image_ids in gold_t2i.items():
        for image_id in image_ids:
            out.setdefault(image_id, []).append(text_id)
    return out


def read_gold(path: str | Path, direction: str = "t2i") -> dict[int, list[int]]:
    """Gold file -> {query_id: [gold ids]} for `direction`, inverting a t2i annotation for i2t."""
    if direction not in KEYS:
        raise ValueError(f"direction must be one of {tuple(KEYS)}, not {direction!r}")
    gold: dict[int, list[int]] = {}
    layout = None
    for lineno, obj in _read_jsonl(path):
        if layout is None:
            layout = next((d for d, (q, g) in KEYS.items() if q in obj and g in obj), None)
            if layout is None:
                raise PredictionError(f"{path}:{lineno}: gold lines need text_id + image_ids (or image_id + text_ids)")
        qkey, gkey = KEYS[layout]
        if not isinstance(obj.get(gkey), list):
            raise PredictionError(f"{path}:{lineno}: need integer {qkey} and a list of integer {gkey}")
        problem = id_problem(obj.get(qkey), qkey) or next(
            (p for p in (id_problem(i, f"an id in {gkey}") for i in obj[gkey]) if p), None)
        if problem:
            raise PredictionError(f"{path}:{lineno}: {problem}")
        if obj[qkey] in gold:
            raise PredictionError(f"{path}:{lineno}: {qkey} {obj[qkey]} appears twice")
        gold[obj[qkey]] = obj[gkey]
    if layout is None:
        raise PredictionError(f"{path}: no annotations in file")
    if layout == direction:
        return gold
    if layout == "t2i":
        return t2i_to_i2t(gold)
    raise PredictionError(f"{path}: is an image -> text annotation; it cannot score text -> image predictions")


def write_tr_annotation(input_path: str | Path, output_path: str | Path | None = None) -> Path:
    """cn_clip's transform: `test_texts.jsonl` -> `test_texts.tr.jsonl` with `{"image_id", "text_ids"}`."""
    input_path = Path(input_path)
    out = Path(output_path) if output_path else input_path.with_name(input_path.name.replace(".jsonl", "") + ".tr.jsonl")
    with atomic_open(out) as f:
        for image_id, text_ids in read_gold(input_path, "i2t").items():
            f.write(json.dumps({"image_id": image_id, "text_ids": text_ids}) + "\n")
    return out


# ----------------------------------------------------------------------------- predictions
def read_predictions(path: str | Path, gold: dict[int, list[int]], direction: str = "t2i",
                     k: int = NUM_K, min_k: int | None = None) -> dict[int, list[int]]:
    """Validated predictions {query_id: [up to k ids]}.

    Each line needs an integer query id known to `gold`, and at least `min_k` (default: k) distinct
    integer ids (only the first k are kept); every gold query must have a line.
    """
    min_k = k if min_k is None else min_k
    qkey, pkey = KEYS[direction]
    preds: dict[int, list[int]] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        if qkey not in obj:
            other = KEYS["i2t" if direction == "t2i" else "t2i"][0]
            hint = f" (it has {other!r}: wrong --direction?)" if other in obj else ""
            raise PredictionError(f"{where}: no {qkey!r} field{hint}")
        qid = obj[qkey]
        problem = id_problem(qid, qkey)
        if problem:
            raise PredictionError(f"{where}: {problem}")
        if qid not in gold:
            raise PredictionError(f"{where}: {qkey} {qid} is not in the gold annotation")
        if qid in preds:
            raise PredictionError(f"{where}: {qkey} {qid} is predicted twice")
        ids = obj.get(pkey)
        if not isinstance(ids, list):
            raise PredictionError(f"{where}: {pkey} of {qkey} {qid} must be a list, got {ids!r}")
        if len(ids) < min_k:
            raise PredictionError(f"{where}: {qkey} {qid} has {len(ids)} {pkey}, need at least {min_k}")
        bad = next((r for r, i in enumerate(ids) if id_problem(i)), None)
        if bad is not None:
            kind = "a non-integer id" if type(ids[bad]) is not int else "an id that does not fit in 64 bits,"
            raise PredictionError(f"{where}: {qkey} {qid} has {kind} {ids[bad]!r} at rank {bad + 1}")
        if len(set(ids)) != len(ids):
            raise PredictionError(f"{where}: {qkey} {qid} lists the same id twice")
        preds[qid] = ids[:k]
    missing = [q for q in gold if q not in preds]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise PredictionError(f"{path}: no prediction for {len(missing)} {qkey}(s): {shown}")
    return preds


# ----------------------------------------------------------------------------- scoring
def evaluate(gold: dict[int, list[int]], pred: dict[int, list[int]], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K as fractions: {"r1", "r5", "r10", "mean_recall"} (mean over `ks`).

    The same arithmetic as cn_clip (count hits, divide, then average), so the floats agree exactly.
    """
    if not gold:
        raise ValueError("empty gold annotation")
    hits = {k: 0 for k in ks}
    for qid, gold_ids in gold.items():
        ranked = pred[qid]
        gold_set = set(gold_ids)
        first = next((r for r, i in enumerate(ranked) if i in gold_set), None)  # 0-based rank of first hit
        for k in ks:
            hits[k] += first is not None and first < k
    out = {f"r{k}": hits[k] * 1.0 / len(gold) for k in ks}
    out["mean_recall"] = sum(out[f"r{k}"] for k in ks) / float(len(ks))
    return out


def score_json(recalls: dict[str, float]) -> dict:
    """cn_clip's `evaluation.py` output object (percentages). Recalls the predictions could not give
    (R@10 from top-5 files) are null, and so is MR, with a `note` saying why."""
    pct = {k: (recalls[k] * 100 if k in recalls else None) for k in ("r1", "r5", "r10")}
    mr = None if None in pct.values() else (recalls["r1"] + recalls["r5"] + recalls["r10"]) / 3.0 * 100
    out = {"success": True, "score": mr,
           "scoreJson": {"score": mr, "mean_recall": mr, "r1": pct["r1"], "r5": pct["r5"], "r10": pct["r10"]}}
    if mr is None:
        missing = [f"R@{k[1:]}" for k, v in pct.items() if v is None]
        out["note"] = f"{', '.join(missing)} and MR need more predictions per query than the file has"
    return out


def evaluate_files(gold_path: str | Path, pred_path: str | Path, direction: str = "t2i") -> dict:
    """Score a prediction file against a gold file -> cn_clip's output object. Files with fewer than 10
    predictions per query (top-5, say) give the recalls they can: R@K for every K <= the shortest list."""
    gold = read_gold(gold_path, direction)
    preds = read_predictions(pred_path, gold, direction, min_k=1)
    have = min(len(ids) for ids in preds.values())
    ks = tuple(k for k in (1, 5, NUM_K) if k <= have)
    return score_json(evaluate(gold, preds, ks))


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cnclip-edu recall", description=__doc__.split("\n\n")[0])
    ap.add_argument("gold", help="<split>_texts.jsonl (or its .tr.jsonl for i2t)")
    ap.add_argument("pred", help="top-k predictions JSONL")
    ap.add_argument("out", help="output JSON (cn_clip's evaluation.py format)")
    ap.add_argument("--direction", choices=tuple(KEYS), default="t2i")
    args = ap.parse_args(argv)
    try:
        result = evaluate_files(args.gold, args.pred, args.direction)
    except PredictionError as e:
        # like cn_clip, still write a result file that says what failed
        atomic_write(args.out, json.dumps({"errorDetail": str(e), "errorMsg": str(e), "score": 0, "scoreJson": {},
                                          "success": False}))
        print(f"recall: {e}", file=sys.stderr)
        return 1
    atomic_write(args.out, json.dumps(result))
    s = result["scoreJson"]
    shown = "  ".join(f"{label} {s[key]:.2f}" for label, key in (("R@1", "r1"), ("R@5", "r5"), ("R@10", "r10"),
                                                                  ("MR", "mean_recall")) if s[key] is not None)
    print(f"{args.direction}: {shown} -> {args.out}" + (f"  ({result['note']})" if "note" in result else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
