"""Notebook 04's checked exercises: the symmetric InfoNCE loss, and what one rank computes when the
batch is spread over W ranks (the default gather of cn_clip, and open_clip's `local_loss`).

Every reference is the library's own code path (`ClipLoss`, `replace_local_chunk`,
`contrastive_loss`), run on small fixed features; the mutants are the slips a student makes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnclip_edu.loss import ClipLoss, contrastive_loss, replace_local_chunk

from .core import Case, Exercise, register


def _pairs(n: int, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n L2-normalised (image, text) feature pairs: a shared vector plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, dim, generator=g)
    img = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    txt = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    return img, txt


# ----------------------------------------------------------------------------- 04.1 symmetric InfoNCE
def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """The library's loss, single process: (N, D), (N, D), s -> 0-d tensor."""
    return ClipLoss()(image_features, text_features, logit_scale)


def _grad_of_images(f, img, txt, s):
    img = img.clone().requires_grad_()
    loss = f(img, txt, s)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return loss  # compared as it is: a float or a detached tensor is the mistake to report
    return torch.autograd.grad(loss, img)[0]  # (N, D)


def _cases_04_1():
    img8, txt8 = _pairs(8, 16, noise=1.0, seed=0)
    img5, txt5 = _pairs(5, 4, noise=0.7, seed=1)
    img4, txt4 = _pairs(4, 32, noise=0.05, seed=2)  # cosines near 1: logits near 100
    return [
        Case("8 对特征 (8, 16)，s = 14.3", lambda f: f(img8, txt8, 14.3)),
        Case("5 对特征 (5, 4)，s 是 0 维张量 torch.tensor(50.)", lambda f: f(img5, txt5, torch.tensor(50.0))),
        Case("4 对几乎对齐的特征，s = 100（logits 接近 100：检查数值稳定）", lambda f: f(img4, txt4, 100.0)),
        Case("对图片特征的梯度 (8, 16)，s = 14.3（损失必须可求导）", lambda f: _grad_of_images(f, img8, txt8, 14.3)),
    ]


def _mutants_04_1():
    def labels(logits):
        return torch.arange(logits.shape[0])

    def one_direction(i, t, s):
        logits = s * i @ t.T
        return F.cross_entropy(logits, labels(logits))

    def no_scale(i, t, s):
        logits = i @ t.T
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    def divided_by_scale(i, t, s):
        logits = i @ t.T / s
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    def no_half(i, t, s):
        logits = s * i @ t.T
        return F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))

    def naive_softmax(i, t, s):
        logits = s * i @ t.T
        p_i2t = logits.exp() / logits.exp().sum(dim=1, keepdim=True)   # exp(100) overflows float32
        p_t2i = logits.exp() / logits.exp().sum(dim=0, keepdim=True)
        return -(p_i2t.diag().log().mean() + p_t2i.diag().log().mean()) / 2

    def as_float(i, t, s):
        return clip_loss(i, t, s).item()

    return {"只算了图到文一个方向": one_direction, "忘了乘 logit_scale": no_scale,
            "除以了 logit_scale（把 s 当成了 τ）": divided_by_scale, "两个方向相加后忘了除以 2": no_half,
            "手写 softmax 直接 exp（s = 100 时溢出）": naive_softmax, "返回了 .item()（不能求导）": as_float}


register(Exercise(
    id="04.1", title="对称 InfoNCE 损失 (symmetric InfoNCE)", points=2,
    hint="logits = s · I Tᵀ，形状 (N, N)；标签是 torch.arange(N)（答案在对角线）；图到文按行做交叉熵，"
         "文到图对 logits.T 按行做交叉熵，两者取平均。用 F.cross_entropy（内部用 logsumexp，s = 100 也不会溢出），"
         "返回张量而不是 .item()。",
    reference=clip_loss, cases=_cases_04_1, mutants=_mutants_04_1))


# ----------------------------------------------------------------------------- 04.2 one rank's loss
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


def _cases_04_2():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3", (lambda w, r: lambda f: _run_rank(f, w, r, seed=w + r))(w, r))
            for w, r in [(2, 0), (2, 1), (4, 2)]]


def _mutants_04_2():
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
    id="04.2", title="一个 rank 上的聚合损失 (all-gather + 本地片保留梯度)", points=3,
    hint="W = gathered_img.shape[0] // B；把 gathered 用 .chunk(W) 切成 W 份，第 rank 份换成本地特征，"
         "并让它的梯度乘 W（x.detach() + W * (x - x.detach())，或 cnclip_edu.loss.scale_grad）；torch.cat 拼回"
         " (W*B, D) 后算 ClipLoss()。不要把整个损失乘 W：那样 logit_scale 的梯度也会被放大。",
    reference=rank_loss, cases=_cases_04_2, mutants=_mutants_04_2))


# ----------------------------------------------------------------------------- 04.3 local_loss
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


def _cases_04_3():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3", (lambda w, r: lambda f: _run_local(f, w, r, seed=w + r))(w, r))
            for w, r in [(2, 1), (4, 0), (4, 3)]]


def _mutants_04_3():
    def no_offset(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ at.T, s * t @ ai.T, torch.arange(i.shape[0]))

    def local_columns(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ t.T, s * t @ i.T)

    def same_rows_twice(i, t, ai, at, rank, s):
        labels = torch.arange(i.shape[0]) + rank * i.shape[0]
        logits = s * i @ at.T
        return contrastive_loss(logits, logits, labels)

    return {"标签没有加 rank * B 的偏移": no_offset, "只用本地的 B 列（没有用聚合来的负样本）": local_columns,
            "文到图也用了图片行 (img_local @ all_txt.T)": same_rows_twice}


register(Exercise(
    id="04.3", title="local_loss：本 rank 的 B 行对全部 W·B 列", points=2,
    hint="logits_per_image = s · img_local @ all_txt.T，logits_per_text = s · txt_local @ all_img.T，形状都是 (B, W·B)；"
         "第 i 行的正确答案在第 rank·B + i 列，所以标签是 torch.arange(B) + rank * B。",
    reference=local_rank_loss, cases=_cases_04_3, mutants=_mutants_04_3))
