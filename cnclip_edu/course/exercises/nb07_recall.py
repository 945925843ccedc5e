"""Exercise 07.3 of notebook 07 (retrieval evaluation): Recall@K and mean recall.

07.3 is compared with `eval.recall.evaluate` (equal to cn_clip's `evaluation.py`, see
tests/test_recall.py). The cases hold a query whose SECOND gold image is ranked first, hits at
ranks 5, 6, 10 and 11 (off-by-one at both ends), and queries with several gold images in the top 10.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.3 Recall@K
def _library_recall(gold, pred):
    from cnclip_edu.eval.recall import evaluate

    return evaluate(gold, pred)


def _hand_made():
    """Four queries: 2nd gold image first (hit@1), gold at rank 5 (hit@5), rank 6 (hit@10), rank 11 (miss)."""
    gold = {1: [10, 11], 2: [20], 3: [30], 4: [40]}
    pred = {1: [11, 10] + list(range(100, 108)),
            2: list(range(200, 204)) + [20] + list(range(204, 209)),
            3: list(range(300, 305)) + [30] + list(range(305, 309)),
            4: list(range(400, 410)) + [40]}
    return gold, pred


def _random_run(seed: int, n_queries: int = 40, n_items: int = 30):
    """Gold: 1-4 items per query; predictions: 10 ranked items, a third with a planted hit at a random rank."""
    import random

    rng = random.Random(seed)
    items = list(range(1000, 1000 + n_items))
    gold, pred = {}, {}
    for q in range(n_queries):
        gold[q] = rng.sample(items, rng.randint(1, 4))
        ranked = rng.sample([i for i in items if i not in gold[q]], 10)
        if q % 3 == 0:
            ranked.insert(rng.randrange(10), rng.choice(gold[q]))
        elif q % 3 == 1:   # several gold items in the top 10
            for g in gold[q][:2]:
                ranked.insert(rng.randrange(10), g)
        pred[q] = ranked
    return gold, pred


def _recall_cases():
    return [Case("4 条手工查询：第 2 张正例排第 1、正例排第 5、第 6、第 11", lambda f: f(*_hand_made())),
            Case("40 条随机查询（每条 1-4 张正例，有的前 10 里有多张正例）", lambda f: f(*_random_run(0))),
            Case("另一组 40 条随机查询", lambda f: f(*_random_run(1)))]


def _recall_mistake(kind: str):
    def recall_at_k(gold, pred, ks=(1, 5, 10)):
        out = {}
        for k in ks:
            hits = 0
            for q, gold_ids in gold.items():
                top = pred[q][:k + 1] if kind == "off_by_one" else pred[q][:k]
                if kind == "first_gold_only":
                    hits += gold_ids[0] in top
                elif kind == "count_all":
                    hits += len(set(gold_ids) & set(top))
                elif kind == "precision":
                    hits += len(set(gold_ids) & set(top)) / k
                else:
                    hits += any(g in top for g in gold_ids)
            out[f"r{k}"] = hits / len(gold) * (100 if kind == "percent" else 1)
        out["mean_recall"] = sum(out[f"r{k}"] for k in ks) / len(ks)
        return out
    return recall_at_k


register(Exercise(
    id="07.3", title="Recall@K 与 mean recall", points=2,
    hint="对每条查询：它的正例列表（gold[q]）里只要有任意一张出现在 pred[q][:k] 里就算命中 1 次（不论命中几张）；"
         "R@K = 命中的查询数 / 查询总数（0 到 1 之间的比例）；mean_recall = (R@1 + R@5 + R@10) / 3。"
         "常见错误：只认第一张正例、把命中的图片张数累加、前 K 个写成 pred[q][:k+1]、乘了 100。",
    reference=_library_recall,
    cases=_recall_cases,
    hidden=lambda seed: [Case("随机查询（每条 1-4 张正例）", lambda f: f(*_random_run(seed * 2 + 11))),
                         Case("另一组随机查询，检索库更小", lambda f: f(*_random_run(seed * 2 + 12, n_items=14)))],
    builds=("cnclip_edu.eval.recall.evaluate",),
    mutants=lambda: {
        "只认第一张正例": _recall_mistake("first_gold_only"),
        "把前 K 个里命中的正例张数累加": _recall_mistake("count_all"),
        "前 K 个多取了一个 (pred[q][:k+1])": _recall_mistake("off_by_one"),
        "算成了百分数": _recall_mistake("percent"),
        "算成了 precision（命中张数 / K）": _recall_mistake("precision"),
    },
))
