"""Zero-shot plots: confusion matrix, accuracy vs number of prompt templates, class probabilities.

Call `cnclip_edu.viz.setup_cjk_font()` first so that Chinese class names render.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def plot_confusion_matrix(confusion: np.ndarray, classnames: Sequence[str], normalize: bool = True,
                          title: str = "混淆矩阵 (confusion matrix)", ax=None, row_names: Sequence[str] | None = None,
                          column_groups: Sequence[str] | None = None):
    """Rows = true class, columns = predicted class; normalized per row (recall per class) by default.

    row_names: when only some classes have test images (the held-out images of a 48-way test), the
    matrix is (len(row_names), len(classnames)): those rows against every class that can be predicted.
    Non-zero cells get their value written in when there are at most 12 rows.
    column_groups: one group name per column (e.g. the colour of "红色的圆形" while `classnames` holds only
    the shape): runs of equal names are written once above the matrix and separated by lines, so 48
    columns read as 8 labelled groups of 6 short names instead of 48 long rotated ones.
    """
    import matplotlib.pyplot as plt

    m = confusion.astype(float)
    rows = list(row_names) if row_names is not None else list(classnames)
    if m.shape != (len(rows), len(classnames)):
        raise ValueError(f"confusion is {m.shape}, expected ({len(rows)}, {len(classnames)}) (rows x classes)")
    if normalize:
        m = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    n_rows, n_cols = m.shape
    wide = n_cols > 16   # many classes to predict: narrow columns, cells stretched to fill the axes
    if ax is None:
        size = (0.28 * n_cols + 3, 0.4 * n_rows + 2.4) if wide else (max(4.0, 0.45 * n_cols + 2) + 1,
                                                                      max(2.5, 0.45 * n_rows + 1.8))
        _, ax = plt.subplots(figsize=size)
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1 if normalize else None, aspect="auto" if wide else "equal")
    ax.figure.colorbar(im, ax=ax, fraction=0.02 if wide else 0.046, pad=0.01 if wide else 0.04)
    ax.set_xticks(range(n_cols), classnames, rotation=90 if wide else 60, ha="center" if wide else "right",
                  fontsize=9 if column_groups is not None else 7 if wide else 8)
    if column_groups is not None:
        if len(column_groups) != n_cols:
            raise ValueError(f"column_groups has {len(column_groups)} names for {n_cols} columns")
        starts = [j for j in range(n_cols) if j == 0 or column_groups[j] != column_groups[j - 1]]
        for a, b in zip(starts, starts[1:] + [n_cols]):
            if a:
                ax.axvline(a - 0.5, color="#999999", linewidth=0.8)
            ax.text((a + b - 1) / 2, -0.6, column_groups[a], ha="center", va="bottom", fontsize=10)
    ax.set_yticks(range(n_rows), rows, fontsize=8)
    ax.set_xlabel("预测 (predicted)")
    ax.set_ylabel("真实 (true)")
    if n_rows <= 12:
        for i in range(n_rows):
            for j in range(n_cols):
                if m[i, j] > 0:
                    ax.text(j, i, f"{m[i, j]:.2f}" if normalize else int(m[i, j]), ha="center", va="center",
                            fontsize=8 if wide else 7, color="white" if m[i, j] > 0.6 * m.max() else "black")
    ax.set_title(title, pad=18 if column_groups is not None else None)
    ax.figure.tight_layout()
    return ax.figure


def plot_accuracy_vs_templates(curves: Mapping[str, Sequence[float]], title: str = "准确率 vs 模板数量"):
    """curves[task] = accuracy using the first 1, 2, ..., T templates."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, accs in curves.items():
        ax.plot(range(1, len(accs) + 1), accs, marker="o", label=name)
    ax.set_xlabel("模板数量 (number of templates)")
    ax.set_ylabel("top-1 准确率 (accuracy)")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_class_probs(image, labels: Sequence[str], probs: Sequence[float], title: str = ""):
    """The image on the left, a horizontal bar per label (its probability) on the right."""
    import matplotlib.pyplot as plt

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7, max(2.2, 0.35 * len(labels) + 0.8)),
                                 gridspec_kw={"width_ratios": [1, 2]})
    a0.imshow(image)
    a0.axis("off")
    order = np.argsort(probs)
    a1.barh([labels[i] for i in order], [probs[i] for i in order], color="#4575b4")
    a1.set_xlim(0, 1)
    a1.set_xlabel("概率 (probability)")
    for y, i in enumerate(order):
        a1.text(min(probs[i] + 0.02, 0.9), y, f"{probs[i]:.2f}", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
