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

    setup_cjk_font()
    total = sum(steps.values())
    if total <= 0:
        raise ValueError("the steps take no time")
    fig, ax = plt.subplots(figsize=(10, 2.6))
    palette = plt.get_cmap("tab10")
    left = 0.0
    for k, (name, seconds) in enumerate(steps.items()):
        us = seconds * 1e6
        color = (colors or {}).get(name, palette(k % 10))
        ax.barh([0], [us], left=left, color=color, edgecolor="white",
                label=f"{name}：{us:.1f} µs（{seconds / total:.1%}）")
        if seconds / total >= 0.06:
            ax.text(left + us / 2, 0, f"{seconds / total:.0%}", ha="center", va="center", fontsize=9, color="white")
        left += us
    ax.set_xlim(0, left)
    ax.set_yticks([])
    ax.set_xlabel(f"每条样本的平均 CPU 时间 (µs)，合计 {total * 1e6:.0f} µs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=2, fontsize=9, frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
