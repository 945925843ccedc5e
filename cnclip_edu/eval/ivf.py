"""A minimal IVF (inverted file) search in torch: what faiss's `IndexIVFFlat` does, small enough to read.

Given cell centres (from k-means; faiss's trained quantizer in notebook 07), every gallery vector goes into
the cell whose centre has the largest inner product with it (the "inverted lists": per cell, the ids of its
vectors). A query is compared with every centre, then only with the vectors of its `nprobe` best cells.
Exact when every cell is probed; otherwise a true neighbour in an unprobed cell is missed. Written for
teaching and for checking exercise 07.7 (tests/test_ivf.py compares it with faiss on the same centres).
"""
from __future__ import annotations

import torch


def assign_cells(vectors: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N,) cell of each vector: the centre with the largest inner product (the first one on equal scores).

    faiss's inner-product IVF trains spherical k-means (each round's mean centres are renormalised), so its
    centres are unit length, and then the largest inner product is also the nearest centre in Euclidean
    distance. Plain k-means centres (means of points) have unequal lengths, and there the two differ: faiss
    ranks cells by inner product, and so does this (exercise 07.7's check uses unequal-length centres)."""
    return (vectors @ centres.T).argmax(dim=1)                      # (N, C) -> (N,)


def ivf_search(queries: torch.Tensor, gallery: torch.Tensor, centres: torch.Tensor, nprobe: int,
               k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k gallery indices by inner product, searching only each query's `nprobe` best cells.

    queries (Q, D), gallery (N, D), centres (C, D); 1 <= nprobe <= C. Returns (indices (Q, k) int64,
    best first, equal scores by the lower gallery index, -1 in the slots the probed cells cannot fill;
    dots (Q,) int64: the inner products each query computed = C centres + the vectors in its cells)."""
    cell = assign_cells(gallery, centres)                           # (N,)
    n_cells = len(centres)
    out = torch.full((len(queries), k), -1, dtype=torch.long)
    dots = torch.empty(len(queries), dtype=torch.long)
    for qi, q in enumerate(queries):
        # the nprobe best cells; a stable sort keeps the lower cell first on equal scores
        probed = torch.sort(centres @ q, descending=True, stable=True).indices[:nprobe]
        cand = torch.isin(cell, probed).nonzero().squeeze(1)       # gallery ids in those cells, ascending
        scores = gallery[cand] @ q                                   # (M,)
        order = torch.sort(scores, descending=True, stable=True).indices[:k]
        out[qi, :len(order)] = cand[order]
        dots[qi] = n_cells + len(cand)
    return out, dots


def faiss_centres(index) -> torch.Tensor:
    """(nlist, D) the k-means centres a trained faiss IVF index holds (its quantizer's vectors), as a tensor."""
    from .topk import _require_faiss

    ivf = _require_faiss().extract_index_ivf(index)
    return torch.from_numpy(ivf.quantizer.reconstruct_n(0, ivf.nlist))
