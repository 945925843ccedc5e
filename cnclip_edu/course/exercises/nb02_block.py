"""Exercise 02.4 of notebook 02 (the vision tower): the pre-LN residual block, its MLP put together by
hand with the student's own QuickGELU.

Compared with `ResidualAttentionBlock.forward` on the same block (two seeded blocks, one with large
inputs; for grading a block of random width). The mutants are the orders a student knows from elsewhere
(post-LN as in BERT, the residual taken after the LayerNorm) and the activations that are almost
QuickGELU (exact GELU, SiLU): the block's output tells each of them apart.
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from cnclip_edu.model.vision import ResidualAttentionBlock

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .nb02_common import _VISION
from .towers import tiny_vit


# ----------------------------------------------------------------------------- 02.4 the pre-LN block
def _post_ln(b, x):
    x = b.ln_1(x + b.attn(x))
    return b.ln_2(x + b.mlp(x))


def _normalised_residual(b, x):
    h = b.ln_1(x)
    x = h + b.attn(h)
    h = b.ln_2(x)
    return h + b.mlp(h)


def _block_with(b, x, act):
    x = x + b.attn(b.ln_1(x))
    return x + b.mlp.c_proj(act(b.mlp.c_fc(b.ln_2(x))))


# QuickGELU.forward too: the exercise asks for the MLP put together by hand, so `block.mlp(h)` (an
# nn.Sequential that runs the library's QuickGELU) and `block.mlp.gelu(h)` are refused; c_fc / c_proj
# (plain nn.Linear) stay allowed, and so does `block.attn` (02.3 may not have passed yet)
_BLOCK_BUILDS = (_VISION + "ResidualAttentionBlock.forward", _VISION + "Transformer.forward",
                 _VISION + "QuickGELU.forward")
_block_run = guarded(ResidualAttentionBlock.forward, _BLOCK_BUILDS)


def _block_cases():
    vit = tiny_vit(seed=12, width=32, heads=4)
    g = torch.Generator().manual_seed(13)
    x1, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(1, 5, 32, generator=g) * 3
    blocks = vit.transformer.resblocks
    return [Case("第 1 个块，x 形状 (2, 10, 32)", lambda f: _block_run(f, blocks[0], x1)),
            Case("第 2 个块，x 形状 (1, 5, 32)，数值较大", lambda f: _block_run(f, blocks[1], x2))]


def _block_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    vit = tiny_vit(seed=seed, width=8 * heads, heads=heads)
    x = torch.randn(rng.randint(1, 3), rng.randint(2, 12), 8 * heads, generator=torch.Generator().manual_seed(seed)) * 2
    block = vit.transformer.resblocks[rng.randint(0, 1)]
    return [Case("随机宽度的块、随机输入", lambda f: _block_run(f, block, x))]


register(Exercise(
    id="02.4", title="pre-LN 残差块 (residual block)", points=2,
    hint="pre-LN：LayerNorm 只作用在进子层的那一份上，加回去的是没有归一化的 x；两个子层各用自己的 LayerNorm；"
         "MLP 要自己拼：c_fc、你自己写的激活函数（CLIP 训练时用的那一个，见上面的图）、c_proj——"
         "整个 block.mlp(...) 和 block.mlp.gelu(...) 都会调用库里的 QuickGELU，不算数。",
    reference=ResidualAttentionBlock.forward, needs=("02.3",),
    cases=_block_cases, hidden=_block_hidden, builds=_BLOCK_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "写成了 post-LN (BERT 的顺序)": _post_ln,
        "残差加的是归一化以后的 x": _normalised_residual,
        "MLP 没有加残差": lambda b, x: b.mlp(b.ln_2(x + b.attn(b.ln_1(x)))),
        "两个子层都用了 ln_1": lambda b, x: (lambda y: y + b.mlp(b.ln_1(y)))(x + b.attn(b.ln_1(x))),
        "MLP 用了精确的 GELU 而不是 QuickGELU": lambda b, x: _block_with(b, x, F.gelu),
        "QuickGELU 忘了 1.702（成了 SiLU）": lambda b, x: _block_with(b, x, lambda t: t * torch.sigmoid(t)),
        "直接调用库里的块 block(x)": lambda b, x: b(x),
        "MLP 直接用库里的 block.mlp（没有自己写 QuickGELU）": lambda b, x: (lambda y: y + b.mlp(b.ln_2(y)))(
            x + b.attn(b.ln_1(x))),
        "激活函数用了库里的 block.mlp.gelu": lambda b, x: _block_with(b, x, b.mlp.gelu),
    }))
