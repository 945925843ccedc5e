"""Your own gallery, evaluated in memory: one split's text -> image retrieval (notebook 07's pipeline),
and the short report notebook 10 prints for any model on it - the official ViT-B-16 when its file is there.

Why a report function: notebook 10 runs offline, so it cannot show the official model's numbers on your
photos; it can show the exact cell that prints them once you have downloaded the weights. The report is
computed the way the notebook computes the course model's (same split, same threshold rule), so the two
can be read side by side. `official_report` returns None when the file is missing: the caller says so.

    rep = official_report("~/.cache/clip/clip_cn_vit-b-16.pt", data_dir, ["一只猫", "一只狗"])
    print("\\n".join(report_lines(rep, id_to_file)))
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import torch

from cnclip_edu.data import formats
from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
from cnclip_edu.eval import features, recall, topk
from cnclip_edu.eval.threshold import threshold_from_valid


def evaluate_split(model, root: str | os.PathLike, split: str, k: int = 10, device: str = "cpu",
                   context_length: int = 52) -> dict:
    """Text -> image retrieval on `root`'s `split` (MUGE files + lmdb/): every caption and photo encoded
    once, L2-normalized, photos ranked by cosine per caption. -> recall (R@1/5/10), ranked ids and top-k
    scores per text_id, gold ids, and the features (the search box reuses the photos' ones)."""
    root = Path(root)
    texts_path = formats.texts_jsonl(root, split)
    text_ids, text_feats = features.extract_text_features(model, EvalTextDataset(texts_path, context_length), 64,
                                                          device, progress=False)
    image_ids, image_feats = features.extract_image_features(
        model, EvalImageDataset(root / "lmdb" / split / "imgs", model.image_resolution), 64, device, progress=False)
    scores, idx = topk.topk_predictions(text_feats, image_feats, min(k, len(image_ids)), device=device)
    gold = recall.read_gold(texts_path, "t2i")
    ranked = {int(t): [int(image_ids[j]) for j in row] for t, row in zip(text_ids, idx)}
    return {"recall": recall.evaluate(gold, ranked), "ranked": ranked, "scores": scores, "gold": gold,
            "text_ids": text_ids, "image_ids": image_ids, "image_feats": image_feats}


def gallery_report(model, root: str | os.PathLike, queries: Sequence[str], device: str = "cpu",
                   context_length: int = 52, top: int = 3) -> dict:
    """What notebook 10 shows of a model on your valid split, as plain data: R@1/5/10, the "nothing found"
    threshold chosen on valid (exercise 10.6's rule) with how many right / wrong top-1s it keeps / blocks,
    and each query's top-`top` photos with the decision."""
    from cnclip_edu.tokenizer import tokenize

    res = evaluate_split(model, root, "valid", device=device, context_length=context_length)
    scores = {int(t): res["scores"][q] for q, t in enumerate(res["text_ids"])}
    threshold = threshold_from_valid(scores, res["ranked"], res["gold"])
    top1 = [(float(scores[t][0]), res["ranked"][t][0] in res["gold"][t]) for t in res["ranked"]]
    with torch.no_grad():
        q = model.encode_text(tokenize(list(queries), context_length).to(device)).float()
    q = (q / q.norm(dim=-1, keepdim=True)).cpu().numpy()
    q_scores, q_idx = topk.topk_predictions(q, res["image_feats"], min(top, len(res["image_ids"])))
    found = {text: [(int(res["image_ids"][j]), float(s)) for j, s in zip(row_idx, row_s)]
             for text, row_idx, row_s in zip(queries, q_idx, q_scores)}
    return {"recall": {m: float(v) for m, v in res["recall"].items()}, "n_texts": len(res["gold"]),
            "threshold": float(threshold),
            "right_kept": sum(s > threshold for s, ok in top1 if ok), "right": sum(ok for _, ok in top1),
            "wrong_blocked": sum(s <= threshold for s, ok in top1 if not ok), "wrong": sum(not ok for _, ok in top1),
            "queries": found}


def official_report(weights: str | os.PathLike, root: str | os.PathLike, queries: Sequence[str],
                    device: str = "cpu") -> dict | None:
    """`gallery_report` of the model in `weights` (a cn_clip .pt, an HF folder, ours); None if it is not there."""
    from cnclip_edu.model.checkpoint import load

    path = Path(weights).expanduser()
    if not path.exists():
        return None
    model, _ = load(str(path), device=device)
    return {"weights": str(path), "model": model.config.name, **gallery_report(model, root, queries, device=device)}


def report_lines(report: dict, id_to_file: Mapping[str, str]) -> list[str]:
    """The report in Chinese, one line each; `id_to_file`: image id (str) -> file name (`valid_id_map.tsv`)."""
    r = report["recall"]
    lines = [f"valid（{report['n_texts']} 条留出描述）：R@1 {r['r1']:.3f}  R@5 {r['r5']:.3f}  R@10 {r['r10']:.3f}",
             f"在 valid 上选出的阈值 {report['threshold']:.3f}：排对的 {report['right']} 条里给出 {report['right_kept']} 条，"
             f"排错的 {report['wrong']} 条里挡掉 {report['wrong_blocked']} 条"]
    for text, hits in report["queries"].items():
        first = hits[0][1] > report["threshold"]
        lines.append(f"  {text}：" + ", ".join(f"{id_to_file.get(str(i), i)} {s:.2f}" for i, s in hits)
                     + (" -> 给出" if first else " -> 没有找到"))
    return lines

