"""Notebook 07 (retrieval evaluation): the student writes cosine top-k and Recall@K / mean recall.

07.1 is compared with the library's `eval.topk.topk_predictions` (chunked, exact, equal to cn_clip's
`make_topk_predictions.py`, see tests/test_topk.py) on normalised copies of the same features. The
inputs are NOT unit length and the gallery rows have very different lengths, so a plain dot
product ranks differently from the cosine; there are more gallery items than queries, so a
`topk` along the wrong axis shows as a wrong shape. Random floats: no ties, so `Tensor.topk`'s
unspecified order among equal scores never matters here.

07.2 is compared with `eval.recall.evaluate` (equal to cn_clip's `evaluation.py`, see
tests/test_recall.py). The cases hold a query whose SECOND gold image is ranked first, hits at
ranks 5, 6, 10 and 11 (off-by-one at both ends), and queries with several gold images in the top 10.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.1 cosine top-k
def _library_topk(queries, gallery, k):
    """`topk_predictions` on unit-length copies: (scores (Q, k) float32, indices (Q, k) int64) as tensors."""
    import torch

    from cnclip_edu.eval.topk import topk_predictions

    q = torch.nn.functional.normalize(queries.float(), dim=-1).numpy()
    g = torch.nn.functional.normalize(gallery.float(), dim=-1).numpy()
    scores, idx = topk_predictions(q, g, k)
    return torch.from_numpy(scores), torch.from_numpy(idx)


def _features(n_queries: int, n_gallery: int, dim: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(n_queries, dim, generator=g) * (0.5 + 3 * torch.rand(n_queries, 1, generator=g))
    gallery = torch.randn(n_gallery, dim, generator=g) * (0.2 + 5 * torch.rand(n_gallery, 1, generator=g))
    return queries, gallery


def _topk_cases():
    return [Case(f"{q} 条查询、图库 {n} 条、维度 {d}、k = {k}（长度各不相同）",
                 lambda f, q=q, n=n, d=d, k=k, s=s: f(*_features(q, n, d, s), k))
            for q, n, d, k, s in [(3, 8, 4, 3, 0), (5, 40, 16, 10, 1), (1, 6, 8, 1, 2)]]


def _topk_mistake(kind: str):
    def cosine_topk(queries, gallery, k):
        if kind == "no_norm":
            q, g = queries, gallery
        else:
            q = queries / queries.norm(dim=-1, keepdim=True)
            g = gallery / gallery.norm(dim=-1, keepdim=True)
        sims = g @ q.T if kind == "swapped" else q @ g.T          # (Q, N); swapped: (N, Q)
        if kind == "dim0":
            return sims.topk(k, dim=0)
        if kind == "ascending":                                   # sort() is ascending: the last k, worst first
            s, i = sims.sort(dim=-1)
            return s[:, -k:], i[:, -k:]
        if kind == "smallest":
            return sims.topk(k, dim=-1, largest=False)
        return sims.topk(k, dim=-1)
    return cosine_topk


register(Exercise(
    id="07.1", title="余弦 top-k：归一化、相似度矩阵、topk", points=2,
    hint="先把查询和图库各自归一化：x / x.norm(dim=-1, keepdim=True)；相似度矩阵 sims = q @ g.T，形状 (查询数, 图库数)；"
         "再 sims.topk(k, dim=-1) 沿图库那一维取最大的 k 个，返回 (分数, 下标)，分数从大到小。常见错误：忘了归一化（点积会偏向长向量）、"
         "写成 g @ q.T 或沿 dim=0 取 topk（形状变成 (k, 图库数)）、用 sort() 后取了升序的最后 k 个（顺序反了）。",
    reference=_library_topk,
    cases=_topk_cases,
    mutants=lambda: {
        "忘了归一化（点积不是余弦）": _topk_mistake("no_norm"),
        "topk 沿 dim=0": _topk_mistake("dim0"),
        "相似度矩阵写成 gallery @ queries.T": _topk_mistake("swapped"),
        "sort() 升序后取最后 k 个（最好的排在最后）": _topk_mistake("ascending"),
        "topk 取了最小的 k 个": _topk_mistake("smallest"),
    },
))


# ----------------------------------------------------------------------------- 07.2 Recall@K
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
    return [Case("4 条手工查询：第 2 张 gold 排第 1、gold 排第 5、第 6、第 11", lambda f: f(*_hand_made())),
            Case("40 条随机查询（每条 1-4 张 gold，有的前 10 里有多张 gold）", lambda f: f(*_random_run(0))),
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
    id="07.2", title="Recall@K 与 mean recall", points=2,
    hint="对每条查询：它的 gold 列表里只要有任意一张出现在 pred[q][:k] 里就算命中 1 次（不论命中几张）；"
         "R@K = 命中的查询数 / 查询总数（0 到 1 之间的比例）；mean_recall = (R@1 + R@5 + R@10) / 3。"
         "常见错误：只认 gold 的第一张图、把命中的图片张数累加、前 K 个写成 pred[q][:k+1]、乘了 100。",
    reference=_library_recall,
    cases=_recall_cases,
    mutants=lambda: {
        "只认 gold 的第一张图": _recall_mistake("first_gold_only"),
        "把前 K 个里命中的 gold 张数累加": _recall_mistake("count_all"),
        "前 K 个多取了一个 (pred[q][:k+1])": _recall_mistake("off_by_one"),
        "算成了百分数": _recall_mistake("percent"),
        "算成了 precision（命中张数 / K）": _recall_mistake("precision"),
    },
))
