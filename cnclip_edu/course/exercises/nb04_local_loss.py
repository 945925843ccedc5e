"""Exercise 04.4 of notebook 04: open_clip's `local_loss` on one rank: its B rows against all W·B columns
of a differentiable gather, the labels offset by rank·B.

Compared with the library's `contrastive_loss` on features split over simulated ranks (the rank's rows
are views of the full batch, so the gradients reach every rank's features as a differentiable gather
would): the loss and the gradients of the whole batch, and the loss on features on another device
(labels made on the CPU fail there).
"""
from __future__ import annotations

import torch

from cnclip_edu.loss import contrastive_loss

from .core import Case, Exercise, register
from .nb04_common import _on_other_device, _pairs
from .tripwire import guarded


# ----------------------------------------------------------------------------- 04.4 local_loss
def local_rank_loss(img_local: torch.Tensor, txt_local: torch.Tensor, all_img: torch.Tensor,
                    all_txt: torch.Tensor, rank: int, logit_scale) -> torch.Tensor:
    """ClipLoss(local_loss=True, gather_with_grad=True) on rank `rank`: its B rows against all W*B
    columns, labels offset by rank*B (all_img / all_txt come from a differentiable gather)."""
    batch = img_local.shape[0]
    labels = torch.arange(batch, device=img_local.device) + rank * batch
    return contrastive_loss(logit_scale * img_local @ all_txt.T, logit_scale * txt_local @ all_img.T, labels)


def _run_local(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0):
    """Differentiable gather simulated in one process: the rank's rows are views of the full batch."""
    img_full, txt_full = _pairs(world_size * batch, dim, noise=0.8, seed=seed)
    img_full.requires_grad_()
    txt_full.requires_grad_()
    rows = slice(rank * batch, (rank + 1) * batch)
    loss = f(img_full[rows], txt_full[rows], img_full, txt_full, rank, 10.0)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return {"损失": loss}
    g_img, g_txt = torch.autograd.grad(loss, [img_full, txt_full])
    return {"损失": loss.detach(), "全批图片特征的梯度": g_img, "全批文本特征的梯度": g_txt}


def _local_on_other_device(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0) -> dict:
    """`_run_local`'s features on the meta device (a GPU stand-in): labels made on the CPU raise."""
    img_full, txt_full = _pairs(world_size * batch, dim, noise=0.8, seed=seed)
    rows = slice(rank * batch, (rank + 1) * batch)
    return _on_other_device(lambda i, t, ai, at: f(i, t, ai, at, rank, 10.0),
                            img_full[rows], txt_full[rows], img_full, txt_full)


def _cases_04_4():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3",
                 (lambda w, r: lambda f: _run_local(guarded(f, local_rank_loss, BUILDS_04_4), w, r, seed=w + r))(w, r))
            for w, r in [(2, 1), (4, 0), (4, 3)]] + [
        Case("W = 2，rank = 1，特征不在 CPU 上（用 meta 设备代替 GPU）：labels 要建在特征所在的设备上",
             lambda f: _local_on_other_device(guarded(f, local_rank_loss, BUILDS_04_4), 2, 1, seed=5))]


# the reference itself too: it is importable (cnclip_edu.course.exercises.nb04), so it is within reach
BUILDS_04_4 = ("cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.course.exercises.nb04.local_rank_loss")


def _hidden_04_4(seed: int):
    import random

    rng = random.Random(seed)
    return [Case(kind, (lambda w, r, b, s: lambda f: _run_local(guarded(f, local_rank_loss, BUILDS_04_4), w, r, batch=b, seed=s))(
                w, (0 if kind == "rank 0" else w - 1 if kind == "最后一个 rank" else rng.randrange(w)),
                rng.randint(1, 4), rng.randrange(10**6)))
            for kind, w in (("随机的 W 和 rank", rng.choice([2, 3, 4])), ("rank 0", rng.choice([2, 4])),
                            ("最后一个 rank", rng.choice([2, 3])))] + [
        Case("特征不在 CPU 上", (lambda w, b, s: lambda f: _local_on_other_device(
            guarded(f, local_rank_loss, BUILDS_04_4), w, w - 1, batch=b, seed=s))(
                rng.choice([2, 3]), rng.randint(2, 4), rng.randrange(10**6)))]


def _mutants_04_4():
    def no_offset(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ at.T, s * t @ ai.T, torch.arange(i.shape[0]))

    def local_columns(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ t.T, s * t @ i.T)

    def same_rows_twice(i, t, ai, at, rank, s):
        labels = torch.arange(i.shape[0]) + rank * i.shape[0]
        logits = s * i @ at.T
        return contrastive_loss(logits, logits, labels)

    def labels_on_cpu(i, t, ai, at, rank, s):   # right on CPU tensors; on a GPU the labels meet the logits and raise
        labels = torch.arange(i.shape[0]) + rank * i.shape[0]
        return contrastive_loss(s * i @ at.T, s * t @ ai.T, labels)

    return {"labels 建在 CPU 上（torch.arange(B) 没有指定 device：特征在 GPU 上时报错）": labels_on_cpu,
            "标签没有加 rank * B 的偏移": no_offset, "只用本地的 B 列（没有用聚合来的负样本）": local_columns,
            "文到图也用了图片行 (img_local @ all_txt.T)": same_rows_twice}


register(Exercise(
    id="04.4", title="local_loss：本 rank 的 B 行对全部 W·B 列", points=2,
    hint="本 rank 的 B 张图片对全部 W·B 句文本打分、B 句文本对全部 W·B 张图片打分，两个矩阵都是 (B, W·B)；"
         "再想一想：本 rank 的第 i 个样本在全局批次里排第几？它就是第 i 行正确答案所在的列。labels 要建在特征所在的设备上。",
    reference=local_rank_loss, cases=_cases_04_4, mutants=_mutants_04_4, hidden=_hidden_04_4,
    builds=BUILDS_04_4))
