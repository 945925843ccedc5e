"""Training curves from `metrics.jsonl` records: training loss, validation loss, accuracy / recall.

    from cnclip_edu.train.launch import read_metrics
    from cnclip_edu.viz.training import plot_training_curves
    fig = plot_training_curves(read_metrics("runs/course/experiments/course/metrics.jsonl"))

Records are what `cnclip_edu.train` writes: `{"type": "train", "step", "loss", "i2t_acc", "t2i_acc",
"lr", "global_batch", "known_positives", ...}` every --log-interval steps and `{"type": "valid",
"step", "loss", "i2t_acc", "t2i_acc", "t2i_r1", "batch_size", ...}` at each validation.

Why the two losses get separate panels: they are different quantities. The training loss is taken
over the global batch (64 pairs in the course) and, with --known-positives, is the multi-positive
KL (a duplicate caption is a positive, not a negative); the validation loss is cn_clip's plain
InfoNCE within each rank's validation batch (128), where duplicates count as negatives. Drawn on
one axis, the gap between them would look like overfitting when most of it is the definition. The
number to compare across runs is the validation Recall@1 over the whole split.
"""
from __future__ import annotations

from typing import Iterable


def _series(records: list[dict], kind: str, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in records if r.get("type") == kind and key in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _last(records: list[dict], kind: str, key: str):
    return next((r[key] for r in reversed(records) if r.get("type") == kind and key in r), None)


def plot_training_curves(records: Iterable[dict], resumed_at: Iterable[int] = (), title: str | None = None):
    """-> matplotlib Figure with (training loss, validation loss, accuracy / recall) panels.

    Chinese labels (call setup_cjk_font first, done here too). Each loss panel's title says what
    that loss is (its batch size, one-hot or multi-positive) when the records carry it.
    """
    import matplotlib.pyplot as plt

    from . import setup_cjk_font

    setup_cjk_font()
    records = list(records)
    resumed_at = list(resumed_at)
    fig, (ax_train, ax_valid, ax_acc) = plt.subplots(1, 3, figsize=(14, 3.9))

    x, y = _series(records, "train", "loss")
    ax_train.plot(x, y, "-", color="C0", label="训练损失 (train loss)")
    batch, multi = _last(records, "train", "global_batch"), _last(records, "train", "known_positives")
    what = "多正样本 KL (known positives)" if multi else "InfoNCE" if multi is not None else "对比损失"
    ax_train.set(xlabel="步数 (step)", ylabel="损失", title=f"训练：{what}" + (f"\n全局 batch {batch}" if batch else ""))

    x, y = _series(records, "valid", "loss")
    ax_valid.plot(x, y, "o--", color="C1", markersize=4, label="验证损失 (valid loss)")
    vbatch = _last(records, "valid", "batch_size")
    ax_valid.set(xlabel="步数 (step)", ylabel="损失",
                 title="验证：InfoNCE，重复描述算负样本" + (f"\n每进程 batch {vbatch}" if vbatch else ""))
    for ax in (ax_train, ax_valid):
        ax.set_ylim(bottom=0)  # 两块损失图的纵轴都从 0 开始：下降看起来多大就是多大

    curves = [("train", "t2i_acc", "-", "C0", "训练 batch 内 文→图 准确率" + (f"（{batch} 个候选）" if batch else "")),
              ("valid", "t2i_r1", "s-", "C2", "验证 文→图 R@1（整个验证集）")]
    for kind, key, style, color, label in curves:
        x, y = _series(records, kind, key)
        if x:
            ax_acc.plot(x, [100 * v for v in y], style, color=color, label=label, markersize=4)
    ax_acc.set(xlabel="步数 (step)", ylabel="%", title="准确率 / 召回率 (accuracy / recall)", ylim=(0, 100))

    for ax in (ax_train, ax_valid, ax_acc):
        for i, s in enumerate(resumed_at):
            ax.axvline(s, color="grey", linestyle=":", label="断点续训 (resume)" if i == 0 else None)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
