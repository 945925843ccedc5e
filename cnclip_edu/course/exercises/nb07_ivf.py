"""Exercise 07.7 of notebook 07 (retrieval evaluation): a minimal IVF search, the approximate index of part 6.

07.7 is compared with the library's `eval.ivf.ivf_search` (which tests/test_ivf.py checks against faiss's
IndexIVFFlat on the same centres). The centres are given (k-means is not the lesson); the student builds the
inverted lists, the probing of the nprobe best cells, the top-k over their vectors, and the count of inner
products. The centres have very different lengths, so ranking cells by Euclidean distance instead of inner
product shows; a hand case has two equal scores in two different cells probed in the "wrong" order, so
gathering candidates cell by cell breaks the lower-index-first rule; another has two centres tied at the
nprobe cut (the lower-numbered cell wins); cells smaller than k show the -1 padding.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.7 minimal IVF
def _library_ivf(queries, gallery, centres, nprobe, k):
    from cnclip_edu.eval.ivf import ivf_search

    return ivf_search(queries, gallery, centres, nprobe, k)


def _run_ivf(answer, queries, gallery, centres, nprobe: int, k: int) -> dict:
    idx, dots = answer(queries.clone(), gallery.clone(), centres.clone(), nprobe, k)
    return {"下标 (Q, k)": [[int(x) for x in row] for row in idx],
            "每条查询的内积个数": [int(d) for d in dots]}


def _hand():
    """q0's best cell is 1, then 0: gallery 0 (cell 0) and 1 (cell 1) tie at 0.6; gallery 2 is in cell 2."""
    import torch

    queries = torch.tensor([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.0]])
    gallery = torch.tensor([[0.6, 0.8, 0.0], [0.6, 0.0, 0.8], [-1.0, 0.0, 0.0], [0.8, 0.6, 0.0]])
    centres = torch.tensor([[0.1, 1.0, 0.0], [0.5, 0.0, 1.0], [-1.0, 0.0, 0.0]])
    return queries, gallery, centres


def _tied_centres():
    """Two centres tie for the query at the nprobe = 1 cut: the lower-numbered cell must be the one probed."""
    import torch

    queries = torch.tensor([[1.0, 0.0, 0.0]])
    gallery = torch.tensor([[0.6, 0.8, 0.0], [0.6, 0.0, 0.8]])      # gallery 0 in cell 0, gallery 1 in cell 1
    centres = torch.tensor([[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]])      # both 0.5 with the query
    return queries, gallery, centres


def _clustered(n_queries: int, n_gallery: int, dim: int, n_cells: int, seed: int):
    """Unit-length queries and gallery in clusters; centres near them but of lengths 0.2 to 3."""
    import torch

    g = torch.Generator().manual_seed(seed)
    modes = torch.randn(n_cells, dim, generator=g)

    def draw(n):
        x = modes[torch.randint(0, n_cells, (n,), generator=g)] + 0.7 * torch.randn(n, dim, generator=g)
        return x / x.norm(dim=1, keepdim=True)

    centres = (modes + 0.3 * torch.randn(n_cells, dim, generator=g)) * (0.2 + 2.8 * torch.rand(n_cells, 1, generator=g))
    return draw(n_queries), draw(n_gallery), centres


def _ivf_cases():
    q, g, c = _hand()
    return [Case("手工：两个同分的向量在两个簇里，先探查的簇里那个下标大；k = 4 填不满", lambda f: _run_ivf(f, q, g, c, 2, 4)),
            Case("手工：只探查 1 个簇", lambda f: _run_ivf(f, q, g, c, 1, 2)),
            Case("手工：两个簇中心和查询的内积相同，只能探查一个", lambda f: _run_ivf(f, *_tied_centres(), 1, 2)),
            Case("6 条查询、检索库 80 条、8 维、6 个簇（中心长短不一），nprobe = 2、k = 5",
                 lambda f: _run_ivf(f, *_clustered(6, 80, 8, 6, 0), 2, 5)),
            Case("4 条查询、检索库 30 条、5 个簇，nprobe = 1、k = 10（一个簇常常不够 10 个）",
                 lambda f: _run_ivf(f, *_clustered(4, 30, 6, 5, 1), 1, 10)),
            Case("探查全部 4 个簇（应当等于精确检索）", lambda f: _run_ivf(f, *_clustered(5, 40, 8, 4, 2), 4, 6))]


