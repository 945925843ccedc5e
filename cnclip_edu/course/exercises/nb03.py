"""Exercises of notebook 03 (the text tower and CLIP): BERT's embeddings, one masked post-LN layer,
[CLS] -> text_projection, then CLIP's scaled cosine logits, each compared with the library's own code
on seeded tiny models (towers.py) and token batches with different amounts of padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnclip_edu.model.clip import CLIP
from cnclip_edu.model.text import BertEmbeddings, padding_bias

from .core import Case, Exercise, register
from .towers import images, tiny_clip, tokens

# real lengths (with [CLS] and [SEP]) per sentence: one full, one half padding, one almost all padding
_LENGTHS = [12, 6, 3]


def _model_cases(run):
    """run(answer, model, ids) on two tiny CLIPs and token batches with padding."""
    def cases():
        a, b = tiny_clip(seed=1), tiny_clip(seed=2)
        ids_a, ids_b = tokens(_LENGTHS, 12, seed=3), tokens([5, 9], 10, seed=4)
        return [Case("3 句话，长度 12 / 6 / 3（后两句有 [PAD]）", lambda f: run(f, a, ids_a)),
                Case("另一个模型，2 句话，补齐到 10", lambda f: run(f, b, ids_b))]
    return cases


def _hidden(model, ids):
    """Hidden states entering layer 0 (what a layer-level answer receives)."""
    with torch.no_grad():
        return model.bert.embeddings(ids)


# ----------------------------------------------------------------------------- 03.1 embeddings
def _embeddings(emb, ids, positions=None, token_type=True, layer_norm=True):
    L = ids.shape[1]
    pos = torch.arange(L) if positions is None else positions(L)
    x = emb.word_embeddings(ids) + emb.position_embeddings(pos)
    if token_type:
        x = x + emb.token_type_embeddings.weight[0]
    return emb.LayerNorm(x) if layer_norm else x


register(Exercise(
    id="03.1", title="BERT 的三种嵌入相加再 LayerNorm", points=2,
    hint="词嵌入查 ids；位置嵌入查 0, 1, …, L-1（torch.arange(L)，从 0 开始）；句子类型全是第 0 类 "
         "(token_type_embeddings.weight[0])；三者相加后再过 emb.LayerNorm。",
    reference=BertEmbeddings.forward,
    cases=_model_cases(lambda f, m, ids: f(m.bert.embeddings, ids)),
    mutants=lambda: {
        "忘了句子类型嵌入 (token type)": lambda e, ids: _embeddings(e, ids, token_type=False),
        "忘了 LayerNorm": lambda e, ids: _embeddings(e, ids, layer_norm=False),
        "位置从 1 开始编号": lambda e, ids: _embeddings(e, ids, positions=lambda L: torch.arange(1, L + 1)),
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


register(Exercise(
    id="03.2", title="带填充掩码的多头自注意力", points=3,
    hint="掩码作用在【列】(key) 上：scores 形状 (B, H, L, L)，把 ids == 0 的那些列设成一个极大的负数 "
         "(masked_fill，或加上形状 (B, 1, 1, L) 的偏置)，softmax 之后它们的权重就是 0；"
         "分数除以 √Dh；q、k、v 分别来自 query、key、value 三个 Linear；最后合并多头 (B, L, D)，这里不过输出层。",
    reference=_reference_attention,
    cases=_model_cases(lambda f, m, ids: f(m.bert.encoder.layer[0].attention.self, _hidden(m, ids), ids)),
    mutants=lambda: {
        "没有掩码": lambda sa, x, ids: _masked_attention(sa, x, ids, mask=None),
        "掩码加在了行 (query) 上": lambda sa, x, ids: _masked_attention(sa, x, ids, mask="queries"),
        "把真实 token 屏蔽了 (ids != 0)": lambda sa, x, ids: _masked_attention(sa, x, ids, mask="real"),
        "忘了除以 √Dh": lambda sa, x, ids: _masked_attention(sa, x, ids, scale=False),
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


register(Exercise(
    id="03.3", title="一层 post-LN 的 BERT 编码器", points=3,
    hint="post-LN：先相加再 LayerNorm。x = attention.output.LayerNorm(x + attention.output.dense(自注意力(x)))；"
         "h = output.dense(gelu(intermediate.dense(x)))；x = output.LayerNorm(x + h)。GELU 用精确的 F.gelu，"
         "不是 ViT 的 QuickGELU。",
    reference=_reference_layer,
    cases=_model_cases(lambda f, m, ids: f(m.bert.encoder.layer[1], _hidden(m, ids), ids)),
    mutants=lambda: {
        "写成了 pre-LN (ViT 的顺序)": lambda l, x, ids: _layer(l, x, ids, order="pre"),
        "FFN 用了 QuickGELU": lambda l, x, ids: _layer(l, x, ids, act=lambda t: t * torch.sigmoid(1.702 * t)),
        "FFN 用了 tanh 近似的 GELU": lambda l, x, ids: _layer(l, x, ids, act=lambda t: F.gelu(t, approximate="tanh")),
        "FFN 没有加残差": lambda l, x, ids: _layer(l, x, ids, ffn_residual=False),
    }))


# ----------------------------------------------------------------------------- 03.4 encode_text
def _encode_text(model, ids, pool="cls", project=True):
    x = model.bert(ids)  # (B, L, H)
    if pool == "cls":
        x = x[:, 0]
    elif pool == "mean":
        x = x.mean(dim=1)
    else:
        x = x[:, -1]
    return x @ model.text_projection if project else x


register(Exercise(
    id="03.4", title="文本特征：[CLS] 乘 text_projection", points=2,
    hint="走完嵌入和每一层以后，只取第 0 个位置 ([CLS])：hidden[:, 0]，形状 (B, H)；再 @ text_projection 得到 (B, E)。"
         "不要对所有位置求平均（会把 [PAD] 也算进去），也不要取最后一个位置（短句那里是 [PAD]）。",
    reference=CLIP.encode_text,
    cases=_model_cases(lambda f, m, ids: f(m, ids)),
    mutants=lambda: {
        "对所有位置求平均": lambda m, ids: _encode_text(m, ids, pool="mean"),
        "取了最后一个位置": lambda m, ids: _encode_text(m, ids, pool="last"),
        "忘了乘 text_projection": lambda m, ids: _encode_text(m, ids, project=False),
    }))


# ----------------------------------------------------------------------------- 03.5 CLIP's logits
def _logits(model, imgs, ids, normalize=True, exp=True, transpose=True, dim=-1):
    img, txt = model.encode_image(imgs), model.encode_text(ids)
    if normalize:
        img, txt = img / img.norm(dim=dim, keepdim=True), txt / txt.norm(dim=dim, keepdim=True)
    scale = model.logit_scale.exp() if exp else model.logit_scale
    logits = scale * img @ txt.t()  # (B_img, B_txt)
    return logits, (logits.t() if transpose else logits)


def _clip_cases():
    def cases():
        a, b = tiny_clip(seed=5), tiny_clip(seed=6)
        return [Case("2 张图、3 句话", lambda f: f(a, images(2, 12, seed=7), tokens(_LENGTHS, 12, seed=8))),
                Case("另一个模型，4 张图、2 句话", lambda f: f(b, images(4, 12, seed=9), tokens([5, 9], 10, seed=10)))]
    return cases


register(Exercise(
    id="03.5", title="CLIP 的相似度矩阵 logits_per_image / logits_per_text", points=3,
    hint="先把图像特征和文本特征各自沿最后一维 (dim=-1) 除以自己的长度 (L2 归一化)，点积就是余弦相似度；"
         "再乘 logit_scale.exp()（参数里存的是对数）。logits_per_image 形状 (图数, 句数)，logits_per_text 是它的转置。",
    reference=CLIP.get_similarity,
    cases=_clip_cases(),
    mutants=lambda: {
        "没有归一化": lambda m, i, t: _logits(m, i, t, normalize=False),
        "直接乘 logit_scale，忘了 exp()": lambda m, i, t: _logits(m, i, t, exp=False),
        "logits_per_text 没有转置": lambda m, i, t: _logits(m, i, t, transpose=False),
        "沿 dim=0 归一化": lambda m, i, t: _logits(m, i, t, dim=0),
    }))


# ----------------------------------------------------------------------------- end-of-notebook numbers
register(Exercise(
    id="03.q1", title="BERT-base 一层的参数个数", points=2,
    hint="H = 768、中间层 I = 3072。自注意力：Q、K、V、输出 4 个 H×H 的矩阵，各带 H 个偏置；FFN：H×I 加 I 个偏置、"
         "I×H 加 H 个偏置；还有 2 个 LayerNorm，各有 H 个缩放和 H 个偏移。",
    reference=4 * (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768) + 2 * 2 * 768,
    mutants=lambda: {
        "忘了偏置": 4 * 768 * 768 + 2 * 768 * 3072 + 2 * 2 * 768,
        "忘了 LayerNorm": 4 * (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768),
        "只算了注意力": 4 * (768 * 768 + 768),
    }))

register(Exercise(
    id="03.q2", title="logit_scale 参数的上限", points=1,
    hint="训练时相似度的放大倍数 exp(logit_scale) 最多 100；参数里存的是它的自然对数。",
    reference=math.log(100),
    mutants=lambda: {"写成了倍数本身": 100.0, "写成了初始值 ln(1/0.07)": math.log(1 / 0.07),
                     "用了以 10 为底的对数": 2.0}))
