"""Exercise 04.1 of notebook 04: the symmetric InfoNCE loss `clip_loss(image_features, text_features,
logit_scale)`, a capstone piece (the cases' features are L2-normalised; `logit_scale` is already exp'd).

Compared with the library's `ClipLoss` on fixed feature pairs: the loss itself (with `s` a float and a
0-d tensor, and nearly aligned features at s = 100, where a hand-written softmax overflows), its gradient
(a `.item()` cannot be trained), and the loss on features on another device (labels made on the CPU
fail there). The mutants are the slips of the formula: one direction only, the scale left out or
divided by, the two directions not averaged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnclip_edu.loss import ClipLoss

from .core import Case, Exercise, register
from .nb04_common import _on_other_device, _pairs
from .tripwire import guarded


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


BUILDS_04_1 = ("cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.loss.contrastive_loss")


def _cases_04_1():
    img8, txt8 = _pairs(8, 16, noise=1.0, seed=0)
    img5, txt5 = _pairs(5, 4, noise=0.7, seed=1)
    img4, txt4 = _pairs(4, 32, noise=0.05, seed=2)  # cosines near 1: logits near 100

    def mine(f):
        return guarded(f, clip_loss, BUILDS_04_1)

    return [
        Case("8 对特征 (8, 16)，s = 14.3", lambda f: mine(f)(img8, txt8, 14.3)),
        Case("5 对特征 (5, 4)，s 是 0 维张量 torch.tensor(50.)", lambda f: mine(f)(img5, txt5, torch.tensor(50.0))),
        Case("4 对几乎对齐的特征，s = 100（logits 接近 100：检查数值稳定）", lambda f: mine(f)(img4, txt4, 100.0)),
        Case("对图片特征的梯度 (8, 16)，s = 14.3（损失必须可求导）", lambda f: _grad_of_images(mine(f), img8, txt8, 14.3)),
        Case("特征不在 CPU 上（用 meta 设备代替 GPU）：labels 要建在特征所在的设备上",
             lambda f: _on_other_device(lambda i, t: mine(f)(i, t, 14.3), img8, txt8)),
    ]


def _hidden_04_1(seed: int):
    import random

    rng = random.Random(seed)
    cases = []
    for kind in ("随机大小的特征，s 是 float", "随机大小的特征，s 是 0 维张量", "只有 1 对特征", "s = 100 且特征几乎对齐",
                 "对图片特征的梯度", "特征不在 CPU 上"):
        n = 1 if kind == "只有 1 对特征" else rng.randint(2, 12)
        dim = rng.choice([3, 8, 24])
        noise = 0.02 if "对齐" in kind else rng.uniform(0.3, 1.5)
        img, txt = _pairs(n, dim, noise=noise, seed=rng.randrange(10**6))
        s = 100.0 if "100" in kind else round(rng.uniform(1.0, 60.0), 2)
        if "梯度" in kind:
            cases.append(Case(kind, (lambda i, t, s: lambda f: _grad_of_images(guarded(f, clip_loss, BUILDS_04_1), i, t, s))(img, txt, s)))
        elif "CPU" in kind:
            cases.append(Case(kind, (lambda i, t, s: lambda f: _on_other_device(
                lambda a, b: guarded(f, clip_loss, BUILDS_04_1)(a, b, s), i, t))(img, txt, s)))
        else:
            scale = torch.tensor(s) if "张量" in kind else s
            cases.append(Case(kind, (lambda i, t, s: lambda f: guarded(f, clip_loss, BUILDS_04_1)(i, t, s))(img, txt, scale)))
    return cases


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

    def labels_on_cpu(i, t, s):   # right on CPU tensors; on a GPU the labels meet the logits and raise
        logits = s * i @ t.T
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    return {"labels 建在 CPU 上（torch.arange(N) 没有指定 device：特征在 GPU 上时报错）": labels_on_cpu,
            "只算了图到文一个方向": one_direction, "忘了乘 logit_scale": no_scale,
            "除以了 logit_scale（把 s 当成了 τ）": divided_by_scale, "两个方向相加后忘了除以 2": no_half,
            "手写 softmax 直接 exp（s = 100 时溢出）": naive_softmax, "返回了 .item()（不能求导）": as_float}


register(Exercise(
    id="04.1", title="对称 InfoNCE 损失 (symmetric InfoNCE)", points=2,
    hint="先想清楚 logits 矩阵的第 i 行、第 j 列是什么，正确答案落在哪里；两个方向各是一次「在 N 个候选里认出自己」的"
         "交叉熵，一个看行、一个看列。logit_scale 已经取过 exp，直接乘。你新建的 labels 要和 logits 在同一个设备上（特征可能在 GPU 上）。别自己写 exp 再除以和（s = 100 时会溢出），"
         "也别返回 Python 数（还要 backward）。库里的 ClipLoss 不能用：它是拿来和你比较的。",
    reference=clip_loss, cases=_cases_04_1, mutants=_mutants_04_1, hidden=_hidden_04_1, builds=BUILDS_04_1))
