"""Retrieval plots: a query -> top-k image grid with hits marked, a recall bar chart, and photos at the
model's input resolution.

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
                        k: int = 5, cell: float = 1.5, title: str | None = None, digits: int = 2):
    """One row per query: its text on the left, its top-k images to the right.

    A gold match gets a green frame and a check mark, a miss a red frame and a × (when `gold` is
    given: the marks, not only the colours, tell them apart); `scores` (cosine similarities) are printed
    under each image with `digits` decimals (3 shows why #1 beat #2 when both round to the same 0.95).
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
            color = HIT if hit else (MISS if gold is not None else "#555555")   # dark enough for a projector
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3)
            mark = (" ✓" if hit else " ×") if gold is not None else ""
            label = f"#{c + 1}" + (f" {scores[r][c]:.{digits}f}" if scores is not None else "") + mark
            ax.set_xlabel(label, fontsize=9, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_recall_bars(results: Mapping[str, Mapping[str, float]], title: str = "Recall@K",
                     chance: Mapping[str, Mapping[str, float]] | None = None):
    """Grouped bars: results[direction] = {"r1", "r5", "r10", "mean_recall"} as fractions or percents.

    chance[direction] = {"r1", "r5", "r10"} (same unit), optional: a short black line across each of
    that direction's bars at the random-ranking value (its mean for MR), so "above chance" is visible.
    Fractions get a 0-1 axis with room for the value labels; more than three bar groups put the legend
    below the axes, where it hides no bar.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    metrics = ["r1", "r5", "r10", "mean_recall"]
    labels = ["R@1", "R@5", "R@10", "MR\n（前三者的平均）"]
    many = len(results) > 3
    fig, ax = plt.subplots(figsize=(8, 3.6) if many else (6.5, 3.2))
    width = 0.8 / max(1, len(results))
    for j, (name, vals) in enumerate(results.items()):
        ys = [vals[m] for m in metrics]
        xs = np.arange(len(metrics)) + j * width
        bars = ax.bar(xs, ys, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        if chance and name in chance:
            base = [chance[name][m] for m in metrics[:3]]
            base.append(sum(base) / 3)                  # MR is the mean of R@1, R@5, R@10
            ax.hlines(base, xs - width * 0.45, xs + width * 0.45, colors="black", linewidth=2,
                      label=None if ax.collections else "随机排序")   # one legend entry
    ax.set_xticks(np.arange(len(metrics)) + width * (len(results) - 1) / 2, labels)
    top = max(max(v[m] for m in metrics) for v in results.values())
    if top <= 1:                                       # fractions: recall is at most 1, no tick above it
        ax.set_ylim(0, 1.1)
        ax.set_yticks(np.arange(0, 1.01, 0.2))
        ax.set_ylabel("召回率 (recall)")
    else:
        ax.set_ylim(0, top * 1.1)
    ax.set_title(title)
    if many:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=len(results) + 1, fontsize=8)
    else:
        ax.legend()
    fig.tight_layout()
    return fig


def plot_at_resolution(images: Mapping[int, object], titles: Mapping[int, str], res: int, cols: int = 6,
                       limit: int = 18, title: str | None = None):
    """What a `res`-pixel model sees: pairs of rows, the photos on top and the same photos resized to
    res x res (bicubic, no crop, as the eval transform) below. At most `limit` photos, in the order of
    `images` (image id -> PIL image); `titles[image id]` names each one."""
    import matplotlib.pyplot as plt
    from PIL import Image

    picks = list(images)[:limit]
    n_rows = 2 * max(1, (len(picks) + cols - 1) // cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(2.0 * cols, 2.1 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, iid in enumerate(picks):
        img, top, c = images[iid], 2 * (k // cols), k % cols
        axes[top, c].imshow(img)
        axes[top, c].set_title(titles[iid], fontsize=9)
        axes[top + 1, c].imshow(img.resize((res, res), Image.BICUBIC))
        axes[top + 1, c].set_title(f"{res}×{res}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_similarity_matrix(images: Sequence[object], texts: Sequence[str], values, title: str | None = None,
                           value_label: str = "概率", wrap: int = 7, cell: float = 1.1, cmap: str = "viridis"):
    """A heatmap of images (rows) x texts (columns), each image drawn at the start of its own row.

    images: PIL images or (H, W, 3) arrays, one per row; texts: one per column, wrapped every `wrap`
    characters under the matrix; values: (rows, columns) array-like in [0, 1] (e.g. softmax
    probabilities). The number in each cell is black on light colours and white on dark ones, so it
    stays readable over the whole colour scale. The layout is fixed in inches (no tight_layout), so
    that a thumbnail is exactly one row high.
    """
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    vals = np.asarray(values, dtype=float)
    n_rows, n_cols = vals.shape
    if len(images) != n_rows or len(texts) != n_cols:
        raise ValueError(f"values are {vals.shape} but there are {len(images)} images and {len(texts)} texts")
    labels = ["\n".join(textwrap.wrap(t, wrap)) or t for t in texts]
    n_lines = max(label.count("\n") + 1 for label in labels)
    thumb = 0.9 * cell                                             # inches
    left, right, top = thumb + 0.75, 1.2, 0.55 if title else 0.2
    bottom = 0.2 + 0.19 * n_lines
    width, height = left + cell * n_cols + right, bottom + cell * n_rows + top
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([left / width, bottom / height, cell * n_cols / width, cell * n_rows / height])
    cax = fig.add_axes([(left + cell * n_cols + 0.15) / width, bottom / height, 0.18 / width, cell * n_rows / height])
    im = ax.imshow(vals, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    colormap = plt.get_cmap(cmap)
    for r in range(n_rows):
        for c in range(n_cols):
            red, green, blue, _ = colormap(float(np.clip(vals[r, c], 0, 1)))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5  # perceived brightness of the cell
            ax.text(c, r, f"{vals[r, c]:.2f}", ha="center", va="center", fontsize=10,
                    color="black" if light else "white")
    for r, img in enumerate(images):  # at (-0.5, r): the left edge of row r, in the heatmap's own coordinates
        arr = np.asarray(img)
        box = OffsetImage(arr, zoom=0.92 * thumb * 72 / arr.shape[0])  # zoom is per point: dpi-independent
        ax.add_artist(AnnotationBbox(box, (-0.5, r), xybox=(-4, 0), boxcoords="offset points",
                                     box_alignment=(1.0, 0.5), frameon=False, annotation_clip=False))
    ax.set_yticks(range(n_rows), [f"图 {i}" for i in range(n_rows)])
    ax.tick_params(axis="y", length=0, pad=thumb * 72 + 8)  # points: past the thumbnails
    ax.set_xticks(range(n_cols), labels, fontsize=9)
    ax.tick_params(axis="x", length=0)
    fig.colorbar(im, cax=cax, label=value_label)
    if title:
        ax.set_title(title)
    return fig
