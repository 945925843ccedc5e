"""eval/ivf.py: the minimal torch IVF of notebook 07 (the reference of exercise 07.7) finds what faiss's
IndexIVFFlat finds with the same centres, counts the same inner products as `topk.ivf_dot_products`, and
is exact when every cell is probed."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnclip_edu.eval import topk
from cnclip_edu.eval.ivf import assign_cells, faiss_centres, ivf_search


def _clustered(n: int, seed: int, dim: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    x = centres[rng.integers(0, 12, n)] + 0.4 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_every_cell_probed_is_exact_search():
    gal, qry = torch.from_numpy(_clustered(300, 0)), torch.from_numpy(_clustered(20, 1))
    centres = torch.randn(7, 16, generator=torch.Generator().manual_seed(0))
    idx, dots = ivf_search(qry, gal, centres, nprobe=7, k=10)
    _, exact = topk.topk_predictions(qry.numpy(), gal.numpy(), 10)
    assert np.array_equal(idx.numpy(), exact)
    assert dots.tolist() == [7 + 300] * 20


def test_cells_rank_by_inner_product_not_distance():
    centres = torch.tensor([[1.0, 0.0], [3.0, 0.5]])      # the long centre wins on inner product, not on distance
    v = torch.tensor([[1.0, 0.0]])
    assert assign_cells(v, centres).tolist() == [1]
    assert torch.cdist(v, centres).argmin().item() == 0


def test_unfilled_slots_are_minus_one():
    gal = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    idx, dots = ivf_search(torch.tensor([[1.0, 0.0]]), gal, centres, nprobe=1, k=3)
    assert idx.tolist() == [[0, -1, -1]] and dots.tolist() == [3]


def test_same_results_and_counts_as_faiss_with_its_centres():
    faiss = pytest.importorskip("faiss")
    gal, qry = _clustered(2000, 2), _clustered(50, 3)
    index = topk.build_faiss_index(gal, "faiss-ivf")
    centres = faiss_centres(index)
    assert centres.shape == (faiss.extract_index_ivf(index).nlist, 16)
    for nprobe in (1, 3):
        index.nprobe = nprobe
        _, want = topk.topk_predictions(qry, gal, 10, "faiss-ivf", index=index)
        got, dots = ivf_search(torch.from_numpy(qry), torch.from_numpy(gal), centres, nprobe, 10)
        assert (got.numpy() == want).mean() > 0.99
        n_centres, scanned = topk.ivf_dot_products(index, qry)
        assert dots.float().mean().item() == pytest.approx(n_centres + scanned, rel=1e-3)
