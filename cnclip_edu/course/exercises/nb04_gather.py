"""Exercise 04.3 of notebook 04: what one rank computes in cn_clip's default distributed loss: the
all-gathered (W·B, D) features as constants, the rank's own slice put back with its gradient scaled by W.

Compared with the library's `replace_local_chunk` + `ClipLoss` path on features split over W = 2 or 4
simulated ranks: the loss and its gradients with respect to the local image and text features and to
logit_scale (scaling the whole loss by W instead of the slice's gradient would scale that one too).
"""
from __future__ import annotations

import torch

from cnclip_edu.loss import ClipLoss, replace_local_chunk

from .core import Case, Exercise, register
from .nb04_common import _pairs
from .tripwire import guarded


# ----------------------------------------------------------------------------- 04.3 one rank's loss
def rank_loss(img_local: torch.Tensor, txt_local: torch.Tensor, gathered_img: torch.Tensor,
              gathered_txt: torch.Tensor, rank: int, logit_scale) -> torch.Tensor:
    """What rank `rank` computes in ClipLoss's default mode: the gathered (W*B, D) features as
    constants, this rank's slice replaced by its own features with their gradient scaled by W."""
    world_size = gathered_img.shape[0] // img_local.shape[0]
    all_img = replace_local_chunk(gathered_img, img_local, rank, world_size, grad_scale=world_size)
    all_txt = replace_local_chunk(gathered_txt, txt_local, rank, world_size, grad_scale=world_size)
    return ClipLoss()(all_img, all_txt, logit_scale)


def _run_rank(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0) -> dict:
    """Call f as rank `rank` would, then differentiate: the loss and the three gradients it yields."""
    img_all, txt_all = _pairs(world_size * batch, dim, noise=0.8, seed=seed)   # (W*B, D): all_gather's result
    rows = slice(rank * batch, (rank + 1) * batch)
    img_l = img_all[rows].clone().requires_grad_()
    txt_l = txt_all[rows].clone().requires_grad_()
    s = torch.tensor(10.0, requires_grad=True)
    loss = f(img_l, txt_l, img_all.clone(), txt_all.clone(), rank, s)
    if not isinstance(loss, torch.Tensor):
        return {"损失": loss}
    wrt = [img_l, txt_l, s]
    grads = (torch.autograd.grad(loss, wrt, allow_unused=True) if loss.requires_grad else [None] * 3)
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, wrt)]
    return {"损失": loss.detach(), "本地图片特征的梯度": grads[0], "本地文本特征的梯度": grads[1],
            "logit_scale 的梯度": grads[2]}


def _cases_04_3():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3",
                 (lambda w, r: lambda f: _run_rank(guarded(f, rank_loss, BUILDS_04_3), w, r, seed=w + r))(w, r))
            for w, r in [(2, 0), (2, 1), (4, 2)]]


def _hidden_04_3(seed: int):
    import random

    rng = random.Random(seed)
    out = []
    for kind in ("W = 2，随机的 rank", "W = 3 或 4，随机的 rank", "最后一个 rank"):
        w = 2 if kind.startswith("W = 2") else rng.choice([3, 4])
        r = w - 1 if kind == "最后一个 rank" else rng.randrange(w)
        out.append(Case(kind, (lambda w, r, b, s: lambda f: _run_rank(guarded(f, rank_loss, BUILDS_04_3), w, r, batch=b, seed=s))(
            w, r, rng.randint(1, 4), rng.randrange(10**6))))
    return out


BUILDS_04_3 = ("cnclip_edu.loss.replace_local_chunk",)


def _mutants_04_3():
    def no_scale(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return ClipLoss()(replace_local_chunk(gi, i, rank, w), replace_local_chunk(gt, t, rank, w), s)

    def all_gathered(i, t, gi, gt, rank, s):
        return ClipLoss()(gi, gt, s)

    def loss_times_w(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return w * ClipLoss()(replace_local_chunk(gi, i, rank, w), replace_local_chunk(gt, t, rank, w), s)

    def slot_zero(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return ClipLoss()(replace_local_chunk(gi, i, 0, w, grad_scale=w), replace_local_chunk(gt, t, 0, w, grad_scale=w), s)

    def local_only(i, t, gi, gt, rank, s):
        return ClipLoss()(i, t, s)

    return {"本地那一片的梯度没有乘 W": no_scale, "直接用 all_gather 的结果（全部没有梯度）": all_gathered,
            "把整个损失乘以 W（logit_scale 的梯度也被放大了）": loss_times_w,
            "本地特征总放在第 0 片（忘了按 rank 放）": slot_zero, "只用本地的 B 个样本（没有用聚合来的负样本）": local_only}


register(Exercise(
    id="04.3", title="一个 rank 上的聚合损失 (all-gather + 本地片保留梯度)", points=3,
    hint="W 从两个形状里算出来；聚合结果里属于本 rank 的那一片换成本地特征（值不变），并且只让这一片的梯度放大 W 倍"
         "（第 4 部分的 detach 技巧）。放大整个损失不行：那样 logit_scale 的梯度也被放大了。",
    reference=rank_loss, cases=_cases_04_3, mutants=_mutants_04_3, hidden=_hidden_04_3, builds=BUILDS_04_3))
