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


def plot_training_curves(records: Iterable[dict], resumed_at: Iterable[int] = (), title: str | None = None,
                         start_r1: float | None = None, one_process: bool = False):
    """-> matplotlib Figure with (training loss, validation loss, accuracy / recall) panels.

    Chinese labels (call setup_cjk_font first, done here too). Each loss panel's title says what
    that loss is (its batch size, one-hot or multi-positive) when the records carry it. Loss axes start
    at 0 (the drop looks as big as it is) with room above the highest point; every x axis starts at step 0.
    `start_r1`: the validation R@1 (a fraction) before training, drawn at step 0 and joined to the first
    validation by a dotted line (nothing was measured in between). `one_process`: the validation batch is
    the whole validation set, so the panel does not say "per process".
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
                 title="验证：InfoNCE，重复描述算负样本"
                 + (f"\n{'' if one_process else '每进程 '}batch {vbatch}" if vbatch else ""))
    for ax in (ax_train, ax_valid):   # loss axes from 0: the drop looks as big as it is; room above the top point
        top = max((max(line.get_ydata(), default=0) for line in ax.lines), default=0)
        ax.set_ylim(0, 1.1 * top if top > 0 else None)

    curves = [("train", "t2i_acc", "-", "C0", "训练 batch 内 文→图 准确率" + (f"（{batch} 个候选）" if batch else "")),
              ("valid", "t2i_r1", "s-", "C2", "验证 文→图 R@1（整个验证集）")]
    for kind, key, style, color, label in curves:
        x, y = _series(records, kind, key)
        if x:
            ax_acc.plot(x, [100 * v for v in y], style, color=color, label=label, markersize=4)
    x, y = _series(records, "valid", "t2i_r1")
    if start_r1 is not None and x:   # step 0: the model before training, joined to the first validation
        ax_acc.plot([0, x[0]], [100 * start_r1, 100 * y[0]], ":s", color="tab:green", markersize=4,
                    label="训练前（点线只连两点）")
    ax_acc.set(xlabel="步数 (step)", ylabel="%", title="准确率 / 召回率 (accuracy / recall)", ylim=(0, 100))

    for ax in (ax_train, ax_valid, ax_acc):
        for i, s in enumerate(resumed_at):
            ax.axvline(s, color="grey", linestyle=":", label="断点续训 (resume)" if i == 0 else None)
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
