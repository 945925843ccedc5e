"""Features in, cn_clip's score object out: the whole retrieval evaluation of one direction in one call.

Glue of the pieces notebook 07 builds one by one (cosine top-k, the prediction dict keyed by ids, Recall@K,
cn_clip's output object). The reference of exercise 07.5, where the student joins their own pieces;
the notebook compares the result with what cn_clip's `evaluation.py` wrote, byte for byte.
"""
from __future__ import annotations

import numpy as np

from . import recall, topk


def evaluate_features(queries, gallery, query_ids, gallery_ids, gold: dict[int, list[int]],
                      k: int = recall.NUM_K) -> tuple[dict[int, list[int]], dict]:
    """(pred, score): pred {query id: [k gallery ids], best first} in the order of `query_ids`, and
    `recall.score_json` of its Recall@1/5/10 against `gold`.

    `queries` (Q, D) and `gallery` (N, D) may have any length (they are normalised here: cosine), and may be
    numpy arrays or tensors; `query_ids` / `gallery_ids` give the id of each row. Ties keep the lower row first,
    as cn_clip's stable sort does."""
    q = np.asarray(queries, dtype=np.float32)
    g = np.asarray(gallery, dtype=np.float32)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)                 # (Q, D) unit rows
    g = g / np.linalg.norm(g, axis=1, keepdims=True)                 # (N, D)
    _, idx = topk.topk_predictions(q, g, k)                          # (Q, k) gallery rows
    g_ids = [int(i) for i in np.asarray(gallery_ids).tolist()]
    pred = {int(qid): [g_ids[i] for i in row] for qid, row in zip(np.asarray(query_ids).tolist(), idx.tolist())}
    return pred, recall.score_json(recall.evaluate(gold, pred))
