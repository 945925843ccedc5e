"""Exercise 02.3 of notebook 02 (the vision tower): multi-head self-attention written by hand from the
library layer's parameters (`in_proj_weight`, `in_proj_bias`, `out_proj`).

Compared with `SelfAttention.forward` on the same layer, for two widths and head counts (and, for
grading, a random head count and sequence length): the mutants are the slips that keep the output's
shape (the wrong scale, softmax along the wrong axis, heads split or merged without the transpose).
PyTorch's fused `scaled_dot_product_attention` counts as the library's: the exercise is to write it. So
does the layer's helper `SelfAttention.qkv` (project and split the heads: the first half of the exercise).
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnclip_edu.model.vision import SelfAttention

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .nb02_common import _VISION
from .towers import tiny_vit

_SDPA = "torch.nn.functional.scaled_dot_product_attention"


# ----------------------------------------------------------------------------- 02.3 multi-head attention
def _attention(attn, x, scale=None, merge=None, softmax_dim=-1, split=None):
    """The hand-written attention with one step done wrong (for the mutants)."""
    B, L, D = x.shape
    H = attn.heads
    qkv = x @ attn.in_proj_weight.T + attn.in_proj_bias  # (B, L, 3D)
    q, k, v = qkv.chunk(3, dim=-1)  # (B, L, D) each
    split = split or (lambda t: t.view(B, L, H, D // H).transpose(1, 2))
    q, k, v = split(q), split(k), split(v)  # (B, H, L, Dh)
    scores = q @ k.transpose(-1, -2) / (scale if scale is not None else math.sqrt(D // H))
    y = scores.softmax(dim=softmax_dim) @ v  # (B, H, L, Dh)
    y = merge(y) if merge else y.transpose(1, 2).reshape(B, L, D)
    return attn.out_proj(y)


def _with_library_qkv(attn, x):
    """The second half by hand on top of the layer's own `qkv` (which projects and splits the heads)."""
    q, k, v = attn.qkv(x)  # (B, H, L, Dh) each
    y = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v
    return attn.out_proj(y.transpose(1, 2).reshape(x.shape))


_ATTN_BUILDS = (_VISION + "SelfAttention.forward", _VISION + "SelfAttention.qkv", _SDPA)
_attn_run = guarded(SelfAttention.forward, _ATTN_BUILDS)


def _attn_cases():
    vit4 = tiny_vit(seed=8, width=32, heads=4)
    vit2 = tiny_vit(seed=9)
    g = torch.Generator().manual_seed(10)
    x4, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(3, 10, 16, generator=g)
    return [Case("宽 32、4 个头，x 形状 (2, 10, 32)", lambda f: _attn_run(f, vit4.transformer.resblocks[0].attn, x4)),
            Case("宽 16、2 个头，x 形状 (3, 10, 16)", lambda f: _attn_run(f, vit2.transformer.resblocks[1].attn, x2))]


def _attn_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4, 8])
    vit = tiny_vit(seed=seed, width=8 * heads, heads=heads)
    x = torch.randn(rng.randint(1, 3), rng.randint(2, 12), 8 * heads, generator=torch.Generator().manual_seed(seed))
    return [Case("随机头数、随机序列长度", lambda f: _attn_run(f, vit.transformer.resblocks[0].attn, x))]


register(Exercise(
    id="02.3", title="手写多头自注意力 (multi-head self-attention)", points=3,
    hint="in_proj_weight 是 q、k、v 三个矩阵叠在一起；每个头只用 D / H 维，缩放也按每个头的维度算；"
         "softmax 让每个 query 对所有 key 的权重和为 1；合并多头之前，头的轴要先回到序列轴后面。",
    reference=SelfAttention.forward,
    cases=_attn_cases, hidden=_attn_hidden, builds=_ATTN_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了除以 √Dh": lambda a, x: _attention(a, x, scale=1.0),
        "除以 √D 而不是 √Dh": lambda a, x: _attention(a, x, scale=math.sqrt(x.shape[-1])),
        "合并多头时没有先转置，直接 reshape": lambda a, x: _attention(a, x, merge=lambda y: y.reshape(x.shape)),
        "softmax 沿错了维度 (dim=-2)": lambda a, x: _attention(a, x, softmax_dim=-2),
        "拆头时直接 view(B, H, L, Dh)": lambda a, x: _attention(
            a, x, split=lambda t: t.reshape(x.shape[0], a.heads, x.shape[1], -1)),
        "用了 F.scaled_dot_product_attention": lambda a, x: a.out_proj(
            F.scaled_dot_product_attention(*a.qkv(x)).transpose(1, 2).reshape(x.shape)),
        "用库里的 attn.qkv 投影并拆头": _with_library_qkv,
    }))
