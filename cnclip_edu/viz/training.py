"""Training curves from `metrics.jsonl` records: loss on the left, accuracy / recall on the right.

    from cnclip_edu.train.launch import read_metrics
    from cnclip_edu.viz.training import plot_training_curves
    fig = plot_training_curves(read_metrics("runs/course/experiments/course/metrics.jsonl"))

Records are what `cnclip_edu.train` writes: `{"type": "train", "step", "loss", "i2t_acc", "t2i_acc",
"lr", ...}` every --log-interval steps and `{"type": "valid", "step", "loss", "i2t_acc", "t2i_acc",
"t2i_r1", ...}` at each validation. `resumed_at` draws a vertical line where a run was resumed.
"""
from __future__ import annotations

from typing import Iterable


def _series(records: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records if r.get("type") == kind and key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_training_curves(records: Iterable[dict], resumed_at: Iterable[int] = (), title: str | None = None):
    """-> matplotlib Figure with (loss, accuracy) panels; Chinese labels (call setup_cjk_font first)."""
    import matplotlib.pyplot as plt

    from . import setup_cjk_font

    setup_cjk_font()
    records = list(records)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind, style, label in (("train", "-", "训练 (train)"), ("valid", "o--", "验证 (valid)")):
        x, y = _series(records, kind, "loss")
        if x:
            ax_loss.plot(x, y, style, label=label, markersize=4)
    ax_loss.set(xlabel="步数 (step)", ylabel="对比损失 (InfoNCE loss)", title="损失曲线 (loss)")
    curves = [("train", "t2i_acc", "-", "训练 batch 内 文→图 准确率"),
              ("valid", "t2i_acc", "o--", "验证 batch 内 文→图 准确率"),
              ("valid", "t2i_r1", "s-", "验证 文→图 R@1 (全集)")]
    for kind, key, style, label in curves:
        x, y = _series(records, kind, key)
        if x:
            ax_acc.plot(x, [100 * v for v in y], style, label=label, markersize=4)
    ax_acc.set(xlabel="步数 (step)", ylabel="%", title="准确率 / 召回率 (accuracy / recall)", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        for s in resumed_at:
            ax.axvline(s, color="grey", linestyle=":", label="断点续训 (resume)" if s == list(resumed_at)[0] else None)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
