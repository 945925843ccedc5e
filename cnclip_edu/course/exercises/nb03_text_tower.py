"""Exercises 03.1-03.4 of notebook 03 (the text tower, built along): BERT's embeddings, masked attention,
one post-LN layer, `encode_text(model, tokens)`.

Layer-level answers run on seeded tiny models (towers.py) and token batches with different amounts of
padding, compared with the library's own module. 03.1 also follows tensors made without `device=`
(`_DefaultDevice`, default_device.py). Every exercise has grading cases drawn from a seed (`hidden`) and
names the library routines it builds (`builds`, guards.py). The student's way written here
(`_embeddings`, `_masked_attention`, with one choice done differently for the mutants) also builds the
mutants of 03.8 and 03.9 (nb03_own_modules.py).
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnclip_edu.model.clip import CLIP
from cnclip_edu.model.text import BertEmbeddings, padding_bias

from .core import Case, Exercise, register
from .default_device import _DefaultDevice
from .guards import guarded, refuse_shortcuts
from .towers import feature_probes, tiny_clip, tokens

_TEXT = "cnclip_edu.model.text."
_SDPA = "torch.nn.functional.scaled_dot_product_attention"
# real lengths (with [CLS] and [SEP]) per sentence: one full, one half padding, one almost all padding
_LENGTHS = [12, 6, 3]


def _model_cases(run):
    """run(answer, model, ids) on two tiny CLIPs and token batches with padding (an empty caption included)."""
    def cases():
        a, b = tiny_clip(seed=1), tiny_clip(seed=2)
        ids_a, ids_b = tokens(_LENGTHS, 12, seed=3), tokens([2, 9], 10, seed=4)
        return [Case("3 句话，长度 12 / 6 / 3（后两句有 [PAD]）", lambda f: run(f, a, ids_a)),
                Case("另一个模型，2 句话补齐到 10，其中一句是空句子（只有 [CLS] [SEP]）", lambda f: run(f, b, ids_b))]
    return cases


def _model_hidden(run):
    def hidden(seed: int):
        rng = random.Random(seed)
        L = rng.randint(4, 16)
        lengths = [L, rng.randint(2, L - 1)] + [rng.randint(2, L) for _ in range(rng.randint(0, 2))]
        rng.shuffle(lengths)
        m, ids = tiny_clip(seed=seed), tokens(lengths, L, seed=seed + 1)
        return [Case("随机长度的一批句子（有的补了 [PAD]）", lambda f: run(f, m, ids))]
    return hidden


def _hidden_states(model, ids):
    """Hidden states entering layer 0 (what a layer-level answer receives)."""
    with torch.no_grad():
        return model.bert.embeddings(ids)


# ----------------------------------------------------------------------------- 03.1 embeddings
def _default_device_use(f, m, ids):
    """-> "没有" or which factory's tensor met the input's data without a device (in Chinese)."""
    mode = _DefaultDevice()
    with mode:
        out = _emb(f, m, ids)
    if isinstance(out, dict):  # refused (the shortcut marker)
        return out
    if mode.mixed:
        return (f"{mode.mixed[0]}(...) 没有写 device，新建的张量留在默认设备 (CPU) 上，又和输入的数据一起计算了："
                "输入和模型在 GPU 上时，这一步会报“不在同一个设备上”的错")
    return "新建的张量都和输入在同一设备上"


def _embeddings(emb, ids, positions=None, token_type=True, layer_norm=True):
    L = ids.shape[1]
    pos = torch.arange(L, device=ids.device) if positions is None else positions(L)
    x = emb.word_embeddings(ids) + emb.position_embeddings(pos)
    if token_type:
        x = x + emb.token_type_embeddings.weight[0]
    return emb.LayerNorm(x) if layer_norm else x


_EMB_BUILDS = (_TEXT + "BertEmbeddings.forward", _TEXT + "BertModel.forward")
_emb_run = guarded(BertEmbeddings.forward, _EMB_BUILDS)


def _emb(f, m, ids):
    with torch.no_grad():
        return _emb_run(f, m.bert.embeddings, ids)


def _emb_cases():
    a = tiny_clip(seed=1)
    ids = tokens(_LENGTHS, 12, seed=3)
    return [*_model_cases(_emb)(),
            Case("输入在 GPU 上时也要能算：新建的位置 id 要和输入在同一设备上", lambda f: _default_device_use(f, a, ids))]


def _emb_hidden(seed: int):
    cases = _model_hidden(_emb)(seed)
    m, ids = tiny_clip(seed=seed + 2), tokens([5, 3], 6, seed=seed + 3)
    return [*cases, Case("新建张量的设备", lambda f: _default_device_use(f, m, ids))]


register(Exercise(
    id="03.1", title="BERT 的三种嵌入相加再 LayerNorm", points=2,
    hint="三张表各查一次：词按 id 查，位置按 0, 1, …, L-1 查（第一个位置的编号是几？你新建的位置编号在哪个设备上？），句子类型只有一句话；"
         "三者相加之后还有一步。",
    reference=BertEmbeddings.forward,
    cases=_emb_cases, hidden=_emb_hidden, builds=_EMB_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了句子类型嵌入 (token type)": lambda e, ids: _embeddings(e, ids, token_type=False),
        "忘了 LayerNorm": lambda e, ids: _embeddings(e, ids, layer_norm=False),
        "位置从 1 开始编号": lambda e, ids: _embeddings(e, ids, positions=lambda L: torch.arange(1, L + 1, device=ids.device)),
        "torch.arange(L) 没有写 device（输入在 GPU 上时出错）":
            lambda e, ids: _embeddings(e, ids, positions=lambda L: torch.arange(L)),
        "位置 id 建在 CPU 上再扩成 (B, L)": lambda e, ids: _embeddings(
            e, ids, positions=lambda L: torch.arange(L).expand(ids.shape[0], L)[0]),
        "直接调用库里的 emb(ids)": lambda e, ids: e(ids),
    }))


# ----------------------------------------------------------------------------- 03.2 masked attention
def _masked_attention(sa, x, ids, mask="keys", scale=True):
    B, L, D = x.shape
    H = sa.heads

    def split(t):  # (B, L, D) -> (B, H, L, Dh)
        return t.view(B, L, H, D // H).transpose(1, 2)

    q, k, v = split(sa.query(x)), split(sa.key(x)), split(sa.value(x))
    scores = q @ k.transpose(-1, -2)
    if scale:
        scores = scores / math.sqrt(D // H)
    pad = ids == 0  # (B, L)
    if mask == "keys":
        scores = scores.masked_fill(pad[:, None, None, :], -1e9)
    elif mask == "queries":
        scores = scores.masked_fill(pad[:, None, :, None], -1e9)
    elif mask == "real":
        scores = scores.masked_fill(~pad[:, None, None, :], -1e9)
    y = scores.softmax(dim=-1) @ v  # (B, H, L, Dh)
    return y.transpose(1, 2).reshape(B, L, D)


def _reference_attention(self_attention, x, ids):
    return self_attention(x, padding_bias(ids, x.dtype))


_ATTN_BUILDS = (_TEXT + "BertSelfAttention.forward", _SDPA)
_attn_run = guarded(_reference_attention, _ATTN_BUILDS)


def _attn(f, m, ids):
    with torch.no_grad():
        return _attn_run(f, m.bert.encoder.layer[0].attention.self, _hidden_states(m, ids), ids)


register(Exercise(
    id="03.2", title="带填充掩码的多头自注意力", points=3,
    hint="分数矩阵 (B, nh, L, L) 的哪一维是 key？[PAD] 作为 key 时不该分到权重，作为 query 时照常计算；"
         "屏蔽要在 softmax 之前；缩放按每个头的维度算；这里只合并多头，不过输出层。",
    reference=_reference_attention,
    cases=_model_cases(_attn), hidden=_model_hidden(_attn), builds=_ATTN_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "没有掩码": lambda sa, x, ids: _masked_attention(sa, x, ids, mask=None),
        "掩码加在了行 (query) 上": lambda sa, x, ids: _masked_attention(sa, x, ids, mask="queries"),
        "把真实 token 屏蔽了 (ids != 0)": lambda sa, x, ids: _masked_attention(sa, x, ids, mask="real"),
        "忘了除以 √Dh": lambda sa, x, ids: _masked_attention(sa, x, ids, scale=False),
        "用了 F.scaled_dot_product_attention": lambda sa, x, ids: F.scaled_dot_product_attention(
            sa.split(sa.query(x)), sa.split(sa.key(x)), sa.split(sa.value(x)), attn_mask=padding_bias(ids, x.dtype)
        ).transpose(1, 2).reshape(x.shape),
    }))


# ----------------------------------------------------------------------------- 03.3 post-LN layer
def _layer(layer, x, ids, order="post", act=F.gelu, ffn_residual=True):
    bias = padding_bias(ids, x.dtype)
    att, out = layer.attention, layer.output
    if order == "pre":  # the ViT's order
        x = x + att.output.dense(att.self(att.output.LayerNorm(x), bias))
        return x + out.dense(act(layer.intermediate.dense(out.LayerNorm(x))))
    x = att.output.LayerNorm(x + att.output.dense(att.self(x, bias)))
    h = out.dense(act(layer.intermediate.dense(x)))
    return out.LayerNorm(x + h if ffn_residual else h)


def _reference_layer(layer, x, ids):
    return layer(x, padding_bias(ids, x.dtype))


_LAYER_BUILDS = tuple(_TEXT + n for n in ("BertLayer.forward", "BertAttention.forward", "DenseLayerNorm.forward",
                                          "BertIntermediate.forward", "BertEncoder.forward"))
_layer_run = guarded(_reference_layer, _LAYER_BUILDS)


def _lay(f, m, ids):
    with torch.no_grad():
        return _layer_run(f, m.bert.encoder.layer[1], _hidden_states(m, ids), ids)


register(Exercise(
    id="03.3", title="一层 post-LN 的 BERT 编码器", points=3,
    hint="post-LN：每个子层是“线性层、加残差、再 LayerNorm”，和 ViT 的顺序相反；两个子层各有自己的 LayerNorm；"
         "FFN 的激活函数是 BERT 预训练时用的那一个（精确的 erf 形式）。",
    reference=_reference_layer, needs=("03.2",),
    cases=_model_cases(_lay), hidden=_model_hidden(_lay), builds=_LAYER_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "写成了 pre-LN (ViT 的顺序)": lambda l, x, ids: _layer(l, x, ids, order="pre"),
        "FFN 用了 QuickGELU": lambda l, x, ids: _layer(l, x, ids, act=lambda t: t * torch.sigmoid(1.702 * t)),
        "FFN 用了 tanh 近似的 GELU": lambda l, x, ids: _layer(l, x, ids, act=lambda t: F.gelu(t, approximate="tanh")),
        "FFN 没有加残差": lambda l, x, ids: _layer(l, x, ids, ffn_residual=False),
        "直接调用库里的 layer(x, bias)": lambda l, x, ids: l(x, padding_bias(ids, x.dtype)),
    }))


# ----------------------------------------------------------------------------- 03.4 encode_text(model, tokens)
def _encode_text(model, ids, pool="cls", project=True, grad=True):
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        x = model.bert.embeddings(ids)  # (B, L, H); layer by layer, not the library's whole BertModel.forward
        for layer in model.bert.encoder.layer:
            x = layer(x, padding_bias(ids, x.dtype))
        if pool == "cls":
            x = x[:, 0]
        elif pool == "mean":
            x = x.mean(dim=1)
        elif pool == "masked_mean":
            real = (ids != 0).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
            x = (x * real).sum(dim=1) / real.sum(dim=1)
        else:
            x = x[:, -1]
        return x @ model.text_projection if project else x


_ENCODE_TEXT_BUILDS = ("cnclip_edu.model.clip.CLIP.encode_text", "cnclip_edu.model.clip.CLIP.forward",
                       "cnclip_edu.model.clip.CLIP.get_similarity", _TEXT + "BertModel.forward",
                       _TEXT + "BertEncoder.forward", "cnclip_edu.model.text_unpad.cls_hidden")
_encode_run = guarded(CLIP.encode_text, _ENCODE_TEXT_BUILDS)
_GRAD_PARAMS = ("bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
                "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.output.dense.weight",
                "text_projection")


# the features (no autograd), and the gradients of a weighted sum of them w.r.t. a few text parameters
_text_features, _text_gradients = feature_probes(_encode_run, _GRAD_PARAMS)


def _encode_text_cases():
    a, b = tiny_clip(seed=1), tiny_clip(seed=2)
    ids_a, ids_b = tokens(_LENGTHS, 12, seed=3), tokens([2, 9], 10, seed=4)
    return [Case("3 句话，长度 12 / 6 / 3（后两句有 [PAD]）", lambda f: _text_features(f, a, ids_a)),
            Case("另一个模型，2 句话补齐到 10，其中一句是空句子（只有 [CLS] [SEP]）", lambda f: _text_features(f, b, ids_b)),
            Case("反向传播：梯度要能传到 model.bert 和 text_projection", lambda f: _text_gradients(f, a, ids_a))]


def _encode_text_hidden(seed: int):
    rng = random.Random(seed)
    L = rng.randint(4, 16)
    lengths = [L, rng.randint(2, L - 1)] + [rng.randint(2, L) for _ in range(rng.randint(0, 2))]
    m, ids = tiny_clip(seed=seed), tokens(lengths, L, seed=seed + 1)
    return [Case("随机长度的一批句子", lambda f: _text_features(f, m, ids)),
            Case("随机长度的一批句子：梯度", lambda f: _text_gradients(f, m, ids))]


register(Exercise(
    id="03.4", title="完整的 encode_text(model, tokens)", points=2,
    hint="嵌入、每一层（带同一个掩码）之后，只读一个位置：CLIP 训练时用哪个 token 代表整句话？短句的末尾是什么？"
         "最后还要投影到和图像相同的空间；别用 torch.no_grad() 或 .detach()，否则梯度传不回参数。",
    reference=CLIP.encode_text, needs=("03.1", "03.3"),
    cases=_encode_text_cases, hidden=_encode_text_hidden, builds=_ENCODE_TEXT_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "对所有位置求平均（[PAD] 也算进去了）": lambda m, ids: _encode_text(m, ids, pool="mean"),
        "只对真实 token 求平均（带掩码的平均池化）": lambda m, ids: _encode_text(m, ids, pool="masked_mean"),
        "取了最后一个位置": lambda m, ids: _encode_text(m, ids, pool="last"),
        "忘了乘 text_projection": lambda m, ids: _encode_text(m, ids, project=False),
        "在 torch.no_grad() 里计算（梯度传不回参数）": lambda m, ids: _encode_text(m, ids, grad=False),
        "直接调用库里的 model.encode_text": lambda m, ids: m.encode_text(ids),
        "直接调用库里的 model.bert(ids)": lambda m, ids: m.bert(ids)[:, 0] @ m.text_projection,
    }))
