"""Exercise 07.1 of notebook 07 (retrieval evaluation): cosine top-k.

07.1 is compared with the library's `eval.topk.topk_predictions` (chunked, exact, equal to cn_clip's
`make_topk_predictions.py`, see tests/test_topk.py) on normalised copies of the same features. The
inputs are NOT unit length and the gallery rows have very different lengths, so a plain dot
product ranks differently from the cosine; there are more gallery items than queries, so a
`topk` along the wrong axis shows as a wrong shape. Random floats: no ties, so `Tensor.topk`'s
unspecified order among equal scores never matters here.
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
    return [Case(f"{q} 条查询、检索库 {n} 条、维度 {d}、k = {k}（长度各不相同）",
                 lambda f, q=q, n=n, d=d, k=k, s=s: f(*_features(q, n, d, s), k))
            for q, n, d, k, s in [(3, 8, 4, 3, 0), (5, 40, 16, 10, 1), (1, 6, 8, 1, 2)]]


def _topk_hidden(seed: int):
    import random

    rng = random.Random(seed)
    out = []
    for kind in ("检索库比查询多", "k = 1", "k 等于检索库大小"):
        q, n, d = rng.randint(1, 6), rng.randint(7, 30), rng.choice((4, 8, 16))
        k = {"k = 1": 1, "k 等于检索库大小": n}.get(kind, rng.randint(2, 6))
        out.append(Case(kind, lambda f, q=q, n=n, d=d, k=k, s=rng.randrange(10 ** 6): f(*_features(q, n, d, s), k)))
    return out


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
    hint="余弦只看方向：先让每个查询、每个检索库条目都变成长度 1，再算每个查询和每个检索库条目的内积，排成 (查询数, 检索库数)；"
         "然后在每一行（检索库那一维）里取最大的 k 个，分数从大到小。常见错误：忘了归一化（点积会偏向长向量）、"
         "矩阵乘反了或沿错了维度取最大值（形状会不对）、排序方向反了（最好的排到了最后）。",
    reference=_library_topk,
    cases=_topk_cases,
    hidden=_topk_hidden,
    builds=("cnclip_edu.eval.topk.topk_predictions",),
    mutants=lambda: {
        "忘了归一化（点积不是余弦）": _topk_mistake("no_norm"),
        "topk 沿 dim=0": _topk_mistake("dim0"),
        "相似度矩阵写成 gallery @ queries.T": _topk_mistake("swapped"),
        "sort() 升序后取最后 k 个（最好的排在最后）": _topk_mistake("ascending"),
        "topk 取了最小的 k 个": _topk_mistake("smallest"),
    },
))
