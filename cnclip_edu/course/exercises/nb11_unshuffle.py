"""Exercise 11.2 of notebook 11 (from CLIP to a chat model that sees): the pixel unshuffle.

11.2 is compared with `mllm.projector.pixel_unshuffle` (equal to transformers' InternVL
`pixel_shuffle`): a hand-sized 4x4 grid, the course's (2, 4, 4, 128), a non-square grid and
InternViT's 32x32. Random values, so any wrong channel or token order shows.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 11.2 pixel unshuffle
def _unshuffle_reference(x):
    from cnclip_edu.mllm.projector import pixel_unshuffle

    return pixel_unshuffle(x, 0.5)


def _grids():
    import torch

    def rand(*shape, seed):  # the same values every call: the answer and the reference see one input
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))

    return [("4×4 网格、1 个通道，值 = 行×4 + 列", lambda: torch.arange(16.0).reshape(1, 4, 4, 1)),
            ("课程 ViT：2 个图块的 (4, 4, 128)", lambda: rand(2, 4, 4, 128, seed=1)),
            ("非正方形网格 (4, 8, 3)", lambda: rand(1, 4, 8, 3, seed=2)),
            ("InternViT-300M：(32, 32, 16)（通道取 16 以便比较）", lambda: rand(1, 32, 32, 16, seed=3))]


def _unshuffle_hidden(seed: int):
    import torch

    rng = random.Random(seed)
    shapes = [(rng.randint(1, 3), 2 * rng.randint(1, 4), 2 * rng.randint(1, 4), rng.randint(1, 8)) for _ in range(2)]
    gen_seed = rng.randint(0, 10**6)
    return [Case("随机形状 (N, H, W, D)", lambda f, shape=shape, k=k: f(torch.randn(
        *shape, generator=torch.Generator().manual_seed(gen_seed + k)))) for k, shape in enumerate(shapes)]


def _unshuffle_cases():
    return [Case(label, lambda f, make=make: f(make())) for label, make in _grids()]


def _unshuffle_mistake(kind: str):
    def pixel_unshuffle(x):
        import torch.nn.functional as F

        N, H, W, D = x.shape
        if kind == "torch":  # the same numbers, torch's channel order (d*4 + position)
            return F.pixel_unshuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        if kind == "reshape_only":  # no permute: groups 4 neighbours along a row, not a 2x2 neighbourhood
            return x.reshape(N, H // 2, W // 2, 4 * D)
        y = x.reshape(N, H // 2, 2, W // 2, 2, D)
        if kind == "col_major":  # order within the neighbourhood top-left, bottom-left, top-right, bottom-right
            return y.permute(0, 1, 3, 4, 2, 5).reshape(N, H // 2, W // 2, 4 * D)
        if kind == "transposed":  # output grid (W/2, H/2)
            return y.permute(0, 3, 1, 2, 4, 5).reshape(N, W // 2, H // 2, 4 * D)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(N, H // 2, W // 2, 4 * D)
    return pixel_unshuffle


register(Exercise(
    id="11.2", title="像素重排 (pixel unshuffle, 0.5)", points=2,
    hint="x 形状 (N, H, W, D)。把行号拆成 (2×2 邻域的行, 邻域内第几行)、列号拆成 (邻域的列, 邻域内第几列)，"
         "再调换维度的顺序，让两个“邻域内”的维挨在一起、排在 D 前面，最后把它们和 D 并成一维。"
         "每个新 token 依次是左上、右上、左下、右下四个 patch 的特征。常见错误：不做 permute 直接 reshape（拼的是同一行相邻的 4 个 patch）、"
         "用 torch 的 F.pixel_unshuffle（通道顺序不同）、邻域内顺序写成先列后行。",
    reference=_unshuffle_reference,
    cases=_unshuffle_cases,
    hidden=_unshuffle_hidden,
    builds=("cnclip_edu.mllm.projector.pixel_unshuffle", "cnclip_edu.mllm.projector.tile_tokens"),
    mutants=lambda: {
        "用 F.pixel_unshuffle（通道按 d*4 + 位置 排列）": _unshuffle_mistake("torch"),
        "没有 permute，直接 reshape": _unshuffle_mistake("reshape_only"),
        "邻域内顺序先列后行": _unshuffle_mistake("col_major"),
        "输出网格转置成 (W/2, H/2)": _unshuffle_mistake("transposed"),
    },
))
