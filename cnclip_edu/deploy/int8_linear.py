"""One Linear layer as ONNX Runtime's dynamic int8 quantisation computes it, written out in torch.

    y, acc = dynamic_int8_linear(x, weight, bias)   # x (N, K) float, weight (M, K) -> y (N, M), acc (N, M) int32

This is the arithmetic behind `optimize.to_int8` (`onnxruntime.quantization.quantize_dynamic` with
int8 weights): each `MatMul` becomes

    DynamicQuantizeLinear(x) -> MatMulInteger(x_q, w_q, x_zero_point, 0) -> Cast -> Mul(x_scale * w_scale) -> Add(bias)

- weights, once, at export: symmetric int8 with one scale per tensor, w_scale = max|w| / 127,
  w_q = round(w / w_scale) in [-127, 127], zero point 0;
- activations, at run time, over the whole batch (one scale for the tensor, "per batch"): the
  range [min(0, min x), max(0, max x)] (0 always inside, so 0 is exact and padding stays 0) is
  mapped onto uint8 0..255 with x_scale = (hi - lo) / 255 and a zero point x_zp = round(-lo / x_scale);
  x_q = clamp(round(x / x_scale) + x_zp, 0, 255). An all-zero batch gets x_scale = 0 and x_zp = 0;
- the product in integers, uint8 x int8 (u8 x s8) accumulated in int32:
  acc = (x_q - x_zp) @ w_q^T; then y = acc * (x_scale * w_scale) + bias in float.

Rounding is to the nearest integer, ties to even (ONNX's rule; `torch.round` does the same).
We use ONNX Runtime's numerics, not `torch.ao.quantization.quantize_dynamic`'s, because the
library's int8 files are ONNX Runtime's (torch's version picks its own activation range rules and
kernels). tests/test_int8_linear.py checks this function against ONNX Runtime running a quantised
MatMul + Add. One difference is deliberate: ONNX Runtime's u8s8 kernels on CPUs with AVX2 but no
VNNI add pairs of u8 x s8 products in int16 and can saturate; the exact int32 sum here is what
those kernels approximate (`to_int8(..., reduce_range=True)` avoids the saturation).
"""
from __future__ import annotations

import torch


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-tensor int8: (w_q int8 same shape, scale ()). The largest |w| lands on +-127."""
    scale = weight.abs().max() / 127                               # () one step of the int8 grid
    if scale == 0:                                                 # an all-zero weight: any scale is exact
        scale = torch.ones((), dtype=weight.dtype)
    w_q = torch.round(weight / scale).clamp(-127, 127).to(torch.int8)
    return w_q, scale


def quantize_activation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX's DynamicQuantizeLinear: (x_q uint8 same shape, scale (), zero point () uint8), one range per tensor."""
    lo = torch.clamp(x.min(), max=0.0)                             # () the range always holds 0
    hi = torch.clamp(x.max(), min=0.0)
    scale = (hi - lo) / 255
    if scale == 0:                                                 # all zeros: every x_q is 0
        return torch.zeros_like(x, dtype=torch.uint8), scale, torch.zeros((), dtype=torch.uint8)
    zero_point = torch.round(-lo / scale).clamp(0, 255)            # () the integer that stands for 0.0
    x_q = (torch.round(x / scale) + zero_point).clamp(0, 255).to(torch.uint8)
    return x_q, scale, zero_point.to(torch.uint8)


def dynamic_int8_linear(x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x @ weight^T + bias, computed as ONNX Runtime's dynamic int8 does: -> (y float (N, M), acc int32 (N, M)).

    x (N, K) float; weight (M, K) as in nn.Linear; bias (M,) or None. `acc` is the integer product
    (x_q - x_zp) @ w_q^T before rescaling: returned so that a caller can see it is exact integers.
    """
    w_q, w_scale = quantize_weight(weight)                         # (M, K) int8, ()
    x_q, x_scale, x_zp = quantize_activation(x)                    # (N, K) uint8, (), ()
    a = x_q.to(torch.int32) - x_zp.to(torch.int32)                 # (N, K) in [-255, 255]
    acc = (a.to(torch.int64) @ w_q.to(torch.int64).T).to(torch.int32)   # (N, M) exact: |acc| < 2^31 for K < 66,000
    y = acc.to(torch.float32) * (x_scale * w_scale)                # (N, M) back to float
    return (y + bias if bias is not None else y), acc
