"""Exercises of notebook 02 (the vision tower): the student builds a ViT's `encode_image` piece by piece.

Each answer is a function of a library module (`visual`, `attn`, `block`) and a tensor, run on seeded
tiny towers (towers.py) and compared with the library's own method on the same module: e.g.
`VisionTransformer.patch_tokens(visual, images)` is the reference of `patch_tokens(visual, images)`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnclip_edu.model.vision import QuickGELU, ResidualAttentionBlock, SelfAttention, VisionTransformer

from .core import Case, Exercise, register
from .towers import images, tiny_vit


def _vit_cases(fn_of_visual):
    """Three towers: course-like (32 px, patch 8, width 32), tiny (12 px, patch 4), and a batch of one."""
    def cases():
        big = tiny_vit(seed=1, resolution=32, patch=8, width=32, layers=2, heads=4, output_dim=16)
        small = tiny_vit(seed=2)
        x_big, x_small, x_one = images(2, 32, seed=3), images(3, 12, seed=4), images(1, 12, seed=5)
        return [Case("32×32 图、patch 8、宽 32 的 ViT，2 张图", lambda f: fn_of_visual(f, big, x_big)),
                Case("12×12 图、patch 4、宽 16 的 ViT，3 张图", lambda f: fn_of_visual(f, small, x_small)),
                Case("同一个 12×12 的 ViT，只有 1 张图 (B = 1)", lambda f: fn_of_visual(f, small, x_one))]
    return cases


# ----------------------------------------------------------------------------- 02.1 patchify
def _patches_rows_then_channels(visual, x):  # flattens each patch as (P, P, 3) instead of (3, P, P)
    B, P = x.shape[0], visual.patch_size
    W = visual.conv1.weight
    p = x.unfold(2, P, P).unfold(3, P, P)  # (B, 3, g, g, P, P)
    p = p.permute(0, 2, 3, 4, 5, 1).reshape(B, -1, 3 * P * P)
    return p @ W.reshape(W.shape[0], -1).T


def _patches_column_order(visual, x):  # walks the grid column by column
    B, P = x.shape[0], visual.patch_size
    W = visual.conv1.weight
    p = x.unfold(2, P, P).unfold(3, P, P)  # (B, 3, g, g, P, P)
    p = p.permute(0, 3, 2, 1, 4, 5).reshape(B, -1, 3 * P * P)
    return p @ W.reshape(W.shape[0], -1).T


def _patch_mutants():
    return {
        "卷积后直接 reshape 成 (B, N, D)，没有转置": lambda v, x: v.conv1(x).reshape(x.shape[0], -1, v.conv1.weight.shape[0]),
        "忘了把 (B, D, N) 转置成 (B, N, D)": lambda v, x: v.conv1(x).flatten(2),
        "展平 patch 时按 (P, P, 3) 的顺序，和卷积核 (3, P, P) 对不上": _patches_rows_then_channels,
        "按列而不是按行给 patch 排序": _patches_column_order,
    }


register(Exercise(
    id="02.1", title="切块并线性映射 (patchify)", points=2,
    hint="用 unfold 切块时，每块要按 (3, P, P) 展平，才能和 conv1.weight.reshape(D, -1) 对上；patch 按行排列；"
         "卷积的结果是 (B, D, g, g)，要 flatten(2) 再 transpose(1, 2)，不能直接 reshape。",
    reference=VisionTransformer.patch_tokens,
    cases=_vit_cases(lambda f, v, x: f(v, x)),
    mutants=_patch_mutants))


# ----------------------------------------------------------------------------- 02.2 [CLS] + positions
def _cls_pos_cases():
    def cases():
        vit = tiny_vit(seed=6)
        g = torch.Generator().manual_seed(7)
        t3, t1 = torch.randn(3, 9, 16, generator=g), torch.randn(1, 9, 16, generator=g)
        return [Case("3 张图的 patch token (3, 9, 16)", lambda f: f(vit, t3)),
                Case("1 张图的 patch token (1, 9, 16)", lambda f: f(vit, t1))]
    return cases


def _cls_at_end(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([t, cls], dim=1) + v.positional_embedding


def _positions_on_patches_only(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([cls, t + v.positional_embedding[1:]], dim=1)


register(Exercise(
    id="02.2", title="加上 [CLS] 和位置编码", points=2,
    hint="[CLS] 放在最前面 (位置 0)：class_embedding 是 (D,)，先变成 (B, 1, D) 再 torch.cat(..., dim=1)；"
         "positional_embedding 是 (1 + N, D)，[CLS] 也有自己的位置向量，直接相加即可（广播到整个批次）。",
    reference=VisionTransformer.add_class_and_positions,
    cases=_cls_pos_cases(),
    mutants=lambda: {
        "[CLS] 拼在了最后": _cls_at_end,
        "位置编码只加在 patch 上，[CLS] 没有位置": _positions_on_patches_only,
        "忘了加位置编码": lambda v, t: torch.cat([v.class_embedding.expand(t.shape[0], 1, -1), t], dim=1),
    }))


# ----------------------------------------------------------------------------- 02.3 multi-head attention
def _attn_cases():
    def cases():
        vit4 = tiny_vit(seed=8, width=32, heads=4)
        vit2 = tiny_vit(seed=9)
        g = torch.Generator().manual_seed(10)
        x4, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(3, 10, 16, generator=g)
        return [Case("宽 32、4 个头，x 形状 (2, 10, 32)", lambda f: f(vit4.transformer.resblocks[0].attn, x4)),
                Case("宽 16、2 个头，x 形状 (3, 10, 16)", lambda f: f(vit2.transformer.resblocks[1].attn, x2))]
    return cases


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


register(Exercise(
    id="02.3", title="手写多头自注意力 (multi-head self-attention)", points=3,
    hint="q、k、v 来自 x @ in_proj_weight.T + in_proj_bias 再切三份；每个头的维度 Dh = D / H，"
         "先 view(B, L, H, Dh) 再 transpose(1, 2) 得到 (B, H, L, Dh)；分数除以 √Dh（不是 √D）；"
         "softmax 沿最后一维 (对所有 key)；合并多头时先 transpose(1, 2) 回 (B, L, H, Dh) 再 reshape，最后过 out_proj。",
    reference=SelfAttention.forward,
    cases=_attn_cases(),
    mutants=lambda: {
        "忘了除以 √Dh": lambda a, x: _attention(a, x, scale=1.0),
        "除以 √D 而不是 √Dh": lambda a, x: _attention(a, x, scale=math.sqrt(x.shape[-1])),
        "合并多头时没有先转置，直接 reshape": lambda a, x: _attention(a, x, merge=lambda y: y.reshape(x.shape)),
        "softmax 沿错了维度 (dim=-2)": lambda a, x: _attention(a, x, softmax_dim=-2),
        "拆头时直接 view(B, H, L, Dh)": lambda a, x: _attention(
            a, x, split=lambda t: t.reshape(x.shape[0], a.heads, x.shape[1], -1)),
    }))


# ----------------------------------------------------------------------------- 02.4 QuickGELU
def _gelu_cases():
    def cases():
        grid = torch.linspace(-5, 5, 41)
        rand = torch.randn(4, 7, generator=torch.Generator().manual_seed(11)) * 3
        return [Case("从 -5 到 5 的 41 个点", lambda f: f(grid)), Case("(4, 7) 的随机张量", lambda f: f(rand))]
    return cases


register(Exercise(
    id="02.4", title="QuickGELU 激活函数", points=1,
    hint="QuickGELU(x) = x · sigmoid(1.702 · x)：别忘了前面乘 x，也别忘了 1.702；它不是 F.gelu（那是精确的 GELU）。",
    reference=QuickGELU(),
    cases=_gelu_cases(),
    mutants=lambda: {
        "用了精确的 GELU (F.gelu)": F.gelu,
        "忘了 1.702，成了 SiLU": lambda x: x * torch.sigmoid(x),
        "忘了乘 x": lambda x: torch.sigmoid(1.702 * x),
    }))


# ----------------------------------------------------------------------------- 02.5 the pre-LN block
def _block_cases():
    def cases():
        vit = tiny_vit(seed=12, width=32, heads=4)
        g = torch.Generator().manual_seed(13)
        x1, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(1, 5, 32, generator=g)
        blocks = vit.transformer.resblocks
        return [Case("第 1 个块，x 形状 (2, 10, 32)", lambda f: f(blocks[0], x1)),
                Case("第 2 个块，x 形状 (1, 5, 32)", lambda f: f(blocks[1], x2))]
    return cases


def _post_ln(b, x):
    x = b.ln_1(x + b.attn(x))
    return b.ln_2(x + b.mlp(x))


def _normalised_residual(b, x):
    h = b.ln_1(x)
    x = h + b.attn(h)
    h = b.ln_2(x)
    return h + b.mlp(h)


register(Exercise(
    id="02.5", title="pre-LN 残差块 (residual block)", points=2,
    hint="pre-LN：先 LayerNorm 再进子层，结果加回【没有归一化的】x：x = x + attn(ln_1(x))，然后 x = x + mlp(ln_2(x))。"
         "两个子层各用自己的 LayerNorm (ln_1、ln_2)。",
    reference=ResidualAttentionBlock.forward,
    cases=_block_cases(),
    mutants=lambda: {
        "写成了 post-LN (BERT 的顺序)": _post_ln,
        "残差加的是归一化以后的 x": _normalised_residual,
        "MLP 没有加残差": lambda b, x: b.mlp(b.ln_2(x + b.attn(b.ln_1(x)))),
        "两个子层都用了 ln_1": lambda b, x: (lambda y: y + b.mlp(b.ln_1(y)))(x + b.attn(b.ln_1(x))),
    }))


# ----------------------------------------------------------------------------- 02.6 encode_image
def _encode(v, x, pool="cls", ln_pre=True, ln_post_after_proj=False):
    x = v.embed(x)
    if ln_pre:
        x = v.ln_pre(x)
    for block in v.transformer.resblocks:
        x = block(x)
    x = x[:, 0] if pool == "cls" else x.mean(dim=1)
    return v.ln_post(x @ v.proj) if ln_post_after_proj else v.ln_post(x) @ v.proj


register(Exercise(
    id="02.6", title="完整的 encode_image", points=3,
    hint="顺序：patch → [CLS] + 位置 → ln_pre → 每个残差块 → 只取 [CLS] (x[:, 0]) → ln_post → @ proj。"
         "CLIP 的 ViT 在进 Transformer 之前多一个 ln_pre；投影 proj 在 ln_post 之后。",
    reference=VisionTransformer.forward,
    cases=_vit_cases(lambda f, v, x: f(v, x)),
    mutants=lambda: {
        "忘了 ln_pre": lambda v, x: _encode(v, x, ln_pre=False),
        "对所有 token 取平均，而不是取 [CLS]": lambda v, x: _encode(v, x, pool="mean"),
        "先投影再 ln_post": lambda v, x: _encode(v, x, ln_post_after_proj=True),
    }))


# ----------------------------------------------------------------------------- end-of-notebook numbers
register(Exercise(
    id="02.q1", title="patch 改成 4 以后的 token 数", points=1,
    hint="32 / 4 = 8，一行 8 个 patch，共 8 × 8 个；别忘了还有 1 个 [CLS]。",
    reference=65,
    mutants=lambda: {"忘了 [CLS]": 64, "只算了一行": 8, "没变": 17}))

register(Exercise(
    id="02.q2", title="注意力矩阵变大了多少倍", points=1,
    hint="注意力矩阵是 L × L：L 从 17 变成 65，大小变成 (65 / 17)² 倍。",
    reference=(65 / 17) ** 2,
    mutants=lambda: {"按 L 线性算": 65 / 17, "忘了 [CLS]：(64 / 16)²": 16.0, "只算 patch 数的比": 4.0}))

register(Exercise(
    id="02.q3", title="mask_ratio = 0.75 时的序列长度", points=1,
    hint="16 个 patch 保留 int(16 × (1 - 0.75)) = 4 个，再加上总是保留的 [CLS]。",
    reference=5,
    mutants=lambda: {"忘了 [CLS]": 4, "把 0.75 当成保留比例": 13, "没变": 17}))
