"""eval/retrieval.py: the one-call evaluation (exercise 07.5's reference) equals the pieces it joins."""
from __future__ import annotations

import numpy as np

from cnclip_edu.eval import recall, retrieval, topk


def test_evaluate_features_joins_topk_ids_and_score_json():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((6, 8)).astype(np.float32) * rng.uniform(0.2, 5, (6, 1)).astype(np.float32)
    g = rng.standard_normal((15, 8)).astype(np.float32) * rng.uniform(0.2, 5, (15, 1)).astype(np.float32)
    q_ids, g_ids = np.array([17, 3, 9, 40, 2, 11]), np.arange(1000, 1015)[::-1]
    gold = {int(i): [int(g_ids[j % 15]), int(g_ids[(3 * j) % 15])] for j, i in enumerate(q_ids)}
    pred, score = retrieval.evaluate_features(q, g, q_ids, g_ids, gold)
    _, idx = topk.topk_predictions(q / np.linalg.norm(q, axis=1, keepdims=True),
                                   g / np.linalg.norm(g, axis=1, keepdims=True), 10)
    assert list(pred) == [int(i) for i in q_ids]                     # keys in query order, ids not rows
    assert all(pred[int(i)] == [int(g_ids[j]) for j in row] for i, row in zip(q_ids, idx))
    assert score == recall.score_json(recall.evaluate(gold, pred))