def _ivf_hidden(seed: int):
    import random

    rng = random.Random(seed)
    out = [Case("手工：两个簇中心同分", lambda f: _run_ivf(f, *_tied_centres(), 1, 2))]
    for kind in ("中心长短不一", "簇里的向量不够 k 个", "探查全部簇", "手工：同分的向量在不同的簇里"):
        if kind.startswith("手工"):
            out.append(Case(kind, lambda f: _run_ivf(f, *_hand(), 2, 3)))
            continue
        c = rng.randint(3, 8)
        n, d = rng.randint(6 * c, 12 * c), rng.choice((6, 8, 12))
        nprobe = {"探查全部簇": c, "簇里的向量不够 k 个": 1}.get(kind, rng.randint(2, c - 1))
        k = 20 if kind == "簇里的向量不够 k 个" else rng.randint(3, 8)
        out.append(Case(kind, lambda f, a=(rng.randint(2, 6), n, d, c, rng.randrange(10 ** 6)), p=nprobe, k=k:
                        _run_ivf(f, *_clustered(*a), p, k)))
    return out


def _ivf_mistake(kind: str):
    def ivf_search(queries, gallery, centres, nprobe, k):
        import torch

        def cell_scores(x):                                            # (M, C): larger = better cell
            return -torch.cdist(x, centres) if kind == "distance" else x @ centres.T

        cell = cell_scores(gallery).argmax(dim=1)                      # (N,)
        out = torch.full((len(queries), k), 0 if kind == "pad_zero" else -1, dtype=torch.long)
        dots = torch.empty(len(queries), dtype=torch.long)
        for qi, q in enumerate(queries):
            order = torch.sort(cell_scores(q[None])[0], descending=kind != "worst_cells", stable=True).indices
            if kind == "flip":                                         # ascending, then reversed: ties go to the higher cell
                order = torch.sort(cell_scores(q[None])[0], stable=True).indices.flip(0)
            probed = order[:1] if kind == "one_cell" else order[:nprobe]
            if kind == "whole":
                cand = torch.arange(len(gallery))
            elif kind == "cell_by_cell":                               # candidates in probing order
                cand = torch.cat([(cell == c).nonzero().squeeze(1) for c in probed])
            else:
                cand = torch.isin(cell, probed).nonzero().squeeze(1)
            best = torch.sort(gallery[cand] @ q, descending=True, stable=True).indices[:k]
            out[qi, :len(best)] = best if kind == "positions" else cand[best]
            dots[qi] = len(cand) + (0 if kind == "no_centres" else len(centres))
        return out, dots
    return ivf_search


register(Exercise(
    id="07.7", title="最小的 IVF：倒排表、探查最好的 nprobe 个簇、只在簇里找 top-k", points=3,
    hint="先把检索库的每个向量放进一个簇（和它内积最大的那个中心）；每条查询先和所有中心比，选出最好的 nprobe 个簇，"
         "再只和这些簇里的向量比，取前 k 个，交回的是它们在整个检索库里的下标。内积个数把和中心比的那几次也算上。"
         "常见错误：按欧氏距离选簇（中心模长不一时和内积不同）、交回了候选列表里的位置、一簇一簇地拼候选（同分时先后就不是下标小的在前）、"
         "候选不够 k 个时补 0、内积个数漏了簇中心。",
    reference=_library_ivf,
    cases=_ivf_cases,
    hidden=_ivf_hidden,
    builds=("cnclip_edu.eval.ivf.ivf_search", "cnclip_edu.eval.ivf.assign_cells"),
    mutants=lambda: {
        "按欧氏距离选簇、分簇（中心长短不一时和内积不同）": _ivf_mistake("distance"),
        "交回的是候选列表里的位置，不是检索库下标": _ivf_mistake("positions"),
        "一簇一簇地拼候选（同分时先探查的簇在前）": _ivf_mistake("cell_by_cell"),
        "候选不够 k 个时补 0（不是 -1）": _ivf_mistake("pad_zero"),
        "内积个数漏了和簇中心比的那几次": _ivf_mistake("no_centres"),
        "不管 nprobe，只探查最好的 1 个簇": _ivf_mistake("one_cell"),
        "探查了最差的 nprobe 个簇（升序）": _ivf_mistake("worst_cells"),
        "升序排好再倒过来选簇（中心同分时编号大的在前）": _ivf_mistake("flip"),
        "在整个检索库里找（没用倒排表）": _ivf_mistake("whole"),
    },
))
