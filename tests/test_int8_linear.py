"""deploy.int8_linear: the hand-written dynamic int8 Linear equals the file ONNX Runtime's quantize_dynamic
writes for a MatMul + Add (the numerics of `optimize.to_int8`), run by ONNX's reference evaluator (exactly)
and by ONNX Runtime (equal unless its AVX2 kernel saturates), on edge batches too (all positive, all
negative, all zero)."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from cnclip_edu.deploy.int8_linear import dynamic_int8_linear, quantize_activation, quantize_weight


def _ort_int8_linear(tmp_path, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, spec: bool = False,
                     **kw) -> torch.Tensor:
    """x @ w.T + b as an ONNX MatMul + Add, quantised by onnxruntime.quantization.quantize_dynamic, then run
    by ONNX Runtime (or, with spec=True, by ONNX's reference evaluator)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    m, k = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])], "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", m])],
        [numpy_helper.from_array(np.ascontiguousarray(w.T.numpy()), "W"), numpy_helper.from_array(b.numpy(), "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "f.onnx"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer's advice about pre-processing
    try:
        quantize_dynamic(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), weight_type=QuantType.QInt8, **kw)
    finally:
        root.setLevel(level)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops, ops
    if spec:  # ONNX's reference evaluator: the operators exactly as the ONNX standard defines them
        from onnx.reference import ReferenceEvaluator

        return torch.from_numpy(ReferenceEvaluator(str(tmp_path / "q.onnx")).run(None, {"x": x.numpy()})[0])
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def _batches():
    g = torch.Generator().manual_seed(0)
    return {"mixed signs": torch.randn(5, 64, generator=g), "all positive": torch.rand(4, 64, generator=g) + 0.1,
            "all negative": -torch.rand(3, 64, generator=g), "all zero": torch.zeros(2, 64),
            "one row": torch.randn(1, 64, generator=g) * 3}


@pytest.mark.parametrize("name", list(_batches()))
def test_equals_onnxruntime_dynamic_quantisation(tmp_path, name):
    x = _batches()[name]
    g = torch.Generator().manual_seed(1)
    w = torch.randn(16, 64, generator=g) * 0.05
    w[3, 7] = -0.4  # the largest magnitude is negative
    b = torch.randn(16, generator=g)
    y, acc = dynamic_int8_linear(x, w, b)
    assert acc.dtype == torch.int32 and y.dtype == torch.float32 and y.shape == (x.shape[0], 16)
    torch.testing.assert_close(y, _ort_int8_linear(tmp_path, x, w, b, spec=True), rtol=1e-6, atol=1e-6)
    # ONNX Runtime itself: equal where its u8s8 kernel does not saturate (see the last test), close everywhere
    torch.testing.assert_close(y, _ort_int8_linear(tmp_path, x, w, b), rtol=1e-2, atol=1e-2)
    assert (y - (x @ w.T + b)).abs().max() < 0.05  # and it is close to the float product


def test_pieces():
    w_q, s = quantize_weight(torch.tensor([0.5, -1.27, 0.0, 0.005]))
    assert w_q.dtype == torch.int8 and w_q.tolist() == [50, -127, 0, 0] and torch.isclose(s, torch.tensor(0.01))
    x_q, xs, zp = quantize_activation(torch.tensor([[-1.0, 0.0, 1.55]]))
    assert x_q.dtype == torch.uint8 and zp.item() == 100 and x_q[0, 1].item() == 100  # 0.0 is exactly the zero point
    assert x_q[0, 0].item() == 0 and x_q[0, 2].item() == 255 and torch.isclose(xs, torch.tensor(2.55 / 255))
    x_q, xs, zp = quantize_activation(torch.rand(3, 4) + 1)  # all positive: the range starts at 0, zero point 0
    assert zp.item() == 0 and x_q.max().item() == 255
    x_q, xs, zp = quantize_activation(torch.zeros(2, 3))
    assert xs.item() == 0 and zp.item() == 0 and x_q.eq(0).all()
    assert dynamic_int8_linear(torch.zeros(2, 3), torch.ones(4, 3), torch.arange(4.0))[0].tolist() == [[0, 1, 2, 3]] * 2


def test_without_vnni_onnxruntime_may_saturate_and_reduce_range_does_not(tmp_path):
    """Why the docstring says the exact int32 sum is what ORT's u8s8 kernels approximate: a batch of large
    activations times large weights. On CPUs with VNNI both agree; on AVX2-only CPUs pairs of products
    saturate in int16 unless the weights use 7 bits (reduce_range)."""
    x = torch.ones(4, 64)
    w, b = torch.ones(16, 64), torch.zeros(16)
    y, _ = dynamic_int8_linear(x, w, b)
    torch.testing.assert_close(y, torch.full((4, 16), 64.0))
    torch.testing.assert_close(_ort_int8_linear(tmp_path, x, w, b, spec=True), y)
    torch.testing.assert_close(_ort_int8_linear(tmp_path, x, w, b, reduce_range=True), y)


def test_ort_matmul_integer_matches_exact_or_saturates_as_documented(tmp_path):
    """ONNX Runtime's MatMulInteger: exact with VNNI; without it a pair of products is clamped to int16."""
    import numpy as np

    from cnclip_edu.deploy.int8_linear import cpu_vnni_flags, ort_matmul_integer

    small = ort_matmul_integer([[3, 200], [0, 255]], [[5, -7], [-2, 4]], zero_point=0)
    assert small.dtype == np.int32 and small.tolist() == [[-385, 779], [-510, 1020]]
    assert ort_matmul_integer([[255, 255]], [[64], [64]])[0, 0] == 2 * 255 * 64  # 7-bit weights: a pair fits int16
    pair = ort_matmul_integer([[255, 255]], [[127], [127]])[0, 0]
    assert pair in (2 * 255 * 127, 32767)  # exact (VNNI, ARM) or saturated (AVX2 / AVX-512 without VNNI)
    assert ort_matmul_integer([[130, 2]], [[1], [1]], zero_point=128)[0, 0] == (130 - 128) + (2 - 128)
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nflags : fpu avx2 avx512_vnni avx_vnni\n", encoding="utf-8")
    assert cpu_vnni_flags(info) == ["avx512_vnni", "avx_vnni"]
    info.write_text("flags : fpu avx2\n", encoding="utf-8")
    assert cpu_vnni_flags(info) == [] and cpu_vnni_flags(tmp_path / "missing") is None
