"""Weight-only quantisation, the way a chat model is served small (InternVL ships 4-bit AWQ and 8-bit versions).

A weight matrix is stored as small integers plus one floating-point scale per group of weights:
w ~ scale * q with q in [-(2**(b-1) - 1), 2**(b-1) - 1]. With 8 bits and one scale per output row,
the rounding error is tiny; with 4 bits there are only 15 levels, so the scale is shared by small
groups along the input dimension (AWQ and GPTQ use groups of 128) to keep an outlier from crushing
its neighbours. Activations stay in floating point, and the matrices are dequantised on the fly.

`fake_quantize` rounds a copy of a model's weights exactly as that storage would, and keeps them in
float32, so we can measure what the rounding costs in accuracy without a quantised kernel. (AWQ also
rescales channels by activation size before rounding and GPTQ corrects the error as it goes; both are
refinements of this same grid.)
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def quantize_dequantize(w: torch.Tensor, bits: int, group_size: int | None = None) -> torch.Tensor:
    """Round `w` (out, in) to `bits`-bit integers with one scale per row, or per `group_size` inputs."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be in 2..16, got {bits}")
    out_f, in_f = w.shape
    g = group_size or in_f
    if in_f % g:
        raise ValueError(f"group_size {g} does not divide the input width {in_f}")
    levels = 2 ** (bits - 1) - 1
    x = w.reshape(out_f, in_f // g, g)
    scale = x.abs().amax(-1, keepdim=True).clamp(min=1e-12) / levels  # (out, groups, 1)
    return (torch.round(x / scale).clamp(-levels, levels) * scale).reshape(out_f, in_f)


def fake_quantize(model: nn.Module, bits: int, group_size: int | None = None,
                  include: tuple[type, ...] = (nn.Linear, nn.Embedding)) -> nn.Module:
    """A copy of `model` whose Linear/Embedding weights are rounded to the `bits`-bit grid."""
    q = copy.deepcopy(model)
    with torch.no_grad():
        for m in q.modules():
            if isinstance(m, include) and m.weight.dim() == 2:
                m.weight.copy_(quantize_dequantize(m.weight, bits, group_size))
    return q


def weight_bytes(n_params: int, bits: int, group_size: int | None = None, scale_bits: int = 16) -> float:
    """Storage of `n_params` weights at `bits` bits, plus one `scale_bits` scale per group."""
    groups = n_params / group_size if group_size else 0
    return n_params * bits / 8 + groups * scale_bits / 8
