"""`cc.search`: the k most similar gallery items for each query, by cosine similarity.

    scores, indices = cc.search(text_features, image_features, k=5)   # (Q, 5), (Q, 5), best first

The one call a library user needs after `encode_image` / `encode_text`: the features come out of the
model unnormalized (as cn_clip's do), and forgetting to normalize them is the usual bug — a gallery
item with a large norm then wins every query. So `search` normalizes both sides itself, then runs the
exact blockwise top-k of `eval/topk.py` (memory O(block), ties broken by the lower gallery index,
the same order as cn_clip's retrieval scripts).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

Features = Union[torch.Tensor, np.ndarray]


def _as_matrix(x: Features, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    elif isinstance(x, np.ndarray):
        x = x.astype(np.float32, copy=False)
    else:
        raise TypeError(f"search: {name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if x.ndim == 1:
        x = x[None]  # one feature vector -> (1, D)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"search: {name} must have shape (N, D) with N, D >= 1, got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise ValueError(f"search: {name} contains NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"search: {name} row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is all zeros "
                         f"(a zero vector has no direction to compare)")
    return x / norms


def search(queries: Features, gallery: Features, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (scores float32 (Q, k'), indices int64 (Q, k')), k' = min(k, N): cosine similarities, best first.

    queries (Q, D) or (D,), gallery (N, D): features from `encode_text` / `encode_image`, normalized or not.
    """
    from .topk import topk_predictions

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"search: k must be an int >= 1, got {k!r}")
    q, g = _as_matrix(queries, "queries"), _as_matrix(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"search: queries have {q.shape[1]} dimensions, gallery {g.shape[1]}: "
                         f"features of two different models?")
    scores, indices = topk_predictions(q, g, k=k)
    return torch.from_numpy(scores), torch.from_numpy(indices)
