"""Notebook 07 (retrieval evaluation): the student writes the feature-extraction loop, cosine top-k, the
chunked top-k with a running merge (what lets exact retrieval scale past memory), Recall@K / mean recall,
and the inversion of the text -> image gold annotation that image -> text scoring needs.

07.0 is compared with the library's `eval.features._extract` (what `extract_text_features` and
`extract_image_features` run) on a tiny tower with parameters, over a list of `(id, input)` pairs whose
ids are neither sorted nor 0..N-1 and whose length a batch does not divide: the ids must come from the
dataset, in order, the last partial batch must be kept, and every row must have length 1. The tower
notes whether it was called with gradients recorded, so the case also reports "no_grad used".

07.1 is compared with the library's `eval.topk.topk_predictions` (chunked, exact, equal to cn_clip's
`make_topk_predictions.py`, see tests/test_topk.py) on normalised copies of the same features. The
inputs are NOT unit length and the gallery rows have very different lengths, so a plain dot
product ranks differently from the cosine; there are more gallery items than queries, so a
`topk` along the wrong axis shows as a wrong shape. Random floats: no ties, so `Tensor.topk`'s
unspecified order among equal scores never matters here.

07.2 is compared with the same `topk_predictions` run with `gallery_batch_size = chunk_size`. Every
gallery holds more than one chunk; the cases have a last partial chunk, k larger than a chunk, k equal
to the gallery size, and exact ties inside a chunk and across chunks. Tie cases are built from vectors
whose entries are small multiples of 1/8 with a length that is exactly a power of two, so every
normalisation and every dot product is exact in float32 whatever order the answer sums in: a tie is a
tie for the answer and the library alike, and the library's rule (equal scores: lower gallery index
first) decides. Two referees (chunk_gallery.py) make the check enforce what the notebook teaches: the
answer gets the gallery as a `ChunkedGallery`, which hands out at most `chunk_size` rows per read and
refuses whole-gallery operations (so building the full (Q, N) matrix fails), and it runs under
`unstable_ties`, where a `sort` / `argsort` / `topk` without `stable=True` returns ties last index first,
as an unstable sort may (torch's CPU sort keeps short rows in order, which would let a forgotten
`stable=True` pass by luck).

07.3 is compared with `eval.recall.evaluate` (equal to cn_clip's `evaluation.py`, see
tests/test_recall.py). The cases hold a query whose SECOND gold image is ranked first, hits at
ranks 5, 6, 10 and 11 (off-by-one at both ends), and queries with several gold images in the top 10.

07.4 (text -> image gold inverted into image -> text gold, what cn_clip's
`transform_ir_annotation_to_tr.py` does) is compared with `eval.recall.t2i_to_i2t`. The result is
compared as an ordered list of (image id, text ids) pairs, because the order is part of the contract:
cn_clip writes the `.tr.jsonl` file in first-seen image order, text ids in annotation order. The
annotations have unsorted text ids, images shared by several captions, captions with several images,
and image ids numerically equal to text ids (the toy data numbers both from 3000000); the case also
reports whether the answer left its input unchanged.
"""
from __future__ import annotations

from .chunk_gallery import ChunkedGallery, unstable_ties
from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.0 feature extraction
def _library_extract(encode, dataset, batch_size, device):
    """The library's loop (no progress bar): (ids (N,) int64, L2-normalised feats (N, D) float32)."""
    from cnclip_edu.eval.features import _extract

    return _extract(encode, dataset, batch_size, device, "fp32", 0, "features", progress=False)


