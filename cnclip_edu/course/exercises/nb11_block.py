"""Exercise 11.5 of notebook 11 (from CLIP to a chat model that sees): one decoder block, by hand.

The student writes the forward pass of one `decoder.Block` from its parameters: RMSNorm -> causal
self-attention with RoPE on the queries and keys -> residual -> RMSNorm -> SwiGLU -> residual. It is
compared with the library's `Block.forward` (with `rope_tables` at positions 0..L-1 and the plain causal
mask) on blocks with sharp random weights (std 0.3, norm gains away from 1), so that each plausible slip
below moves the output far beyond the tolerance. No padding here: the padding mask is 11.9's business.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register

_BLOCKS = {}


def _block(width: int = 16, heads: int = 2, hidden: int = 24, seed: int = 7):
    """A library Block with sharp random weights: every linear std 0.3, the RMSNorm gains in [0.5, 1.5]."""
    key = (width, heads, hidden, seed)
    if key not in _BLOCKS:
        import torch

        from cnclip_edu.mllm.decoder import Block, DecoderConfig

        g = torch.Generator().manual_seed(seed)
        b = Block(DecoderConfig(vocab_size=8, width=width, heads=heads, mlp_hidden=hidden)).eval()
        with torch.no_grad():
            for name, p in b.named_parameters():
                if name.endswith("norm.weight"):
                    p.copy_(0.5 + torch.rand(p.shape, generator=g))
                else:
                    p.copy_(0.3 * torch.randn(p.shape, generator=g))
        _BLOCKS[key] = b
    return _BLOCKS[key]


def _x(B: int, L: int, D: int, seed: int):
    import torch

    return torch.randn(B, L, D, generator=torch.Generator().manual_seed(seed)) + 0.3   # (B, L, D), rows not zero-mean


def _block_reference(block, x):
    import torch

    from cnclip_edu.mllm.decoder import rope_tables

    B, L, D = x.shape
    pos = torch.arange(L).expand(B, L)                                  # (B, L): no padding
    cos, sin = rope_tables(pos, D // block.attn.heads, 10_000.0)
    with torch.no_grad():
        return block(x, cos, sin, None)                                 # mask None: the causal kernel


def _run(f, block, x):
    import torch

    with torch.no_grad():
        return f(block, x)


def _block_cases():
    return [Case("1 段、长 1 的序列（只有自己可看）", lambda f: _run(f, _block(), _x(1, 1, 16, 1))),
            Case("2 段、长 6 的序列，宽 16、2 个头", lambda f: _run(f, _block(), _x(2, 6, 16, 2))),
            Case("1 段、长 9 的序列，宽 32、4 个头（每头 8 维）", lambda f: _run(f, _block(32, 4, 40, 3), _x(1, 9, 32, 4)))]


def _block_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice((1, 2, 4))
    width = heads * rng.choice((4, 8))
    blk = _block(width, heads, rng.choice((12, 24, 36)), 100 + seed)
    B, L, s = rng.randint(1, 3), rng.randint(3, 10), rng.randint(0, 10**6)
    return [Case("随机大小的块和一批序列", lambda f: _run(f, blk, _x(B, L, width, s))),
            Case("同一个块、长 2 的序列", lambda f: _run(f, blk, _x(1, 2, width, s + 1)))]


def _block_mistake(kind: str):
    def decoder_block(block, x):
        import math

        import torch
        import torch.nn.functional as F

        B, L, D = x.shape
        H = block.attn.heads
        Dh = D // H

        def norm(t, w):
            if kind == "layernorm":
                return F.layer_norm(t, (D,), w, None, 1e-6)
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w

        def rope(t):
            inv = 10_000.0 ** (-torch.arange(0, Dh, 2, dtype=torch.float32) / Dh)
            ang = torch.arange(L, dtype=torch.float32)[:, None] * inv          # (L, Dh/2)
            cos, sin = ang.cos(), ang.sin()
            if kind == "rope_interleaved":                                    # pairs (x_2i, x_2i+1)
                a, b = t[..., 0::2], t[..., 1::2]
                return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)
            a, b = t[..., : Dh // 2], t[..., Dh // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)

        h = norm(x, block.attn_norm.weight)
        q, k, v = (h @ block.attn.qkv.weight.T).view(B, L, 3, H, Dh).permute(2, 0, 3, 1, 4)   # (B, H, L, Dh)
        if kind != "no_rope":
            q, k = rope(q), rope(k)
        if kind == "rope_v":
            v = rope(v)
        scores = q @ k.transpose(-1, -2) / (1.0 if kind == "no_scale" else math.sqrt(Dh))     # (B, H, L, L)
        if kind != "no_causal":
            scores = scores.masked_fill(~torch.ones(L, L, dtype=torch.bool).tril(), float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, L, D) @ block.attn.out.weight.T
        x = a if kind == "no_attn_residual" else x + a
        gate, up = (norm(x, block.mlp_norm.weight) @ block.gate_up.weight.T).chunk(2, dim=-1)
        m = (gate * F.silu(up) if kind == "silu_up" else F.silu(gate) * up) @ block.down.weight.T
        return m if kind == "no_mlp_residual" else x + m
    return decoder_block


register(Exercise(
    id="11.5", title="亲手写一个解码器层：RMSNorm、带 RoPE 的因果注意力、SwiGLU、两处残差", points=4,
    hint="按顺序：先归一化（只除以均方根，不减均值），再注意力，加回输入；再归一化、SwiGLU，再加回来。"
         "旋转位置编码只作用在查询和键上（值不转），把每个头的前一半和后一半配成对来转；"
         "因果：位置 t 只看 0..t；SwiGLU 里过 SiLU 的是门 (gate) 那一半。",
    reference=_block_reference,
    cases=_block_cases,
    hidden=_block_hidden,
    builds=("cnclip_edu.mllm.decoder.Block.forward", "cnclip_edu.mllm.decoder.Attention.forward",
            "cnclip_edu.mllm.decoder.RMSNorm.forward", "cnclip_edu.mllm.decoder.rope_tables",
            "cnclip_edu.mllm.decoder.apply_rope"),
    mutants=lambda: {
        "没有因果掩码（每个位置都看得见后面的 token）": _block_mistake("no_causal"),
        "RoPE 也转了值 (V)": _block_mistake("rope_v"),
        "没有 RoPE": _block_mistake("no_rope"),
        "RoPE 把相邻的两维 (x_2i, x_2i+1) 配成对（库是前一半和后一半配对）": _block_mistake("rope_interleaved"),
        "LayerNorm（减了均值）代替 RMSNorm": _block_mistake("layernorm"),
        "SiLU 放在了 up 那一半上": _block_mistake("silu_up"),
        "注意力之后没有加回残差": _block_mistake("no_attn_residual"),
        "MLP 之后没有加回残差": _block_mistake("no_mlp_residual"),
        "注意力分数没有除以 √(每头的维数)": _block_mistake("no_scale"),
    },
))
