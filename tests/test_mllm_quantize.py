"""Weight-only quantisation: values on the b-bit grid, error within half a step, groups honoured."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.mllm.decoder import Decoder, DecoderConfig
from cnclip_edu.mllm.quantize import fake_quantize, quantize_dequantize, weight_bytes


@pytest.mark.parametrize("bits,group", [(8, None), (4, None), (4, 8), (3, 16)])
def test_values_on_the_grid_and_error_within_half_a_step(bits, group):
    w = torch.randn(6, 32, generator=torch.Generator().manual_seed(bits))
    q = quantize_dequantize(w, bits, group)
    g = group or 32
    levels = 2 ** (bits - 1) - 1
    scale = w.reshape(6, -1, g).abs().amax(-1, keepdim=True) / levels
    steps = q.reshape(6, -1, g) / scale
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)  # integers times the group's scale
    assert steps.abs().max() <= levels + 1e-4 and len(torch.unique(steps.round())) <= 2 * levels + 1
    assert ((q - w).reshape(6, -1, g).abs() <= scale / 2 + 1e-7).all()
    # the largest weight of each group is kept exactly
    idx = w.reshape(6, -1, g).abs().argmax(-1, keepdim=True)
    torch.testing.assert_close(q.reshape(6, -1, g).gather(-1, idx), w.reshape(6, -1, g).gather(-1, idx))


def test_groups_protect_small_weights_from_an_outlier():
    w = torch.full((1, 64), 0.01)
    w[0, 0] = 10.0  # one outlier
    per_row = quantize_dequantize(w, 4)
    grouped = quantize_dequantize(w, 4, group_size=16)
    assert per_row[0, 1:].abs().max() == 0  # 0.01 rounds to 0 on a grid of step 10/7
    torch.testing.assert_close(grouped[0, 16:], w[0, 16:])  # other groups keep their own scale


def test_fake_quantize_copies_and_rounds_every_matrix():
    torch.manual_seed(0)
    m = Decoder(DecoderConfig(vocab_size=20, width=32, layers=1, heads=2, mlp_hidden=64))
    q = fake_quantize(m, 4, group_size=16)
    for (name, a), (_, b) in zip(m.named_parameters(), q.named_parameters()):
        if a.dim() == 2:
            assert not torch.equal(a, b) and torch.equal(b, quantize_dequantize(a, 4, 16)), name
        else:
            assert torch.equal(a, b), name  # norms stay in floating point
    with pytest.raises(ValueError, match="divide"):
        quantize_dequantize(torch.zeros(2, 10), 4, 3)


def test_weight_bytes():
    assert weight_bytes(1_800_000_000, 16) == 3.6e9        # InternLM2-1.8B in fp16/bf16
    assert weight_bytes(1_800_000_000, 4, 128) == pytest.approx(0.9e9 + 1.8e9 / 128 * 2)
