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


def plot_template_curves(oks: Mapping[str, np.ndarray], title: str = "", gap=None):
    """Top row, one panel per task: top-1 (%) using the first 1, 2, ..., T templates (axis capped at 100 %).
    Bottom row: each step's paired difference d (images; the step that adds template k sits at x = k).

    oks[task]: (T, N) booleans (`zeroshot.correct_vs_templates`). Each step t -> t+1 is a paired comparison
    on the same N images (`eval.paired.step_gaps`, with `gap` = the paired comparison to use, e.g. the
    student's `paired_gap`). Where m >= SMALL_M images flip, d gets a grey bar of +-2 sqrt(m): the bar belongs
    to the tested quantity, and the step is beyond noise when the bar misses 0. With fewer flips no bar is
    drawn (the normal approximation is too rough there; the exact sign test decides). Steps beyond noise get
    a ring in both rows (green: more right, red: fewer), so the figure and a printed list cannot disagree.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ..eval.paired import SMALL_M, step_gaps

    fig, axes = plt.subplots(2, len(oks), figsize=(2.6 * len(oks) + 0.6, 5.4), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for col, (task, ok) in enumerate(oks.items()):
        ax, axd = axes[0, col], axes[1, col]
        ok = np.asarray(ok, dtype=bool)                                   # (T, N)
        n_templates, n = ok.shape
        acc = 100 * ok.mean(axis=1)                                       # (T,) percent
        xs = np.arange(1, n_templates + 1)
        ax.plot(xs, acc, marker="o", color="#4575b4", zorder=2, clip_on=False)
        axd.axhline(0, color="black", lw=0.8)
        d_lo, d_hi = -1.0, 1.0                                            # the bottom row's range: 0, every d and bar
        for k, (d, m, beyond) in enumerate(step_gaps(ok, gap), start=2):  # the step that adds template k
            axd.plot([k], [d], marker="o", color="#4575b4", ls="none", zorder=2,
                     mfc="#4575b4" if m >= SMALL_M else "white")            # hollow: m < SMALL_M, no bar (sign test)
            bar = 2 * np.sqrt(m) if m >= SMALL_M else 0.0
            if bar:
                axd.errorbar([k], [d], yerr=bar, fmt="none", ecolor="gray", capsize=3, lw=1, zorder=1)
            d_lo, d_hi = min(d_lo, d - bar), max(d_hi, d + bar)
            if beyond:
                ring = dict(marker="o", ms=11, mfc="none", mec="#1a9850" if d > 0 else "#d73027", mew=1.8, zorder=3,
                            clip_on=False)
                ax.plot([k], [acc[k - 1]], **ring)
                axd.plot([k], [d], **ring)
        margin = 0.12 * (d_hi - d_lo)
        axd.set_ylim(d_lo - margin, d_hi + margin)
        lo, hi = acc.min(), acc.max()
        pad = max(0.6, (10 - (hi - lo)) / 2)                              # at least 10 points high
        bottom, top = max(0.0, lo - pad), min(100.0, hi + pad)           # accuracy cannot pass 100 %
        ax.set_ylim(bottom, top)
        ax.set_yticks([t for t in ax.get_yticks() if bottom <= t <= 100])
        ax.set_title(f"{task}（{n_templates} 个模板，{n} 张图）", fontsize=9)
        for a in (ax, axd):
            a.set_xticks(xs)
            a.set_xlim(0.5, n_templates + 0.5)
            a.grid(axis="y", alpha=0.3)
        axd.set_xlabel("用前几个模板")
    axes[0, 0].set_ylabel("top-1 准确率 (%)")
    axes[1, 0].set_ylabel("这一步的 d（张）")
    handles = [Line2D([], [], color="gray", marker="_", ms=8, lw=1,
                      label=f"d ± 2√m（m ≥ {SMALL_M} 时画，碰不到 0 线 = 超出噪声）"),
               Line2D([], [], ls="none", marker="o", color="#4575b4", mfc="white", label=f"m < {SMALL_M}：精确符号检验"),
               Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec="#1a9850", mew=1.8, label="这一步超出噪声地变好"),
               Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec="#d73027", mew=1.8, label="这一步超出噪声地变差")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_class_probs(image, labels: Sequence[str], probs: Sequence[float], title: str = "",
                     xlabel: str = "概率 (probability)", xlim: tuple[float, float] = (0.0, 1.0),
                     digits: int | None = None, marks: Mapping[int, str] | None = None):
    """The image on the left, a horizontal bar per label (its probability, or any score such as a cosine
    with `xlabel` and `xlim` set to its range) on the right; `digits` of the printed values (default: 2,
    or 3 on a range narrower than 0.5). `marks[i]` (e.g. "真实") is appended to label i, whose bar is
    drawn in orange instead of blue."""
    import matplotlib.pyplot as plt

    marks = marks or {}
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(7, max(2.2, 0.35 * len(labels) + 0.8)),
                                 gridspec_kw={"width_ratios": [1, 2]})
    a0.imshow(image)
    a0.axis("off")
    order = np.argsort(probs)
    lo, hi = xlim
    names = [f"{labels[i]}（{marks[i]}）" if i in marks else labels[i] for i in order]
    a1.barh(names, [probs[i] - lo for i in order], left=lo,
            color=["#f28e2b" if i in marks else "#4575b4" for i in order])
    a1.set_xlim(lo, hi)
    a1.set_xlabel(xlabel)
    if digits is None:
        digits = 2 if hi - lo >= 0.5 else 3                               # a narrow range needs the third digit
    for y, i in enumerate(order):
        a1.text(min(probs[i] + 0.02 * (hi - lo), lo + 0.9 * (hi - lo)), y, f"{probs[i]:.{digits}f}", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_input_grid(paths: Sequence, rows: Sequence[Sequence[int]], targets: Sequence[int], preds: Sequence[int],
                    classnames: Sequence[str], size: int, title: str = "", cols: int = 4,
                    notes: Mapping[int, str] | None = None):
    """Images as the model sees them (resized to `size` x `size`, drawn without smoothing), one row of the
    grid per list of image indices in `rows`; each titled "真实→预测", or "真实（认对）" when right,
    followed by `notes[i]` (e.g. "大"/"小") when given."""
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(len(rows), cols, figsize=(1.5 * cols, 1.6 * len(rows)), squeeze=False)
    for row, idx in zip(axes, rows):
        for ax in row:
            ax.axis("off")
        for ax, i in zip(row, idx):
            img = Image.open(paths[i]).convert("RGB").resize((size, size), Image.BICUBIC)
            ax.imshow(img, interpolation="nearest")                         # nearest: show the real pixels
            t, p = classnames[targets[i]], classnames[preds[i]]
            note = f" {notes[i]}" if notes and i in notes else ""
            ax.set_title((f"{t}（认对）" if t == p else f"{t}→{p}") + note, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
