"""The text tower's [CLS] state computed on real tokens only: same numbers, about half the work.

Captions are short and padded to the longest one of the batch: in the toy world 16 real tokens out
of 33 on average, in MUGE a similar ratio at context 52. `BertModel.forward` (text.py, the readable
version) runs every layer on every position, padding included, and masks the padding out of the
attention. Everything in a BERT layer except the attention itself is position-wise (the Q/K/V and
output projections, LayerNorms, the feed-forward block), so it can run on the real tokens alone:

1. "unpad": gather the real tokens of the whole batch into one (T, H) matrix, T = number of real tokens;
2. per layer, scatter K and V (and Q) back to (B, L, H) for `scaled_dot_product_attention` with the
   same padding mask, and gather the result back to (T, H);
3. the last layer only needs the [CLS] row of each caption (CLIP reads nothing else), so its query,
   output projection and feed-forward block run on B rows instead of T.

Real tokens never attend to padding (the mask), so their states do not depend on what the padding
rows hold: the result equals `bert(ids)[:, 0]` up to float rounding (tests/test_text_unpad.py).
Dropout draws different masks than the dense path (other tensor shapes), same distribution.
The ONNX export keeps the dense path: this one has data-dependent shapes (`nonzero`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .text import PAD_ID, BertLayer, BertModel, padding_bias


def _to_padded(t: torch.Tensor, flat: torch.Tensor, B: int, L: int) -> torch.Tensor:
    """(T, H) real-token rows -> (B, L, H), zeros at the padding positions."""
    return t.new_zeros(B * L, t.shape[-1]).index_copy(0, flat, t).view(B, L, -1)


def _packed_layer(layer: BertLayer, h: torch.Tensor, flat: torch.Tensor, B: int, L: int, bias: torch.Tensor,
                  cls_rows: torch.Tensor | None) -> torch.Tensor:
    """One BertLayer on packed rows h (T, H); with `cls_rows` (B,) only the [CLS] rows come out (B, H)."""
    sa = layer.attention.self
    H = h.shape[-1]
    k = sa.split(_to_padded(sa.key(h), flat, B, L))    # (B, nh, L, Dh)
    v = sa.split(_to_padded(sa.value(h), flat, B, L))
    p = sa.dropout_p if layer.training else 0.0
    if cls_rows is None:
        q = sa.split(_to_padded(sa.query(h), flat, B, L))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, nh, L, Dh)
        y = y.transpose(1, 2).reshape(B * L, H)[flat]                              # (T, H)
        resid = h
    else:
        resid = h[cls_rows]                                                        # (B, H)
        q = sa.query(resid).view(B, 1, sa.heads, H // sa.heads).transpose(1, 2)    # (B, nh, 1, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, nh, 1, Dh)
        y = y.reshape(B, H)
    a = layer.attention.output(y, resid)
    return layer.output(layer.intermediate(a), a)


def cls_hidden(bert: BertModel, ids: torch.Tensor) -> torch.Tensor:
    """(B, L) token ids -> (B, H) final [CLS] hidden states, computed on the real tokens only."""
    B, L = ids.shape
    keep = ids != PAD_ID                                                           # (B, L)
    if bool(keep.all()) or not bool(keep[:, 0].all()):
        # no padding: nothing to skip; a row starting with padding: keep the dense path's exact semantics
        return bert(ids)[:, 0]
    x = bert.embeddings(ids)                                                       # (B, L, H)
    layers = bert.encoder.layer
    if len(layers) == 0:
        return x[:, 0]
    flat = keep.flatten().nonzero().squeeze(1)                                     # (T,) into B*L
    counts = keep.sum(1)
    cls_rows = counts.cumsum(0) - counts                                           # (B,) packed row of each [CLS]
    bias = padding_bias(ids, x.dtype)                                              # (B, 1, 1, L)
    h = x.reshape(B * L, -1)[flat]                                                 # (T, H)
    ckpt = bert.encoder.grad_checkpointing and bert.training and torch.is_grad_enabled()
    for i, layer in enumerate(layers):
        rows = cls_rows if i == len(layers) - 1 else None
        if ckpt:
            h = checkpoint(_packed_layer, layer, h, flat, B, L, bias, rows, use_reentrant=False)
        else:
            h = _packed_layer(layer, h, flat, B, L, bias, rows)
    return h                                                                       # (B, H)
