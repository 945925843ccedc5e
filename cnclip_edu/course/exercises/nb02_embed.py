"""Exercises 02.1 and 02.2 of notebook 02 (the vision tower): the embedding that turns images into the
token sequence the transformer runs on: patchify (02.1: cut into P × P patches and project each one
linearly, what the strided `conv1` does) and the [CLS] token with the positional embedding (02.2).

The answer is a function of the library's `visual` module and a tensor, compared with the library's own
method on the same module (`VisionTransformer.patch_tokens(visual, images)` is the reference of
`patch_tokens(visual, images)`). 02.1 runs on three seeded towers (course-like, tiny, and a batch of
one) and, for grading, on a tower of random size: the mutants (a reshape without the transpose, a
patch flattened as (P, P, 3), the grid walked column by column; in 02.2 [CLS] at the end, positions
left off [CLS]) keep the shape and change the numbers, so only values catch them.
"""
from __future__ import annotations

import random

import torch

from cnclip_edu.model.vision import VisionTransformer

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .nb02_common import _VISION
from .towers import images, tiny_vit


def _vit_cases(run):
    """Three towers: course-like (32 px, patch 8, width 32), tiny (12 px, patch 4), and a batch of one."""
    def cases():
        big = tiny_vit(seed=1, resolution=32, patch=8, width=32, layers=2, heads=4, output_dim=16)
        small = tiny_vit(seed=2)
        x_big, x_small, x_one = images(2, 32, seed=3), images(3, 12, seed=4), images(1, 12, seed=5)
        return [Case("32×32 图、patch 8、宽 32 的 ViT，2 张图", lambda f: run(f, big, x_big)),
                Case("12×12 图、patch 4、宽 16 的 ViT，3 张图", lambda f: run(f, small, x_small)),
                Case("同一个 12×12 的 ViT，只有 1 张图 (B = 1)", lambda f: run(f, small, x_one))]
    return cases


def _vit_hidden(run):
    """A tower of a random size (grid 2-4, patch 2-5, 1-4 heads) and a random batch (1-4 images)."""
    def hidden(seed: int):
        rng = random.Random(seed)
        grid, patch, heads = rng.randint(2, 4), rng.randint(2, 5), rng.choice([1, 2, 4])
        vit = tiny_vit(seed=seed, resolution=grid * patch, patch=patch, width=8 * heads, layers=2, heads=heads,
                       output_dim=rng.choice([4, 12]))
        x = images(rng.randint(1, 4), grid * patch, seed=seed + 1)
        return [Case("随机大小的 ViT 和一批随机图片", lambda f: run(f, vit, x))]
    return hidden


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


_PATCH_BUILDS = (_VISION + "VisionTransformer.patch_tokens", _VISION + "VisionTransformer.embed",
                 _VISION + "VisionTransformer.forward")
_patch_run = guarded(VisionTransformer.patch_tokens, _PATCH_BUILDS)

register(Exercise(
    id="02.1", title="切块并线性映射 (patchify)", points=2,
    hint="每个 patch 展平的顺序要和卷积核 conv1.weight 的 (3, P, P) 排列一致；patch 按行排列；"
         "卷积的输出是 (B, D, g, g)，变成 (B, N, D) 要交换轴，光改形状不够。",
    reference=VisionTransformer.patch_tokens,
    cases=_vit_cases(_patch_run), hidden=_vit_hidden(_patch_run), builds=_PATCH_BUILDS,
    compare=refuse_shortcuts(),
    mutants=lambda: {
        "卷积后直接 reshape 成 (B, N, D)，没有转置": lambda v, x: v.conv1(x).reshape(x.shape[0], -1, v.conv1.weight.shape[0]),
        "忘了把 (B, D, N) 转置成 (B, N, D)": lambda v, x: v.conv1(x).flatten(2),
        "展平 patch 时按 (P, P, 3) 的顺序，和卷积核 (3, P, P) 对不上": _patches_rows_then_channels,
        "按列而不是按行给 patch 排序": _patches_column_order,
        "直接调用库里的 visual.patch_tokens": lambda v, x: v.patch_tokens(x),
    }))


# ----------------------------------------------------------------------------- 02.2 [CLS] + positions
def _cls_at_end(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([t, cls], dim=1) + v.positional_embedding


def _positions_on_patches_only(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([cls, t + v.positional_embedding[1:]], dim=1)


_CLS_BUILDS = (_VISION + "VisionTransformer.add_class_and_positions", _VISION + "VisionTransformer.embed")
_cls_run = guarded(VisionTransformer.add_class_and_positions, _CLS_BUILDS)


def _cls_pos_cases():
    vit = tiny_vit(seed=6)
    g = torch.Generator().manual_seed(7)
    t3, t1 = torch.randn(3, 9, 16, generator=g), torch.randn(1, 9, 16, generator=g)
    return [Case("3 张图的 patch token (3, 9, 16)", lambda f: _cls_run(f, vit, t3)),
            Case("1 张图的 patch token (1, 9, 16)", lambda f: _cls_run(f, vit, t1))]


def _cls_pos_hidden(seed: int):
    rng = random.Random(seed)
    grid = rng.randint(2, 4)
    vit = tiny_vit(seed=seed, resolution=grid * 3, patch=3, width=8, heads=2)
    t = torch.randn(rng.randint(1, 4), grid * grid, 8, generator=torch.Generator().manual_seed(seed))
    return [Case("随机大小的一批 patch token", lambda f: _cls_run(f, vit, t))]


register(Exercise(
    id="02.2", title="加上 [CLS] 和位置编码", points=2,
    hint="[CLS] 排在所有 patch 前面；它也占一个位置，所以 positional_embedding 的每一行（包括第 0 行）都要用上。"
         "class_embedding 只有一个向量，要先变成每张图一份才能拼接。",
    reference=VisionTransformer.add_class_and_positions,
    cases=_cls_pos_cases, hidden=_cls_pos_hidden, builds=_CLS_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "[CLS] 拼在了最后": _cls_at_end,
        "位置编码只加在 patch 上，[CLS] 没有位置": _positions_on_patches_only,
        "忘了加位置编码": lambda v, t: torch.cat([v.class_embedding.expand(t.shape[0], 1, -1), t], dim=1),
    }))
