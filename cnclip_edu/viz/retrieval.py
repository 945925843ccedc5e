"""Retrieval plots: a query -> top-k image grid with hits marked, and a recall bar chart.

    from cnclip_edu.viz.retrieval import TsvImages, plot_retrieval_grid
    images = TsvImages("data/toy/test_imgs.tsv")
    fig = plot_retrieval_grid(["一个红色的圆形"], [[3000012, 3000040, ...]], images, gold=[{3000012}])

Call `cnclip_edu.viz.setup_cjk_font()` first so that the Chinese query titles render.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

HIT, MISS = "#1a9850", "#d73027"


class TsvImages(Mapping):
    """image_id -> PIL image from a `{split}_imgs.tsv`, decoded on first access (ids read up front)."""

    def __init__(self, path: str | os.PathLike):
        from cnclip_edu.data import formats

        self.path = Path(path)
        self._b64 = dict(formats.iter_imgs_tsv(self.path))
        self._cache: dict[int, object] = {}

    def __getitem__(self, image_id: int):
        from cnclip_edu.data import formats

        if image_id not in self._cache:
            if image_id not in self._b64:
                raise KeyError(f"image {image_id} is not in {self.path}")
            self._cache[image_id] = formats.decode_image(self._b64[image_id])
        return self._cache[image_id]

    def __iter__(self):
        return iter(self._b64)

    def __len__(self) -> int:
        return len(self._b64)


def plot_retrieval_grid(queries: Sequence[str], ranked_ids: Sequence[Sequence[int]],
                        images: Mapping[int, object] | Callable[[int], object],
                        gold: Sequence[set] | None = None, scores: Sequence[Sequence[float]] | None = None,
                        k: int = 5, cell: float = 1.5, title: str | None = None):
    """One row per query: its text on the left, its top-k images to the right.

    A gold match gets a green frame and a check mark, a miss a red frame (when `gold` is given);
    `scores` (cosine similarities) are printed under each image.
    """
    import matplotlib.pyplot as plt

    get = images.__getitem__ if isinstance(images, Mapping) else images
    n = len(queries)
    fig, axes = plt.subplots(n, k + 1, figsize=(cell * (k + 1) + 1.5, cell * n + 0.4 + (0.4 if title else 0)),
                             gridspec_kw={"width_ratios": [2.2] + [1] * k}, squeeze=False)
    for r, (query, ids) in enumerate(zip(queries, ranked_ids)):
        ax = axes[r, 0]
        ax.axis("off")
        ax.text(1.0, 0.5, query, ha="right", va="center", fontsize=10, wrap=True, transform=ax.transAxes)
        for c in range(k):
            ax = axes[r, c + 1]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(ids):
                ax.axis("off")
                continue
            ax.imshow(get(int(ids[c])))
            hit = gold is not None and int(ids[c]) in gold[r]
            color = HIT if hit else (MISS if gold is not None else "#888888")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3)
            label = f"#{c + 1}" + (f" {scores[r][c]:.2f}" if scores is not None else "") + (" ✓" if hit else "")
            ax.set_xlabel(label, fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_recall_bars(results: Mapping[str, Mapping[str, float]], title: str = "Recall@K"):
    """Grouped bars: results[direction] = {"r1", "r5", "r10", "mean_recall"} as fractions or percents."""
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ["r1", "r5", "r10", "mean_recall"]
    labels = ["R@1", "R@5", "R@10", "MR"]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    width = 0.8 / max(1, len(results))
    for j, (name, vals) in enumerate(results.items()):
        ys = [vals[m] for m in metrics]
        xs = np.arange(len(metrics)) + j * width
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(np.arange(len(metrics)) + width * (len(results) - 1) / 2, labels)
    ax.set_ylim(0, max(1.05, max(max(v.values()) for v in results.values()) * 1.1))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
