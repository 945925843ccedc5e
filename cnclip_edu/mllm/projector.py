"""From a CLIP ViT to language-model tokens: patch features, pixel unshuffle, and the MLP projector.

Mini-InternVL per 448-px tile: InternViT-300M (patch 14) gives 1 + 32*32 = 1,025 tokens of width
1,024. InternVL drops the [CLS] token, lays the 1,024 patch tokens out on their 32x32 grid, and
*pixel-unshuffles* with ratio 0.5: every 2x2 block of neighbouring patches becomes one token of
width 4*1,024 = 4,096 (space-to-depth). 1,024 tokens -> 256 tokens per tile, no information thrown
away, just stacked into channels. An MLP (LayerNorm -> Linear -> GELU -> Linear, InternVL's `mlp1`)
then maps 4,096 -> the language model's width (2,048 for InternLM2-1.8B).

Ours, per 32-px tile: the course ViT (patch 8) gives 1 + 4*4 tokens of width 128; drop [CLS] ->
(4, 4, 128) -> pixel unshuffle -> (2, 2, 512) = 4 tokens of width 512 -> MLP -> 4 tokens of the
decoder's width (128). Same recipe, 1/64 of the tokens.

Channel order matters when loading real weights: InternVL's `pixel_shuffle` (ps_version v2) puts the
2x2 block's patches one after another, row-major (top-left, top-right, bottom-left, bottom-right),
each D wide. torch's `F.pixel_unshuffle` interleaves them per channel instead (d*4 + k): the same
numbers in another order, which a trained `mlp1` would read as garbage. The tests check ours
against transformers' `InternVLModel.pixel_shuffle`.
"""
from __future__ import annotations

import torch
from torch import nn


def pixel_unshuffle(x: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """(N, H, W, D) -> (N, H*scale, W*scale, D/scale**2), InternVL's channel order (see module doc).

    out[n, i, j] = concat(x[n, 2i, 2j], x[n, 2i, 2j+1], x[n, 2i+1, 2j], x[n, 2i+1, 2j+1]) for scale 0.5.
    """
    N, H, W, D = x.shape
    r = round(1 / scale)
    if abs(1 / scale - r) > 1e-9 or H % r or W % r:
        raise ValueError(f"pixel_unshuffle: grid {H}x{W} must be divisible by 1/scale = {1 / scale:g}")
    x = x.reshape(N, H // r, r, W // r, r, D)       # (N, H/r, row in block, W/r, col in block, D)
    x = x.permute(0, 1, 3, 2, 4, 5)                 # (N, H/r, W/r, row in block, col in block, D)
    return x.reshape(N, H // r, W // r, r * r * D)  # (N, H/r, W/r, r*r*D)


class MLPProjector(nn.Module):
    """InternVL's `mlp1`: LayerNorm(4D) -> Linear(4D, d) -> GELU -> Linear(d, d), token by token.

    The LayerNorm puts ViT features (whose scale the language model never saw) on a standard scale;
    two layers with a non-linearity map them into the decoder's embedding space."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in_dim) -> (..., out_dim)
        return self.fc2(self.act(self.fc1(self.norm(x))))


class PatchFeatures(nn.Module):
    """Per-tile patch tokens of a course CLIP ViT, without [CLS]: (T, 3, R, R) -> (T, g, g, D).

    Calls the tower's own submodules (embed, ln_pre, blocks) rather than its forward, which returns
    only the projected [CLS]. `select_layer` picks which block's output: -1 is the last one, as in
    Mini-InternVL; LLaVA uses -2, because in a CLIP trained only through [CLS] the last block's
    patch outputs feed nothing and get no direct training signal."""

    def __init__(self, visual: nn.Module, select_layer: int = -1):
        super().__init__()
        n_blocks = len(visual.transformer.resblocks)
        if not -n_blocks <= select_layer <= -1:
            raise ValueError(f"select_layer must be in -{n_blocks}..-1 for a {n_blocks}-block ViT, got {select_layer}")
        self.visual = visual
        self.select_layer = select_layer
        self.grid = visual.grid_size
        self.width = visual.conv1.out_channels

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.ln_pre(v.embed(tiles.to(v.conv1.weight.dtype)))  # (T, 1 + g*g, D)
        blocks = v.transformer.resblocks
        for block in blocks[: len(blocks) + 1 + self.select_layer]:
            x = block(x)
        T = x.shape[0]
        return x[:, 1:].reshape(T, self.grid, self.grid, self.width)  # drop [CLS]: (T, g, g, D)


def tile_tokens(patches: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """(T, g, g, D) patch grid -> (T, (g*scale)**2, D/scale**2): the tokens of each tile, row-major."""
    x = pixel_unshuffle(patches, scale)  # (T, g', g', D')
    return x.reshape(x.shape[0], -1, x.shape[-1])