def _toy_tower(kind: str, seed: int):
    """A tiny tower with trainable parameters; `encode` gives rows of different lengths, as a real tower does."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            if kind == "text":
                self.table = torch.nn.Parameter(torch.randn(30, 8, generator=g))     # token id -> (8,)
            self.proj = torch.nn.Parameter(torch.randn(8 if kind == "text" else 48, 6, generator=g))
            self.grad_seen = False

        def encode(self, x):   # text (B, L) int64 / image (B, 3, 4, 4) -> (B, 6), not unit length
            self.grad_seen |= torch.is_grad_enabled()
            h = self.table[x].mean(dim=1) if kind == "text" else x.flatten(1)
            return (h @ self.proj) * (1 + x.reshape(len(x), -1)[:, :1].float().abs())
    return Tower()


def _toy_set(kind: str, n: int, seed: int) -> list:
    """n (id, input) pairs: ids large, unsorted and unique; text inputs (7,) token ids, images (3, 4, 4)."""
    import random

    import torch

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    ids = rng.sample(range(3_000_000, 3_000_000 + 10 * n), n)
    if kind == "text":
        return [(i, torch.randint(1, 30, (7,), generator=g)) for i in ids]
    return [(i, torch.rand(3, 4, 4, generator=g)) for i in ids]


def _run_extract(answer, kind: str, n: int, batch_size: int, seed: int) -> dict:
    tower = _toy_tower(kind, seed)
    ids, feats = answer(tower.encode, _toy_set(kind, n, seed), batch_size, "cpu")
    return {"ids": ids, "feats": feats, "编码时关掉了梯度记录 (no_grad)": not tower.grad_seen}


def _extract_cases():
    return [Case(label, lambda f, k=k, n=n, b=b, s=s: _run_extract(f, k, n, b, s))
            for label, k, n, b, s in [("10 句描述，每批 4 句（最后一批只有 2 句）", "text", 10, 4, 0),
                                      ("9 张图，每批 3 张（恰好整除）", "image", 9, 3, 1),
                                      ("5 句描述，每批 8 句（一批就装下）", "text", 5, 8, 2)]]


def _extract_hidden(seed: int):
    import random

    rng = random.Random(seed)
    out = []
    for kind, label in (("text", "描述，批大小不整除"), ("image", "图片，批大小不整除")):
        b = rng.randint(2, 6)
        n = b * rng.randint(1, 4) + rng.randint(1, b - 1)
        out.append(Case(label, lambda f, k=kind, n=n, b=b, s=rng.randrange(10 ** 6): _run_extract(f, k, n, b, s)))
    return out


def _extract_mistake(kind: str):
    def extract_features(encode, dataset, batch_size, device):
        import contextlib

        import numpy as np
        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=batch_size, shuffle=kind == "shuffle", drop_last=kind == "drop_last")
        ids, feats = [], []
        with contextlib.nullcontext() if kind == "grad" else torch.no_grad():
            for batch_ids, x in loader:
                f = encode(x.to(device)).detach()
                if kind != "no_norm":
                    f = f / f.norm(dim=0 if kind == "norm_dim0" else -1, keepdim=True)
                ids.append(batch_ids.numpy())
                feats.append(f.cpu().numpy())
        ids = np.concatenate(ids)
        return (np.arange(len(ids)) if kind == "positions" else ids), np.concatenate(feats)
    return extract_features


register(Exercise(
    id="07.0", title="特征提取：一批一批地编码、归一化、拼起来", points=2,
    hint="按批取数据集（顺序不能打乱，最后不满的一批也要留下）；每批在不记录计算图的情况下送进编码函数，每一行除以它自己的长度；"
         "id 用数据集给的（不是 0、1、2……的位置），和特征一批一批地按原来的顺序拼起来，各自变成 numpy 数组。",
    reference=_library_extract,
    cases=_extract_cases,
    hidden=_extract_hidden,
    builds=("cnclip_edu.eval.features._extract", "cnclip_edu.eval.features.extract_text_features",
            "cnclip_edu.eval.features.extract_image_features"),
    mutants=lambda: {
        "忘了归一化": _extract_mistake("no_norm"),
        "沿 dim=0（批那一维）归一化": _extract_mistake("norm_dim0"),
        "DataLoader 用了 shuffle=True（顺序打乱）": _extract_mistake("shuffle"),
        "DataLoader 用了 drop_last=True（丢了最后不满的一批）": _extract_mistake("drop_last"),
        "id 写成了 0、1、2……的位置": _extract_mistake("positions"),
        "没有 torch.no_grad()（用 .detach() 绕过去）": _extract_mistake("grad"),
    },
))


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


# ----------------------------------------------------------------------------- 07.2 chunked top-k, running merge
def _library_chunked(queries, gallery, k, chunk_size):
    """`topk_predictions` with gallery chunks of `chunk_size`: (scores (Q, k) float32, indices (Q, k) int64).

    `gallery` is a tensor or, in the cases, a `ChunkedGallery`: read here a chunk at a time, as allowed."""
    import torch

    from cnclip_edu.eval.topk import topk_predictions

    gallery = torch.cat([gallery[s:s + chunk_size] for s in range(0, len(gallery), chunk_size)])
    q = torch.nn.functional.normalize(queries.float(), dim=-1).numpy()
    g = torch.nn.functional.normalize(gallery.float(), dim=-1).numpy()
    scores, idx = topk_predictions(q, g, k, query_batch_size=max(1, len(q)), gallery_batch_size=chunk_size)
    return torch.from_numpy(scores), torch.from_numpy(idx)


# integer patterns a with sum(a_i^2) = 64: a / 8 has length exactly 1 in binary floating point
_EXACT_PATTERNS = ((8,), (4, 4, 4, 4), (7, 3, 1, 1, 1, 1, 1, 1), (5, 5, 3, 1, 1, 1, 1, 1), (6, 4, 2, 2, 2),
                   (4, 4, 4, 2, 2, 2, 2), (6, 2, 2, 2, 2, 2, 2, 2))


def _exact_rows(n: int, pool: int, rng) -> "torch.Tensor":
    """(n, 8) rows drawn from `pool` distinct directions, each scaled by a power of two.

    Every entry is a multiple of 1/8 times 2^e and every length is exactly 2^e, so normalising and
    every dot product are exact in float32: equal directions give exactly equal cosines (true ties).
    """
    import torch

    dirs = []
    for _ in range(pool):
        a = list(rng.choice(_EXACT_PATTERNS)) + [0] * 8
        a = [v * rng.choice((-1, 1)) for v in a[:8]]
        rng.shuffle(a)
        dirs.append(a)
    rows = []
    for _ in range(n):
        scale = 2.0 ** rng.randint(-2, 3)
        rows.append([v / 8 * scale for v in dirs[rng.randrange(pool)]])
    return torch.tensor(rows, dtype=torch.float32)


def _tie_inputs(n_queries: int, n_gallery: int, pool: int, seed: int):
    import random

    rng = random.Random(seed)
    return _exact_rows(n_queries, 5, rng), _exact_rows(n_gallery, pool, rng)


def _run_chunked(answer, queries, gallery, k: int, chunk: int):
    """answer(queries, gallery, k, chunk) with the gallery readable only a chunk at a time; an answer other
    than the reference also runs under `unstable_ties` (a sort without stable=True may reverse ties)."""
    wrapped = ChunkedGallery(gallery, chunk)
    if answer is _library_chunked:
        return answer(queries, wrapped, k, chunk)
    with unstable_ties():
        return answer(queries, wrapped, k, chunk)


def _chunk_cases():
    rand = [("检索库 10 条、每块 4 条（最后一块只有 2 条）、k = 3", 3, 10, 8, 3, 4, 0),
            ("检索库 12 条、每块 4 条、k = 6 比一块还大", 4, 12, 16, 6, 4, 1),
            ("检索库 9 条、每块 3 条（恰好整除）、k = 9 等于检索库大小", 2, 9, 8, 9, 3, 2),
            ("检索库 23 条、每块 5 条、k = 10（各条长度差别很大）", 6, 23, 32, 10, 5, 3)]
    cases = [Case(label, lambda f, q=q, n=n, d=d, k=k, c=c, s=s: _run_chunked(f, *_features(q, n, d, s), k, c))
             for label, q, n, d, k, c, s in rand]
    cases.append(Case("平局：检索库 14 条只有 4 个不同方向（同方向、不同长度），每块 5 条，k = 6",
                      lambda f: _run_chunked(f, *_tie_inputs(5, 14, 4, 10), 6, 5)))
    return cases


def _chunk_hidden(seed: int):
    import random

    rng = random.Random(seed)
    cases = []
    for kind in ("块大小整除检索库", "块大小不整除检索库（最后一块不满）", "k 等于检索库大小", "k 比一块大",
                 "平局跨块"):
        chunk = rng.randint(2, 7)
        n_chunks = rng.randint(2, 5)
        n = chunk * n_chunks + (0 if kind in ("块大小整除检索库", "k 等于检索库大小") else rng.randint(1, chunk - 1))
        k = {"k 等于检索库大小": n, "k 比一块大": min(n, chunk + rng.randint(1, 4))}.get(kind, rng.randint(1, min(n, 8)))
        q, s = rng.randint(1, 6), rng.randrange(10 ** 6)
        if kind == "平局跨块":
            cases.append(Case(kind, lambda f, q=q, n=n, k=k, c=chunk, s=s: _run_chunked(f, *_tie_inputs(q, n, 3, s), k, c)))
        else:
            d = rng.choice((4, 8, 16))
            cases.append(Case(kind, lambda f, q=q, n=n, d=d, k=k, c=chunk, s=s: _run_chunked(f, *_features(q, n, d, s), k, c)))
    return cases


def _chunk_mistake(kind: str):
    def chunked_topk(queries, gallery, k, chunk_size):
        import torch

        q = queries if kind == "no_norm" else queries / queries.norm(dim=-1, keepdim=True)
        if kind in ("whole", "whole_read"):                                    # one (Q, N) matrix, one stable sort
            g = gallery if kind == "whole" else gallery[:]
            sims = q @ (g / g.norm(dim=-1, keepdim=True)).T
            s, i = sims.sort(dim=-1, descending=True, stable=True)
            return s[:, :k], i[:, :k]
        best_s = torch.empty(len(q), 0)
        best_i = torch.empty(len(q), 0, dtype=torch.long)
        last = len(gallery) - chunk_size + 1 if kind == "drop_last" else len(gallery)
        for start in range(0, last, chunk_size):
            g = gallery[start:start + chunk_size]
            if kind != "no_norm":
                g = g / g.norm(dim=-1, keepdim=True)
            sims = q @ g.T                                                     # (Q, B)
            if kind == "topk_k":                                               # fails when k > B
                s, i = sims.topk(k, dim=-1)
            else:
                s, i = sims.sort(dim=-1, descending=True, stable=kind != "unstable")
                s, i = s[:, :1 if kind == "top1" else k], i[:, :1 if kind == "top1" else k]
            if kind != "no_offset":
                i = i + start
            if kind == "no_merge":
                best_s, best_i = s, i
                continue
            pair = ((s, best_s), (i, best_i)) if kind == "new_first" else ((best_s, s), (best_i, i))
            s, i = torch.cat(pair[0], dim=1), torch.cat(pair[1], dim=1)
            if kind in ("unstable", "unstable_merge"):                         # argsort without stable=True
                order = s.argsort(dim=-1, descending=True)[:, :k]
            else:
                order = s.argsort(dim=-1, descending=True, stable=True)[:, :k]
            best_s, best_i = s.gather(1, order), i.gather(1, order)
        return best_s, best_i
    return chunked_topk


register(Exercise(
    id="07.2", title="分块 top-k：逐块计算，与当前的 top-k 合并", points=4,
    hint="当前的 top-k 从空的 (Q, 0) 开始；对每一块：先把查询和这一块都归一化、算出 (Q, 块长) 的余弦，取这一块自己的前 k 个"
         "（块可能比 k 短，最后一块可能不满），把块内下标加上这一块的起点变成检索库里的下标，再和当前的 top-k 拼在一起重新取前 k 个。"
         "平局要和库一样：分数相同时下标小的在前——排序用 stable=True，拼接时把下标小的那一份（之前各块的结果）放在前面。",
    reference=_library_chunked,
    cases=_chunk_cases,
    hidden=_chunk_hidden,
    builds=("cnclip_edu.eval.topk.topk_predictions", "cnclip_edu.eval.topk._torch_topk",
            "cnclip_edu.eval.topk._block_topk"),
    mutants=lambda: {
        "合并时块内下标没有加上这一块的起点": _chunk_mistake("no_offset"),
        "每块只留了第 1 名": _chunk_mistake("top1"),
        "每块直接 topk(k)（k 比一块大时出错）": _chunk_mistake("topk_k"),
        "丢掉了最后一块不满的块": _chunk_mistake("drop_last"),
        "平局时新块排在前面（下标大的优先）": _chunk_mistake("new_first"),
        "忘了归一化": _chunk_mistake("no_norm"),
        "没有合并，只剩最后一块的 top-k": _chunk_mistake("no_merge"),
        "一次算整个 (Q, N) 矩阵再稳定排序（没有分块）": _chunk_mistake("whole"),
        "先把整个检索库读出来 (gallery[:])，再一次算完": _chunk_mistake("whole_read"),
        "排序都没写 stable=True（平局先后全凭运气）": _chunk_mistake("unstable"),
        "块内用了稳定排序，合并时的 argsort 没写 stable=True": _chunk_mistake("unstable_merge"),
    },
))


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


# ----------------------------------------------------------------------------- 07.4 inverting the gold annotation
def _library_invert(gold_t2i):
    from cnclip_edu.eval.recall import t2i_to_i2t

    return t2i_to_i2t(gold_t2i)


def _hand_gold() -> dict:
    """Text ids unsorted; image 3000000 is gold for three captions; ids shared between texts and images."""
    return {3000007: [3000002, 3000000], 3000001: [3000000], 3000000: [3000005, 3000002, 3000000],
            3000003: [3000006]}


def _random_gold(seed: int, n_texts: int = 30, n_images: int = 12) -> dict:
    """n_texts captions in shuffled id order, 1-4 gold images each from a small shared pool."""
    import random

    rng = random.Random(seed)
    texts = rng.sample(range(3_000_000, 3_000_000 + 4 * n_texts), n_texts)   # not sorted: dict order = file order
    images = list(range(3_000_000, 3_000_000 + n_images))                   # overlaps the text ids
    return {t: rng.sample(images, rng.randint(1, 4)) for t in texts}


def _run_invert(answer, gold_t2i: dict):
    import copy

    given = copy.deepcopy(gold_t2i)
    out = answer(given)
    return {"结果（按键的先后）": [[int(k), [int(t) for t in v]] for k, v in out.items()],
            "传进来的字典没有被改动": given == gold_t2i}


def _invert_mistake(kind: str):
    def invert_gold(gold_t2i):
        if kind == "unchanged":                               # forgot to invert
            return dict(gold_t2i)
        out = {}
        items = [(t, gold_t2i.pop(t)) for t in list(gold_t2i)] if kind == "pops" else gold_t2i.items()
        for text_id, image_ids in items:
            for image_id in (image_ids[:1] if kind == "first_image" else image_ids):
                if kind == "overwrite":
                    out[image_id] = [text_id]
                elif kind == "set":
                    out.setdefault(image_id, set()).add(text_id)
                else:
                    out.setdefault(image_id, []).append(text_id)
        if kind == "sorted_keys":
            return dict(sorted(out.items()))
        if kind == "sorted_texts":
            return {k: sorted(v) for k, v in out.items()}
        return {k: list(v) for k, v in out.items()}
    return invert_gold


register(Exercise(
    id="07.4", title="把标注反过来：从 描述 → 图片 到 图片 → 描述", points=1,
    hint="对每条描述、它的每一张正例图：把这条描述的 id 记到那张图名下（第一次见到这张图时先给它一个空列表）。"
         "字典按插入的先后保存键，所以按原来的顺序走一遍，图片的先后和每张图下描述的先后就都对了；不要改动传进来的字典。"
         "常见错误：每次都新建列表（只剩最后一条描述）、只看每条描述的第一张图、对键或描述排序、用集合收集（先后乱了）。",
    reference=_library_invert,
    cases=lambda: [Case("手工标注：描述 id 没排序，一张图是三条描述的正例，图片 id 和描述 id 数值相同",
                        lambda f: _run_invert(f, _hand_gold())),
                   Case("30 条描述、12 张图（每条 1-4 张正例）", lambda f: _run_invert(f, _random_gold(0)))],
    hidden=lambda seed: [Case("随机标注（描述 id 没排序）", lambda f: _run_invert(f, _random_gold(seed * 2 + 21))),
                         Case("随机标注，图片更少（很多描述共用一张图）",
                              lambda f: _run_invert(f, _random_gold(seed * 2 + 22, n_texts=25, n_images=6)))],
    builds=("cnclip_edu.eval.recall.t2i_to_i2t",),
    mutants=lambda: {
        "忘了反过来（原样返回）": _invert_mistake("unchanged"),
        "每次都新建列表 out[image_id] = [text_id]（只剩最后一条描述）": _invert_mistake("overwrite"),
        "只看每条描述的第一张正例图": _invert_mistake("first_image"),
        "图片按 id 排了序（不是第一次出现的先后）": _invert_mistake("sorted_keys"),
        "每张图下的描述 id 排了序": _invert_mistake("sorted_texts"),
        "用集合收集描述 id（先后乱了）": _invert_mistake("set"),
        "边处理边 pop，清空了传进来的字典": _invert_mistake("pops"),
    },
))
