"""Figures of notebook 05 (data): Chinese captions wrapped as titles, and where a sample's time goes.

    from cnclip_edu.viz.data import wrap_caption, plot_step_bar
    ax.set_title(wrap_caption("左边是一个大大的绿色菱形，右边是一个粉色的小小菱形"))
    fig = plot_step_bar({"解码": 300e-6, "变换": 500e-6}, title="一条样本")   # seconds per step

Why a wrapper of our own: Chinese has no spaces, so `textwrap` cuts anywhere, often inside a word
("黑|色"). `wrap_caption` prefers to break after punctuation, then before 和/在/位于/还, then after 的.
"""
from __future__ import annotations

from typing import Mapping

_BREAK_AFTER = "，、；："          # a line may end after these (and may run one character long to do so)
_BREAK_BEFORE = "和在位还"          # a line may end before these conjunctions / prepositions
_NO_LINE_START = "，、。；：！？）"  # punctuation never starts a line


def wrap_caption(text: str, width: int = 12) -> str:
    """`text` in lines of about `width` characters, joined by newlines, cut between words where it can.
    A last line of a single character is not made: a text only one longer than `width` stays whole."""
    lines = []
    while len(text) > width + 1:
        window = range(width // 2, width + 1)                                  # cut after the k-th character
        good = [k for k in range(width // 2, width + 2) if text[k - 1] in _BREAK_AFTER]
        good += [k for k in window if text[k] in _BREAK_BEFORE and k not in good]
        good.sort()
        after_de = [k for k in window if text[k - 1] == "的"]
        cut = (good or after_de or [width])[-1]
        while cut < len(text) and text[cut] in _NO_LINE_START:
            cut += 1
        lines.append(text[:cut])
        text = text[cut:]
    return "\n".join(lines + [text] if text else lines)


def plot_step_bar(steps: Mapping[str, float], title: str | None = None, colors: Mapping[str, str] | None = None):
    """-> matplotlib Figure: one horizontal bar, split into the steps (seconds each, drawn in µs) in the
    given order, each segment labelled with its share when it is wide enough, and a legend with the times.
    Chinese labels (calls setup_cjk_font)."""
    import matplotlib.pyplot as plt

    from . import setup_cjk_font

    from matplotlib.colors import to_rgb

    setup_cjk_font()
    total = sum(steps.values())
    if total <= 0:
        raise ValueError("the steps take no time")
    fig, (ax, legend_ax) = plt.subplots(2, 1, figsize=(10, 3.2), gridspec_kw=dict(height_ratios=[1, 1.1]))
    palette = plt.get_cmap("tab10")
    left = 0.0
    for k, (name, seconds) in enumerate(steps.items()):
        us = seconds * 1e6
        color = (colors or {}).get(name, palette(k % 10))
        ax.barh([0], [us], left=left, color=color, edgecolor="white",
                label=f"{name}：{us:.1f} µs（{seconds / total:.1%}）")
        if seconds / total >= 0.06:
            r, g, b = to_rgb(color)
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"   # dark text on light segments
            ax.text(left + us / 2, 0, f"{seconds / total:.0%}", ha="center", va="center", fontsize=9, color=ink)
        left += us
    ax.set_xlim(0, left)
    ax.set_yticks([])
    ax.set_xlabel(f"每条样本的平均 CPU 时间 (µs)，合计 {total * 1e6:.0f} µs")
    legend_ax.axis("off")
    legend_ax.legend(*ax.get_legend_handles_labels(), loc="center", ncol=2, fontsize=9, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def to_image(x):
    """Undo the CLIP normalisation for drawing: (3, R, R) tensor -> (R, R, 3) numpy array in 0..1."""
    import torch

    from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD

    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    return (x * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def plot_crop_boxes(pil, resolution: int, cfg=None, seeds=range(1, 6), title: str | None = None, pad: int = 6):
    """-> Figure, 3 rows: the crop box `train_transform(resolution, cfg)` draws for each seed, on the stored image
    (padded by `pad` white pixels, its border a thin grey line, so a box along the edge shows); the augmented image;
    its mean absolute difference to the eval image (colour bar 0-0.6). The box is the transform's first random draw,
    so `torch.manual_seed(seed)` before `RandomResizedCrop.get_params` finds the box the transform then uses."""
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    from matplotlib.patches import Rectangle
    from torchvision import transforms as T

    from cnclip_edu.data.augment import AugmentConfig, train_transform
    from cnclip_edu.data.transforms import image_transform

    from . import setup_cjk_font

    setup_cjk_font()
    cfg = cfg or AugmentConfig()
    aug = train_transform(resolution, cfg)
    eval_img = to_image(image_transform(resolution)(pil))
    seeds = list(seeds)
    fig, axes = plt.subplots(3, len(seeds) + 1, figsize=(2.5 * (len(seeds) + 1), 8.6))
    padded = np.pad(np.asarray(pil.convert("RGB")), ((pad, pad), (pad, pad), (0, 0)), constant_values=255)
    border = dict(fill=False, ec="0.45", lw=0.8)
    axes[0, 0].imshow(padded)
    axes[0, 0].set_title(f"原图 {pil.width}×{pil.height} px")
    axes[0, 0].add_patch(Rectangle((pad - 0.5, pad - 0.5), pil.width, pil.height, **border))
    axes[1, 0].imshow(eval_img)
    axes[1, 0].set_title(f"评测变换 (eval) {resolution} px")
    axes[2, 0].axis("off")
    axes[2, 0].text(0.5, 0.5, "下排颜色：\n增强结果与评测图\n逐像素的平均绝对差\n（RGB 取值 0–1，\n色标 0–0.6）",
                    ha="center", va="center", fontsize=10, transform=axes[2, 0].transAxes)
    diff = None
    for j, seed in enumerate(seeds, start=1):
        torch.manual_seed(seed)
        top, left, h, w = T.RandomResizedCrop.get_params(pil, list(cfg.scale), list(cfg.ratio))
        torch.manual_seed(seed)                          # same seed -> the transform draws the same box
        x = to_image(aug(pil))
        axes[0, j].imshow(padded)
        axes[0, j].add_patch(Rectangle((pad - 0.5, pad - 0.5), pil.width, pil.height, **border))
        axes[0, j].add_patch(Rectangle((pad + left - 0.5, pad + top - 0.5), w, h, fill=False, ec="red", lw=2))
        axes[0, j].set_title(f"裁剪框 #{seed}：宽 {w} × 高 {h}")
        axes[1, j].imshow(x)
        axes[1, j].set_title(f"增强 #{seed}（{resolution} px）")
        diff = axes[2, j].imshow(np.abs(x - eval_img).mean(-1), cmap="magma", vmin=0, vmax=0.6)
        axes[2, j].set_title(f"|增强 #{seed} − 评测图|")
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, y=0.99)
    fig.tight_layout(rect=(0, 0, 0.95, 0.95))
    fig.colorbar(diff, cax=fig.add_axes((0.955, 0.06, 0.01, 0.25)), label="平均绝对差")
    return fig


def plot_transform_grid(pil, options, seeds, eval_image, title: str | None = None):
    """-> Figure: a row per seed (`torch.manual_seed(seed)` before each transform), the eval image first, then
    one column per `(name, transform)` in `options` (each PIL -> normalised (3, R, R))."""
    import matplotlib.pyplot as plt
    import torch

    from . import setup_cjk_font

    setup_cjk_font()
    seeds = list(seeds)
    fig, axes = plt.subplots(len(seeds), len(options) + 1, figsize=(16, 3.2 * len(seeds)), squeeze=False)
    for row, seed in zip(axes, seeds):
        row[0].imshow(eval_image)
        row[0].set_title("评测图")
        for ax, (name, transform) in zip(row[1:], options):
            torch.manual_seed(seed)
            ax.imshow(to_image(transform(pil)))
            ax.set_title(name)
        row[0].set_ylabel(f"种子 {seed}", fontsize=14)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    if title:
        fig.suptitle(title, y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig
