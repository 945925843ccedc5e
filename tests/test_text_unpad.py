"""The unpadded [CLS] path (text_unpad.py) equals the dense BERT forward, values and gradients."""
from __future__ import annotations

import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.model.text import BertModel, TextConfig
from cnclip_edu.model.text_unpad import cls_hidden

CAPTIONS = ["红色的圆形", "左边是一个蓝色的三角形，右边是一块绿色的正方形", "三角形", "iPhone 12 手机壳 黑色 防摔",
            "一只橘色的猫趴在红色的沙发上，旁边有一个蓝色的抱枕和一本打开的书"]


def _bert(layers: int = 3, seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    cfg = TextConfig(name="t", text_hidden_size=64, text_num_hidden_layers=layers, text_num_attention_heads=4,
                     text_intermediate_size=128, text_hidden_dropout_prob=0.0, text_attention_probs_dropout_prob=0.0)
    return BertModel(cfg)


@pytest.mark.parametrize("layers", [1, 3])
def test_values_equal_dense_forward(layers):
    bert = _bert(layers).eval()
    ids = cc.tokenize(CAPTIONS, context_length=52)  # (5, 52), mostly padding
    with torch.no_grad():
        dense = bert(ids)[:, 0]
        fast = cls_hidden(bert, ids)
    assert fast.shape == (len(CAPTIONS), 64)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)


def test_padding_inside_a_row_and_the_fallbacks():
    bert = _bert().eval()
    ids = cc.tokenize(CAPTIONS, context_length=20)
    ids[1, 5] = 0  # a padding id in the middle: masked by both paths
    full = cc.tokenize(["一二三四五六七八"] * 2, context_length=10)  # no padding at all
    lead = ids.clone()
    lead[2, 0] = 0  # a row starting with padding: the dense path's semantics are kept
    with torch.no_grad():
        for x in (ids, full, lead):
            torch.testing.assert_close(cls_hidden(bert, x), bert(x)[:, 0], rtol=1e-5, atol=1e-5)


def test_gradients_equal_dense_forward_and_with_checkpointing():
    ids = cc.tokenize(CAPTIONS, context_length=52)
    grads = []
    for path in ("dense", "unpad", "unpad+checkpoint"):
        bert = _bert(seed=1).train()
        bert.set_grad_checkpointing(path.endswith("checkpoint"))
        out = bert(ids)[:, 0] if path == "dense" else cls_hidden(bert, ids)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        grads.append({n: p.grad for n, p in bert.named_parameters() if p.grad is not None})
    dense, unpad, ckpt = grads
    assert set(dense) == set(unpad) == set(ckpt)
    for name in dense:
        scale = dense[name].abs().max().item() + 1e-12
        # + 1e-7: the key bias gets a gradient that is 0 in exact arithmetic (softmax ignores a shift), ~1e-9 here
        assert (unpad[name] - dense[name]).abs().max().item() <= 1e-4 * scale + 1e-7, name
        torch.testing.assert_close(ckpt[name], unpad[name], rtol=0, atol=1e-6 * scale + 1e-9)


def test_encode_text_uses_it_and_dense_remains_available():
    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    ids = cc.tokenize(CAPTIONS, context_length=52)
    with torch.no_grad():
        fast, dense = model.encode_text(ids), model.encode_text(ids, unpad=False)
        ref = model.bert(ids)[:, 0] @ model.text_projection
    torch.testing.assert_close(dense, ref, rtol=0, atol=0)
    torch.testing.assert_close(fast, dense, rtol=1e-5, atol=1e-5)


def test_dropout_applies_in_training_mode():
    torch.manual_seed(0)
    cfg = TextConfig(name="t", text_hidden_size=64, text_num_hidden_layers=2, text_num_attention_heads=4,
                     text_intermediate_size=128, text_hidden_dropout_prob=0.5, text_attention_probs_dropout_prob=0.5)
    bert = BertModel(cfg)
    ids = cc.tokenize(CAPTIONS, context_length=52)
    with torch.no_grad():
        a, b = cls_hidden(bert.train(), ids), cls_hidden(bert, ids)
        c, d = cls_hidden(bert.eval(), ids), cls_hidden(bert, ids)
    assert not torch.allclose(a, b) and torch.isfinite(a).all()
    torch.testing.assert_close(c, d, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_autocast_and_half_weights(dtype):
    """What the GPU paths do (autocast bf16/fp16, fp16 weights for export checks), exercised on CPU."""
    torch.manual_seed(0)
    model = cc.create_model("course")
    ids = cc.tokenize(CAPTIONS, context_length=52)
    with torch.autocast("cpu", dtype=dtype):
        fast, dense = model.encode_text(ids), model.encode_text(ids, unpad=False)
        fast.float().pow(2).sum().backward()
    assert fast.dtype == dtype and torch.isfinite(fast).all()
    torch.testing.assert_close(fast.float(), dense.float(), rtol=2e-2, atol=2e-2)
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad is not None
    half = model.to(dtype).eval()
    with torch.no_grad():
        torch.testing.assert_close(half.encode_text(ids).float(), half.encode_text(ids, unpad=False).float(),
                                   rtol=2e-2, atol=2e-2)
