"""Exercise 07.2 of notebook 07 (retrieval evaluation): the chunked top-k with a running merge (what
lets exact retrieval scale past memory).

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
"""
from __future__ import annotations

from .chunk_gallery import ChunkedGallery, unstable_ties
from .core import Case, Exercise, register
from .nb07_topk import _features


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
    cases.append(Case("同分：检索库 14 条只有 4 个不同方向（同方向、不同长度），每块 5 条，k = 6",
                      lambda f: _run_chunked(f, *_tie_inputs(5, 14, 4, 10), 6, 5)))
    return cases


def _chunk_hidden(seed: int):
    import random

    rng = random.Random(seed)
    cases = []
    for kind in ("块大小整除检索库", "块大小不整除检索库（最后一块不满）", "k 等于检索库大小", "k 比一块大",
                 "同分跨块"):
        chunk = rng.randint(2, 7)
        n_chunks = rng.randint(2, 5)
        n = chunk * n_chunks + (0 if kind in ("块大小整除检索库", "k 等于检索库大小") else rng.randint(1, chunk - 1))
        k = {"k 等于检索库大小": n, "k 比一块大": min(n, chunk + rng.randint(1, 4))}.get(kind, rng.randint(1, min(n, 8)))
        q, s = rng.randint(1, 6), rng.randrange(10 ** 6)
        if kind == "同分跨块":
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
         "同分的先后要和库一样：分数相同时下标小的在前——排序用 stable=True，拼接时把下标小的那一份（之前各块的结果）放在前面。",
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
        "同分时新块排在前面（下标大的优先）": _chunk_mistake("new_first"),
        "忘了归一化": _chunk_mistake("no_norm"),
        "没有合并，只剩最后一块的 top-k": _chunk_mistake("no_merge"),
        "一次算整个 (Q, N) 矩阵再稳定排序（没有分块）": _chunk_mistake("whole"),
        "先把整个检索库读出来 (gallery[:])，再一次算完": _chunk_mistake("whole_read"),
        "排序都没写 stable=True（同分的先后全凭运气）": _chunk_mistake("unstable"),
        "块内用了稳定排序，合并时的 argsort 没写 stable=True": _chunk_mistake("unstable_merge"),
    },
))
