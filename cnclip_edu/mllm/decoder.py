"""A small decoder-only language model in InternLM2's shape (the "LLM" of our Mini-InternVL).

InternLM2-Chat-1.8B: 24 layers, width 2,048, 16 heads (8 key/value heads), SwiGLU MLP of 8,192,
RMSNorm before each sub-layer, rotary position embeddings (RoPE), 92,544-token vocabulary, untied
output layer. Ours keeps every mechanism and shrinks the sizes: width 128, 4 layers, 4 heads,
~100-token vocabulary with the output layer *tied* to the input embedding (at this size the
embedding is a large share of the parameters, and tying halves it).

Inputs are embeddings, not ids, because a multimodal model replaces the `<IMG_CONTEXT>` embeddings
with the projector's outputs before the first layer. Position ids come from the padding mask
(`positions_from_mask`), so a left-padded prompt gets positions 0, 1, ... from its first real token
and batched generation equals one-by-one generation. `generate` decodes greedily with a KV cache:
each new token attends to the cached keys/values instead of recomputing the whole prefix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderConfig:
    vocab_size: int                 # the chat vocabulary (ChatVocab), not the tokenizer's 21,128
    width: int = 128                # InternLM2-1.8B: 2,048
    layers: int = 4                 # 24
    heads: int = 4                  # 16; head width 32 here, 128 there
    mlp_hidden: int = 352           # SwiGLU hidden size, ~8/3 x width (InternLM2: 8,192 = 4 x 2,048)
    rope_base: float = 10_000.0
    norm_eps: float = 1e-6
    init_std: float = 0.02


class RMSNorm(nn.Module):
    """x / rms(x) * g: LayerNorm without the mean and the bias (cheaper, as good for LLMs)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (B, 1, L, head_dim) for integer positions (B, L)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    ang = positions.float()[..., None] * inv  # (B, L, head_dim/2)
    ang = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, L, head_dim)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+d/2}) by position-dependent angles: q.k then depends on the distance."""
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-b, a], dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)

    def forward(self, x, cos, sin, mask, cache: dict | None = None):
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, L, Dh)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # generation: prepend the keys/values of earlier tokens
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        if mask is None:  # right-padded training batch: the causal mask alone is enough (see Decoder.forward)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, L, Dh)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, Dh)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    """Pre-norm: x + attn(norm(x)), then x + SwiGLU(norm(x))."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.gate_up = nn.Linear(cfg.width, 2 * cfg.mlp_hidden, bias=False)
        self.down = nn.Linear(cfg.mlp_hidden, cfg.width, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


def positions_from_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) bool, True on real tokens -> position ids counting real tokens from 0 (padding: 0)."""
    return (valid.long().cumsum(-1) - 1).clamp(min=0)


def attention_mask(valid_q: torch.Tensor, valid_k: torch.Tensor) -> torch.Tensor:
    """(B, 1, Lq, Lk) bool: causal (the last Lq of the Lk keys are the queries) and no padded keys.
    Every query may see itself, so a padding row is never all-masked (which would give NaN)."""
    Lq, Lk = valid_q.shape[1], valid_k.shape[1]
    q_pos = torch.arange(Lk - Lq, Lk, device=valid_k.device)
    k_pos = torch.arange(Lk, device=valid_k.device)
    causal = k_pos[None, :] <= q_pos[:, None]  # (Lq, Lk)
    mask = causal[None] & valid_k[:, None, :]  # (B, Lq, Lk)
    mask = mask | (k_pos[None, :] == q_pos[:, None])[None]
    return mask[:, None]


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)

    def forward(self, embeds: torch.Tensor, valid: torch.Tensor, caches: list[dict] | None = None,
                past_valid: torch.Tensor | None = None) -> torch.Tensor:
        """embeds (B, L, D), valid (B, L) -> logits (B, L, V). With `caches` (one dict per layer) the
        keys/values are kept for the next call; `past_valid` (B, P) marks the cached tokens."""
        all_valid = valid if past_valid is None else torch.cat([past_valid, valid], dim=1)  # (B, P + L)
        pos = positions_from_mask(all_valid)[:, -valid.shape[1]:]  # (B, L)
        cos, sin = rope_tables(pos, self.cfg.width // self.cfg.heads, self.cfg.rope_base)
        # Right padding (every row's real tokens first, as in training batches): a real token never
        # sees a later pad under the causal mask, and what the pads themselves compute has no label.
        # Then the plain causal kernel does it, without building a (B, 1, L, L) mask (2x faster on CPU).
        right_padded = caches is None and not bool((valid[:, 1:] & ~valid[:, :-1]).any())
        mask = None if right_padded else attention_mask(valid, all_valid)
        x = embeds
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, None if caches is None else caches[i])
        return F.linear(self.norm(x), self.embed.weight)  # tied output layer: (B, L, V)

    @torch.no_grad()
    def generate(self, embeds: torch.Tensor, valid: torch.Tensor, max_new_tokens: int, eos_id: int) -> torch.Tensor:
        """Greedy decoding of left-padded prompts (B, L, D) -> new ids (B, <= max_new_tokens);
        after a row's `eos_id` it keeps producing eos_id (cut it there)."""
        B = embeds.shape[0]
        caches = [{} for _ in self.blocks]
        logits = self(embeds, valid, caches)
        past = valid
        done = torch.zeros(B, dtype=torch.bool, device=embeds.device)
        out = []
        for _ in range(max_new_tokens):
            nxt = logits[:, -1].argmax(-1)  # (B,)
            nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
            out.append(nxt)
            done |= nxt == eos_id
            if bool(done.all()):
                break
            step_valid = torch.ones(B, 1, dtype=torch.bool, device=embeds.device)
            logits = self(self.embed(nxt)[:, None], step_valid, caches, past)
            past = torch.cat([past, step_valid], dim=1)
        return torch.stack(out, dim=1)
