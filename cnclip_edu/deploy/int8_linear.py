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


def ort_matmul_integer(x_q, w_q, zero_point: int = 0):
    """ONNX Runtime's own `MatMulInteger(x_q, w_q, zero_point)` on this CPU: (N, K) uint8 @ (K, M) int8 -> (N, M) int32.

    A one-node graph, so that its result can be held against the exact integer product. On x86 CPUs
    with AVX2 / AVX-512 but no VNNI, ONNX Runtime's u8 x s8 kernel (vpmaddubsw) first adds each PAIR of
    neighbouring products into a 16-bit integer and clamps (saturates) it to [-32768, 32767]; with VNNI
    (vpdpbusd) or on ARM the sum is exact. Inputs are numpy arrays (or anything np.asarray takes).
    """
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    x_q, w_q = np.asarray(x_q, dtype=np.uint8), np.asarray(w_q, dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w", "zp"], ["y"])], "matmul_integer",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, x_q.shape[1]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, w_q.shape[1]])],
        [numpy_helper.from_array(w_q, "w"), numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), "zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x_q})[0]


def cpu_vnni_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str] | None:
    """The VNNI flags this CPU reports (e.g. ['avx512_vnni'] or ['avx_vnni']); [] for none; None if unreadable.

    VNNI decides two things for ONNX Runtime's int8 on x86: speed (one instruction for four u8 x s8
    products into int32) and exactness (without it, pairs of products pass through a saturating int16).
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(flag for flag in line.split(":", 1)[1].split() if "vnni" in flag)
    except OSError:
        return None
    return None
