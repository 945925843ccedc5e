"""Exercises of notebook 03 (the text tower and checkpoints): BERT's embeddings, masked attention, one
post-LN layer, `encode_text(model, tokens)`, then loading an official cn_clip checkpoint: the key
mapping (03.5) and the strict load (03.6), one layer and then the whole text tower as the student's own
modules (03.7, 03.8); 03.9 counts one layer's parameters from a formula.

Layer-level answers run on seeded tiny models (towers.py) and token batches with different amounts of
padding, compared with the library's own module; the checkpoint answers run on cn_clip-layout files
written on the fly from a tiny model (`{"state_dict": {"module.…": …}}`, the unused `bert.pooler.*`
included, optionally the FlashAttention names of a flash model's in-memory state_dict: cn_clip's
training script converts them back before saving, a hand-saved file keeps them) and are compared
with the library's loader (`checkpoint.normalize_keys`, `read_checkpoint` + `load_weights`); 03.6 also
gets a file whose unpickling would run code (`_Payload`), which a safe loader refuses, and a run that
reads the arguments its `torch.load` / `load_state_dict` were given (`_record_loads`: on torch >= 2.6 a
bare `torch.load(path)` is safe only by default, which is what the notebook tells students not to rely
on). 03.1 also follows tensors made without `device=` (`_DefaultDevice`). 03.7 is one BERT layer as the
student's own nn.Module: the library layer's weights must load into it strictly and give the same
output (an I != 4H width, and inputs small enough that LayerNorm's eps shows); 03.8 is the whole text
half of CLIP (`bert.*` + `text_projection`) as the student's module, built from a `TextConfig` with
their 03.7 layers, loaded strictly from the library's weights on three configurations (other layer
counts, vocabulary and position-table sizes; embeddings small enough that the embedding LayerNorm's
eps shows). Every
exercise has grading cases drawn from a seed (`hidden`) and names the library routines it builds
(`builds`, guards.py).
"""
from __future__ import annotations

import functools
import inspect
import math
import random
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from cnclip_edu.model.checkpoint import load_weights, normalize_keys, read_checkpoint
from cnclip_edu.model.clip import CLIP
from cnclip_edu.model.text import BertEmbeddings, BertLayer, BertModel, TextConfig, padding_bias

from .core import Case, Exercise, register
from .guards import MARK, guarded, refuse_shortcuts, watch
from .towers import images, randomize_, tiny_clip, tokens

_TEXT = "cnclip_edu.model.text."
_CKPT = "cnclip_edu.model.checkpoint."
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
_FACTORIES = {torch.arange, torch.zeros, torch.ones, torch.full, torch.empty, torch.tensor, torch.as_tensor,
              torch.randn, torch.rand, torch.randint, torch.linspace, torch.eye}
_MOVES = {"to", "cuda", "type_as", "new_tensor"}   # ops that put a tensor where the caller says (left unflagged)


class _DefaultDevice(TorchFunctionMode):
    """Find a tensor that a factory (`torch.arange(L)`, ...) made without `device=` and that then meets the
    input's data in one op: on a GPU the two would sit on different devices and the op would fail.

    The check runs on a CPU, where both are on the CPU, so the values cannot tell; this mode follows the
    tensor instead. What it grew into (`.expand`, indexing by it) stays flagged until it is moved (`.to`);
    0-dim tensors are not flagged (PyTorch mixes a CPU scalar with a GPU tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[int, tuple[torch.Tensor, str]] = {}   # id -> (tensor, the factory's name)
        self.mixed: list[str] = []

    def _mark(self, t: Any, name: str) -> None:
        if torch.is_tensor(t) and t.dim() > 0:
            self.made[id(t)] = (t, name)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _FACTORIES:
            if "device" not in kwargs:
                self._mark(out, f"torch.{func.__name__}")
            return out
        tensors = [t for t in tree_flatten((args, kwargs))[0] if torch.is_tensor(t)]
        made = [self.made[id(t)][1] for t in tensors if id(t) in self.made and self.made[id(t)][0] is t]
        if made and getattr(func, "__name__", "") in _MOVES:  # moved where the caller says; on a CPU `.to`
            self.made.pop(id(out), None)                         # returns the same tensor: unmark it
        elif made:
            others = [t for t in tensors if id(t) not in self.made and t.dim() > 0]
            if others:
                self.mixed.append(made[0])
            else:
                self._mark(out, made[0])
        return out


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


def _text_features(f, m, ids):
    with torch.no_grad():
        return _encode_run(f, m, ids)


def _text_gradients(f, m, ids):
    """Gradients of a fixed weighted sum of the features w.r.t. a few text parameters (None: none arrived)."""
    m.zero_grad(set_to_none=True)
    out = _encode_run(f, m, ids)
    if isinstance(out, dict):  # refused (the shortcut marker)
        return out
    if not torch.is_tensor(out) or not out.requires_grad:
        return [None] * len(_GRAD_PARAMS)
    (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    params = dict(m.named_parameters())
    grads = [None if params[n].grad is None else params[n].grad.clone() for n in _GRAD_PARAMS]
    m.zero_grad(set_to_none=True)
    return grads


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


# ----------------------------------------------------------------------------- official checkpoints
def official_layout(model, prefix: str = "module.", pooler: bool = True, flash: bool = False,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """`model`'s weights as cn_clip saves them: `prefix` (DDP's `module.`) on every key, BERT's unused
    pooler (dense H x H + bias) added, and with `flash` the parameter names of cn_clip's FlashAttention
    build (ViT `attn.Wqkv.*`; BERT `attention.self.Wqkv.*` = q, k, v stacked, `attention.self.out_proj.*`)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if flash:
        for k in [k for k in sd if ".attn.in_proj_" in k]:
            sd[k.replace(".attn.in_proj_", ".attn.Wqkv.")] = sd.pop(k)
        i = 0
        while f"bert.encoder.layer.{i}.attention.self.query.weight" in sd:
            p = f"bert.encoder.layer.{i}.attention"
            for kind in ("weight", "bias"):
                sd[f"{p}.self.Wqkv.{kind}"] = torch.cat([sd.pop(f"{p}.self.{n}.{kind}") for n in ("query", "key", "value")])
                sd[f"{p}.self.out_proj.{kind}"] = sd.pop(f"{p}.output.dense.{kind}")
            i += 1
    if pooler:
        H = sd["bert.embeddings.word_embeddings.weight"].shape[1]
        g = torch.Generator().manual_seed(seed)
        sd["bert.pooler.dense.weight"] = torch.randn(H, H, generator=g)
        sd["bert.pooler.dense.bias"] = torch.randn(H, generator=g)
    return {prefix + k: v for k, v in sd.items()}


# ----------------------------------------------------------------------------- 03.5 the key mapping
def _convert(sd, strip="prefix", pooler="drop", pooler_before_strip=False, flash=True, chunk_dim=0,
             rename_out=True, bert_like_vit=False):
    """A key mapping with one step done differently (for the mutants)."""
    first = next(iter(sd))
    out = {}
    for k, v in sd.items():
        if pooler_before_strip and k.startswith("bert.pooler."):
            continue
        if strip == "prefix":
            k = k[len("module."):] if k.startswith("module.") else k
        elif strip == "anywhere":
            k = k.replace("module.", "")
        elif strip == "always":
            k = k[len("module."):]
        elif strip == "cn_clip" and first.startswith("module"):  # cn_clip's own loader: only for DDP files
            if "bert.pooler" in k:
                continue
            k = k[len("module."):]
        if pooler == "drop" and not pooler_before_strip and k.startswith("bert.pooler."):
            continue
        if flash and (".attn.Wqkv." in k or bert_like_vit and ".Wqkv." in k):
            k = k.replace(".Wqkv.", ".in_proj_")
        out[k] = v
    for k in [k for k in out if flash and ".attention.self.Wqkv." in k]:
        prefix, kind = k.split(".attention.self.Wqkv.")
        for part, t in zip(("query", "key", "value"), out.pop(k).chunk(3, dim=chunk_dim if kind == "weight" else 0)):
            out[f"{prefix}.attention.self.{part}.{kind}"] = t
        if rename_out:
            out[f"{prefix}.attention.output.dense.{kind}"] = out.pop(f"{prefix}.attention.self.out_proj.{kind}")
    return out


_MAP_BUILDS = (_CKPT + "normalize_keys", _CKPT + "read_checkpoint", _CKPT + "load_state_dict_any",
               "cnclip_edu.model.hf_convert.hf_to_ours")
_map_run = guarded(normalize_keys, _MAP_BUILDS)


def _map_case(label, make):
    return Case(label, lambda f: _map_run(f, make()))


def _with_inner_module(seed):
    sd = official_layout(tiny_clip(seed=seed), seed=seed)
    sd["module.visual.adapter.module.weight"] = torch.ones(2)  # a submodule that is itself called `module`
    return sd


def _map_cases():
    return [_map_case("cn_clip 训练保存的检查点：module. 前缀 + bert.pooler", lambda: official_layout(tiny_clip(seed=41), seed=1)),
            _map_case("单卡保存的检查点：没有 module. 前缀，但有 bert.pooler",
                      lambda: official_layout(tiny_clip(seed=42), prefix="", seed=2)),
            _map_case("从 FlashAttention 模型手动保存的 state_dict：Wqkv / out_proj 的参数名",
                      lambda: official_layout(tiny_clip(seed=43), flash=True, seed=3)),
            _map_case("参数名中间也出现 module.（有个子模块就叫 module）：只能去掉开头的前缀",
                      lambda: _with_inner_module(44))]


def _map_hidden(seed: int):
    rng = random.Random(seed)
    prefix, flash, pooler = rng.choice(["module.", ""]), rng.random() < 0.5, rng.random() < 0.8

    def make():
        sd = official_layout(tiny_clip(seed=seed), prefix=prefix, pooler=pooler, flash=flash, seed=seed)
        sd[f"{prefix}visual.adapter.module.weight"] = torch.ones(2)  # a submodule called `module`
        return sd
    return [_map_case("随机的 cn_clip 检查点布局", make)]


register(Exercise(
    id="03.5", title="官方检查点的参数名 → 我们的参数名", points=4,
    hint="DDP 的前缀只在参数名的开头；文件里有一组参数 CLIP 根本不用；FlashAttention 版把 BERT 的 q、k、v 叠成了一个矩阵"
         "（按第 0 维、按 q、k、v 的顺序），注意力的输出层也换了名字，ViT 只换了名字；不认识的参数名原样保留。",
    reference=normalize_keys,
    cases=_map_cases, hidden=_map_hidden, builds=_MAP_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了丢掉 bert.pooler.*": lambda sd: _convert(sd, pooler="keep"),
        "用 replace 去掉所有的 module.，不只是开头的": lambda sd: _convert(sd, strip="anywhere"),
        "照抄 cn_clip 的加载代码：只有 DDP 文件才去前缀、丢 pooler": lambda sd: _convert(sd, strip="cn_clip", pooler="keep"),
        "先判断 bert.pooler，后去掉前缀（DDP 文件里的 pooler 漏掉了）": lambda sd: _convert(sd, pooler_before_strip=True),
        "不管有没有前缀，都切掉前 7 个字符": lambda sd: _convert(sd, strip="always"),
        "没有处理 FlashAttention 的参数名": lambda sd: _convert(sd, flash=False),
        "BERT 的 Wqkv 沿第 1 维切开": lambda sd: _convert(sd, chunk_dim=1),
        "忘了把 attention.self.out_proj 改名成 attention.output.dense": lambda sd: _convert(sd, rename_out=False),
        "BERT 的 Wqkv 也当成 ViT 的 in_proj 改名": lambda sd: _convert(sd, bert_like_vit=True),
        "直接调用库里的 normalize_keys": lambda sd: normalize_keys(sd),
    }))


# ----------------------------------------------------------------------------- 03.6 the strict load
def _library_load(model, path):
    """The library's loader on an existing model: read + map the keys, then a strict load."""
    return load_weights(model, read_checkpoint(path)[0], source=path)


_LOAD_BUILDS = (_CKPT + "read_checkpoint", _CKPT + "load_weights", _CKPT + "load_state_dict_any", _CKPT + "load",
                "cnclip_edu.model.cn_clip_ref.cn_clip_from_checkpoint")
_load_run = guarded(_library_load, _LOAD_BUILDS)


def _write(folder: str, state_dict: dict) -> Path:
    path = Path(folder) / "clip_cn_tiny.pt"
    torch.save({"epoch": 3, "step": 120, "name": "tiny", "state_dict": state_dict}, path)
    return path


def _load_features(f, source_seed, target_seed, **layout):
    """Load a cn_clip-layout file of one tiny CLIP into another (other weights); -> its features."""
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, official_layout(tiny_clip(seed=source_seed), seed=source_seed, **layout))
        model = _load_run(f, tiny_clip(seed=target_seed), path)
    if isinstance(model, dict):  # refused (the shortcut marker)
        return model
    if not isinstance(model, CLIP):
        return f"函数返回的不是模型，而是 {type(model).__name__}"
    with torch.no_grad():
        return [model.encode_image(images(2, 12, seed=5)), model.encode_text(tokens(_LENGTHS, 12, seed=6))]


def _load_refused(f, change):
    """Whether loading a file that does not fit the model raises (it must: strict)."""
    with tempfile.TemporaryDirectory() as d:
        sd = official_layout(tiny_clip(seed=51), seed=51)
        change(sd)
        path = _write(d, sd)
        try:
            out = _load_run(f, tiny_clip(seed=52), path)
        except Exception:
            return "报错"
    return out if isinstance(out, dict) else "没有报错"


def _drop(key):
    return lambda sd: sd.pop(key)


def _mark_ran(marker: str) -> int:
    """What the malicious file runs when it is unpickled: it only leaves a marker file behind (a real
    attacker's file would run anything here), so the case can tell that the file's code ran."""
    Path(marker).write_text("ran")
    return 0


class _Payload:
    """An object whose unpickling calls `_mark_ran`: `torch.load(weights_only=True)` refuses it,
    `weights_only=False` (and torch < 2.6's default) runs it."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _mark_ran, (self.marker,)


def _load_malicious(f, where="top"):
    """Load a checkpoint that hides code (a pickled `_Payload`) next to valid weights: it must raise
    before running it. -> "报错" / "执行了文件里的代码" / "没有报错"."""
    with tempfile.TemporaryDirectory() as d:
        marker = Path(d) / "payload_ran"
        sd = official_layout(tiny_clip(seed=57), seed=57)
        obj = {"epoch": 3, "step": 120, "name": "tiny", "state_dict": sd}
        if where == "top":
            obj["extra"] = _Payload(str(marker))    # a top-level entry the loader never looks at
        else:
            obj["name"] = _Payload(str(marker))     # hidden where a string should be
        path = Path(d) / "clip_cn_tiny.pt"
        torch.save(obj, path)
        try:
            out = _load_run(f, tiny_clip(seed=58), path)
        except Exception:
            return "执行了文件里的代码" if marker.exists() else "报错"
        if isinstance(out, dict):  # refused (the shortcut marker)
            return out
        return "执行了文件里的代码" if marker.exists() else "没有报错"


_TORCH_LOAD_CODE = inspect.unwrap(torch.load).__code__


@contextmanager
def _record_loads() -> Iterator[dict[str, list]]:
    """Record how `torch.load` and `nn.Module.load_state_dict` are called while the block runs.

    `torch.load`: a profile hook reads the arguments as the call starts (any alias of the function runs
    the same code object), so `weights_only` / `map_location` are what the caller passed or the
    default (None on torch >= 2.6, False before). `load_state_dict`: its default `strict=True` cannot be
    told from an explicit one by the values, so the method is wrapped and the call's own arguments read."""
    seen: dict[str, list] = {"load": [], "strict": []}

    def hook(frame, event, arg):
        if event == "call" and frame.f_code is _TORCH_LOAD_CODE:
            seen["load"].append((frame.f_locals.get("weights_only"), frame.f_locals.get("map_location")))

    original = torch.nn.Module.load_state_dict
    signature = inspect.signature(original)

    @functools.wraps(original)
    def recording(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        seen["strict"].append(bound.arguments.get("strict", "默认值"))
        return original(self, *args, **kwargs)

    previous = sys.getprofile()
    torch.nn.Module.load_state_dict = recording
    sys.setprofile(hook)
    try:
        yield seen
    finally:
        sys.setprofile(previous)
        torch.nn.Module.load_state_dict = original


def _explicit_arguments(f):
    """Load a good file under `_record_loads`; -> "明确写出了…" or what was left to a default (in Chinese).

    Not guarded: a call into the library loader is refused by the other cases; this one only reads
    the arguments (the library's own loader writes all three out)."""
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, official_layout(tiny_clip(seed=59), seed=59))
        with _record_loads() as seen:
            f(tiny_clip(seed=60), path)
    problems = []
    if not seen["load"]:
        problems.append("没有用 torch.load 读文件")
    elif any(w is not True for w, _ in seen["load"]):
        problems.append(f"torch.load 没有写 weights_only=True（这台机器上的 torch {torch.__version__.split('+')[0]} "
                        "不写时默认是 True，所以碰巧安全；但 torch 2.6 之前默认是 False，同一行代码在那些版本上"
                        "会执行文件里藏着的代码。安全不能靠默认值，要明确写出来）")
    if seen["load"] and any(m is None for _, m in seen["load"]):
        problems.append("torch.load 没有写 map_location（在 GPU 上存的文件，到了没有 GPU 的机器上就读不出来）")
    if not seen["strict"]:
        problems.append("没有用 load_state_dict 装进模型")
    elif any(s is not True for s in seen["strict"]):
        problems.append("load_state_dict 没有明确写 strict=True（要把“名字对不上就报错”写在代码里，"
                        "读代码的人不用去记默认值）")
    return "；".join(problems) if problems else "weights_only=True、map_location、strict=True 都明确写出来了"


def _load_cases():
    return [Case("cn_clip 格式的文件（module. + bert.pooler）装进另一个随机模型", lambda f: _load_features(f, 53, 54)),
            Case("FlashAttention 参数名的文件", lambda f: _load_features(f, 55, 56, flash=True)),
            Case("文件里缺了 text_projection：必须报错，不能悄悄留着随机初始化的值",
                 lambda f: _load_refused(f, _drop("module.text_projection"))),
            Case("文件里多了一个模型没有的参数：必须报错",
                 lambda f: _load_refused(f, lambda sd: sd.update({"module.visual.extra_head.weight": torch.ones(3)}))),
            Case("文件里藏着读取时会执行的代码（pickle 里的任意对象）：必须拒绝，不能执行它",
                 lambda f: _load_malicious(f)),
            Case("安全和严格要明确写在代码里：weights_only=True、map_location、strict=True，不依赖默认值",
                 _explicit_arguments)]


def _load_hidden(seed: int):
    rng = random.Random(seed)
    prefix, flash = rng.choice(["module.", ""]), rng.random() < 0.5
    gone = rng.choice(["module.logit_scale", "module.visual.ln_post.bias", "module.bert.embeddings.LayerNorm.weight"])
    where = rng.choice(["top", "name"])
    return [Case("随机布局的 cn_clip 文件", lambda f: _load_features(f, seed, seed + 1, prefix=prefix, flash=flash)),
            Case("缺了一个参数的文件：必须报错", lambda f: _load_refused(f, _drop(gone))),
            Case("藏着代码的文件：必须拒绝", lambda f: _load_malicious(f, where=where)),
            Case("明确写出的参数", _explicit_arguments)]


_DEFAULT = object()   # a _loader argument left out of the call (the function's default applies)


def _loader(strict=True, take_state_dict=True, returns=True, map_keys=True, weights_only=True, map_location="cpu"):
    def load(model, path):
        kwargs = {k: v for k, v in (("map_location", map_location), ("weights_only", weights_only)) if v is not _DEFAULT}
        obj = torch.load(path, **kwargs)
        sd = obj["state_dict"] if take_state_dict else obj
        sd = normalize_keys(sd) if map_keys else sd
        model.load_state_dict(sd) if strict is _DEFAULT else model.load_state_dict(sd, strict=strict)
        return model if returns else None
    return load


register(Exercise(
    id="03.6", title="安全、严格地加载 cn_clip 的检查点", points=2,
    hint="读文件时只许读出张量和普通容器，要明确写出来，不依赖 torch 版本的默认值；"
         "文件里除了权重还有 epoch、step 这些；参数名先用你的 03.5 转换；加载要让“缺了或多了参数”变成一个错误，"
         "而不是一句被忽略的提示；函数最后把模型交回去。",
    reference=_library_load, needs=("03.5",),
    cases=_load_cases, hidden=_load_hidden, builds=_LOAD_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "strict=False：缺了参数也不报错": _loader(strict=False),
        "没有取出 checkpoint['state_dict']": _loader(take_state_dict=False),
        "忘了 return model": _loader(returns=False),
        "weights_only=False：读文件时执行了文件里的代码": _loader(weights_only=False),
        "torch.load(path)：weights_only 和 map_location 都靠默认值": _loader(weights_only=_DEFAULT, map_location=_DEFAULT),
        "没写 weights_only（torch 2.6 之前的默认值会执行文件里的代码）": _loader(weights_only=_DEFAULT),
        "没写 map_location": _loader(map_location=_DEFAULT),
        "load_state_dict(sd)：strict 靠默认值": _loader(strict=_DEFAULT),
        "没有转换参数名，用 strict=False 硬装": _loader(strict=False, map_keys=False),
        "直接调用库里的 read_checkpoint + load_weights": lambda m, path: _library_load(m, path),
    }))


# ----------------------------------------------------------------------------- 03.7 a layer as your own nn.Module
class _LibraryLayer(BertLayer):
    """The reference answer to 03.7: the library's BertLayer built from (H, heads, I), called as (x, ids)."""

    def __init__(self, H: int, heads: int, I: int):
        super().__init__(TextConfig(name="layer", text_hidden_size=H, text_num_attention_heads=heads,
                                    text_intermediate_size=I))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # (B, L, H), (B, L) -> (B, L, H)
        return super().forward(x, padding_bias(ids, x.dtype))


_MODULE_BUILDS = tuple(_TEXT + n + ".__init__" for n in ("BertLayer", "BertAttention", "BertSelfAttention",
                                                         "DenseLayerNorm", "BertIntermediate", "BertEncoder",
                                                         "BertModel"))


def _weights_of(H, heads, I, seed, bert_init):
    """A state_dict for one library layer: every tensor random (so swapped names show), or BERT's init."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layer = _LibraryLayer(H, heads, I)
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in layer.state_dict().items():
        is_scale = "LayerNorm.weight" in k
        if bert_init:  # Linear weights N(0, 0.02), biases 0, LayerNorm scale 1 and shift 0
            sd[k] = torch.ones_like(v) if is_scale else torch.randn(v.shape, generator=g) * 0.02 \
                if k.endswith(".weight") and "LayerNorm" not in k else torch.zeros_like(v)
        else:
            sd[k] = (1.0 if is_scale else 0.0) + torch.randn(v.shape, generator=g) * 0.3
    return sd


def _load_strict_and_run(module, built_by: str, weights: str, sd, *inputs):
    """The student's freshly built `module`, the library's weights loaded strictly, eval mode;
    -> its output on `inputs`, or why not (str). Shared by 03.7 (one layer) and 03.8 (the tower)."""
    if not isinstance(module, torch.nn.Module):
        return f"{built_by} 建出来的不是 nn.Module，而是 {type(module).__name__}"
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return f"库里{weights}的权重 strict=True 装不进你的模块：" + " ".join(lines[1:3])[:400]
    with torch.no_grad():
        return module.eval()(*inputs)


def _build_load_run(cls, H, heads, I, sd, x, ids):
    """cls(H, heads, I) loaded with one library layer's weights; -> its output (B, L, H), or why not (str)."""
    return _load_strict_and_run(cls(H, heads, I), str(cls), "一层", sd, x, ids)


def _module_case(H, heads, I, seed, lengths, scale=1.0, bert_init=False):
    # the weights come from a library layer: built here, when the case is made, not inside `run`, which
    # the grader calls with the tripwires of 03.7 armed (BertLayer.__init__ would trip on the case itself)
    sd = _weights_of(H, heads, I, seed, bert_init)

    def run(cls):
        L = max(lengths)
        x = torch.randn(len(lengths), L, H, generator=torch.Generator().manual_seed(seed + 1)) * scale
        ids = tokens(lengths, L, seed=seed + 2)
        if cls is _LibraryLayer:
            return _build_load_run(cls, H, heads, I, sd, x, ids)
        with watch(_MODULE_BUILDS) as hits:
            out = _build_load_run(cls, H, heads, I, sd, x, ids)
        return {MARK: hits[0]} if hits else out
    return run


def _module_cases():
    return [Case("H = 24、3 个头、I = 96（= 4H）：装进库里一层的权重，再比较输出", _module_case(24, 3, 96, 71, [9, 5, 2])),
            Case("I 不是 4H：H = 16、2 个头、I = 40", _module_case(16, 2, 40, 72, [7, 7, 3])),
            Case("输入很小、BERT 的初始化（LayerNorm 的输入方差比 1e-5 还小得多）：LayerNorm 的 eps 要和 BERT 一样",
                 _module_case(24, 4, 64, 73, [8, 4], scale=1e-4, bert_init=True))]


def _module_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    H, I = heads * rng.randint(3, 8), rng.choice([2, 3, 5]) * 8
    L = rng.randint(3, 10)
    lengths = [L, rng.randint(2, L)]
    return [Case("随机尺寸的一层", _module_case(H, heads, I, seed, lengths)),
            Case("随机尺寸、很小的输入", _module_case(H, heads, I, seed + 7, lengths, scale=1e-4, bert_init=True))]


def _mutant_layer(eps=1e-12, flat_names=False, bias=True, inner="I", act=F.gelu):
    """A student-style MyBertLayer with one choice done differently (for the mutants)."""
    class SelfAttention(torch.nn.Module):
        def __init__(self, H, heads):
            super().__init__()
            self.heads = heads
            self.query, self.key, self.value = (torch.nn.Linear(H, H, bias=bias) for _ in range(3))

    class DenseLN(torch.nn.Module):
        def __init__(self, d_in, d_out):
            super().__init__()
            self.dense = torch.nn.Linear(d_in, d_out, bias=bias)
            self.LayerNorm = torch.nn.LayerNorm(d_out, eps=eps)

    class Layer(torch.nn.Module):
        def __init__(self, H, heads, I):
            super().__init__()
            I = 4 * H if inner == "4H" else I
            if flat_names:  # q, k, v straight under `attention` (attention.query, ...)
                self.attention = SelfAttention(H, heads)
            else:
                self.attention = torch.nn.Module()
                self.attention.self = SelfAttention(H, heads)
            self.attention.output = DenseLN(H, H)
            self.intermediate = torch.nn.Module()
            self.intermediate.dense = torch.nn.Linear(H, I, bias=bias)
            self.output = DenseLN(I, H)

        def forward(self, x, ids):
            a = _masked_attention(self.attention if flat_names else self.attention.self, x, ids)
            x = self.attention.output.LayerNorm(x + self.attention.output.dense(a))
            h = act(self.intermediate.dense(x))
            return self.output.LayerNorm(x + self.output.dense(h))
    return Layer


register(Exercise(
    id="03.7", title="把一层 BERT 写成自己的 nn.Module，strict=True 装进库的权重", points=3,
    hint="state_dict 里的名字就是属性名按层级用点连起来：打印出来的每个名字都要由你建的子模块拼出来，形状也要一样；"
         "一层里两个 LayerNorm 的 eps 沿用 BERT 的值；FFN 中间层的维度用参数 I；自注意力的子模块还要记下头数。",
    reference=_LibraryLayer, needs=("03.3",),
    cases=_module_cases, hidden=_module_hidden, builds=_MODULE_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "LayerNorm 用了默认的 eps（1e-5）": _mutant_layer(eps=1e-5),
        "q、k、v 直接挂在 attention 下面（名字和官方权重对不上）": _mutant_layer(flat_names=True),
        "Linear 没有偏置 (bias=False)": _mutant_layer(bias=False),
        "中间层维度写死成 4H": _mutant_layer(inner="4H"),
        "FFN 用了 tanh 近似的 GELU": _mutant_layer(act=lambda t: F.gelu(t, approximate="tanh")),
        "直接用库里的 BertLayer": lambda H, heads, I: _LibraryLayer(H, heads, I),
    }))


# ----------------------------------------------------------------------------- 03.8 the whole text tower as your own nn.Module
class _LibraryTower(torch.nn.Module):
    """The reference answer to 03.8: CLIP's text half from the library (its BertModel + `text_projection`),
    built from (cfg, embed_dim); forward(tokens) -> (B, E) features, as `CLIP.encode_text`."""

    def __init__(self, cfg: TextConfig, embed_dim: int):
        super().__init__()
        self.bert = BertModel(cfg)
        self.text_projection = torch.nn.Parameter(torch.empty(cfg.text_hidden_size, embed_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, E)
        return self.bert(ids)[:, 0] @ self.text_projection


_TOWER_BUILDS = (*_MODULE_BUILDS, _TEXT + "BertEmbeddings.__init__", _TEXT + "BertModel.forward",
                 "cnclip_edu.model.clip.CLIP.__init__", "cnclip_edu.model.clip.CLIP.encode_text")


def _text_config(H, heads, I, layers, positions, vocab=8000):
    return TextConfig(name="tower", vocab_size=vocab, text_hidden_size=H, text_num_hidden_layers=layers,
                      text_num_attention_heads=heads, text_intermediate_size=I,
                      text_max_position_embeddings=positions)


def _tower_weights(cfg, E, seed, small_embeddings):
    """A state_dict of the library's text half: every tensor random (so swapped names show); with
    `small_embeddings` the three tables are scaled by 1e-4, so the embedding LayerNorm's eps decides."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        tower = randomize_(_LibraryTower(cfg, E), seed)
    sd = {k: v.detach().clone() for k, v in tower.state_dict().items()}
    if small_embeddings:
        for table in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            sd[f"bert.embeddings.{table}.weight"] *= 1e-4
    return sd


def _build_tower_run(cls, cfg, E, sd, ids):
    """cls(cfg, E) loaded with the library's text-tower weights; -> its features (B, E), or why not (str)."""
    return _load_strict_and_run(cls(cfg, E), "MyTextTower(cfg, embed_dim)", "文本塔", sd, ids)


def _tower_case(cfg, E, seed, lengths, small_embeddings=False):
    sd = _tower_weights(cfg, E, seed, small_embeddings)   # made with the case, before any tripwire is armed (03.7)

    def run(cls):
        ids = tokens(lengths, max(lengths), seed=seed + 1)
        if cls is _LibraryTower:
            return _build_tower_run(cls, cfg, E, sd, ids)
        with watch(_TOWER_BUILDS) as hits:
            out = _build_tower_run(cls, cfg, E, sd, ids)
        return {MARK: hits[0]} if hits else out
    return run


def _tower_cases():
    return [Case("2 层，H = 24、3 个头、I = 48，位置表 16 行，E = 8：装进库里文本塔的权重，再比较特征",
                 _tower_case(_text_config(24, 3, 48, 2, 16), 8, 81, [12, 6, 3])),
            Case("另一种配置：3 层，H = 16、2 个头、I = 40，位置表 20 行，词表 8200，E = 12（一句是空句子）",
                 _tower_case(_text_config(16, 2, 40, 3, 20, vocab=8200), 12, 82, [10, 2])),
            Case("三张嵌入表的数很小（相加后的方差比 1e-5 小得多）：嵌入之后的 LayerNorm 的 eps 要和 BERT 一样",
                 _tower_case(_text_config(32, 4, 64, 1, 12), 6, 83, [9, 4], small_embeddings=True))]


def _tower_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    H, I, layers = heads * rng.randint(3, 8), rng.choice([2, 3, 5]) * 8, rng.randint(1, 3)
    L = rng.randint(4, 12)
    E = rng.randint(4, 12)
    E = E + 1 if E == H else E
    cfg = _text_config(H, heads, I, layers, L + rng.randint(0, 8), vocab=8000 + rng.randint(0, 500))
    lengths = [L, rng.randint(2, L)]
    return [Case("随机配置的文本塔", _tower_case(cfg, E, seed, lengths)),
            Case("随机配置、很小的嵌入表", _tower_case(cfg, E, seed + 7, lengths, small_embeddings=True))]


def _mutant_tower(eps=1e-12, layer_list="ModuleList", layer_name="encoder.layer", bert_level=True, positions=None,
                  projection="parameter", types=None, n_layers=None, vocab=None):
    """A student-style MyTextTower with one choice done differently (for the mutants); its layers are a
    correct MyBertLayer (`_mutant_layer()`)."""
    Layer = _mutant_layer()

    class Tower(torch.nn.Module):
        def __init__(self, cfg, E):
            super().__init__()
            H = cfg.text_hidden_size
            emb = torch.nn.Module()
            emb.word_embeddings = torch.nn.Embedding(vocab or cfg.vocab_size, H)
            emb.position_embeddings = torch.nn.Embedding(positions or cfg.text_max_position_embeddings, H)
            emb.token_type_embeddings = torch.nn.Embedding(types or cfg.text_type_vocab_size, H)
            emb.LayerNorm = torch.nn.LayerNorm(H, eps=eps)
            self._layers = [Layer(H, cfg.text_num_attention_heads, cfg.text_intermediate_size)
                            for _ in range(n_layers or cfg.text_num_hidden_layers)]   # a plain list: not registered
            container = torch.nn.ModuleList(self._layers) if layer_list == "ModuleList" else list(self._layers)
            holder = torch.nn.Module() if bert_level else self
            holder.embeddings = emb
            if layer_name == "encoder.layer":
                holder.encoder = torch.nn.Module()
                holder.encoder.layer = container
            else:
                holder.layers = container
            if bert_level:
                self.bert = holder
            proj = torch.empty(E, H) if projection == "transposed" else torch.empty(H, E)
            self.text_projection = proj if projection == "plain tensor" else torch.nn.Parameter(proj)

        def forward(self, ids):
            x = _embeddings(self.bert.embeddings if bert_level else self.embeddings, ids)
            for layer in self._layers:
                x = layer(x, ids)
            return x[:, 0] @ self.text_projection
    return Tower


register(Exercise(
    id="03.8", title="把整个文本塔写成自己的 nn.Module，严格装进库的权重", points=3,
    hint="从 state_dict 的名字倒推模块的层级：bert 下面有 embeddings 和 encoder，encoder 下面的 layer 按下标 0, 1, … 编号；"
         "每张表的行数和列数、层数、头数和 FFN 的维度都从 cfg 读，不要写死；嵌入之后的 LayerNorm 的 eps 沿用 BERT 的值；"
         "text_projection 是一个要被保存和加载的参数，形状是 (隐藏层维度, 投影后的维度)。",
    reference=_LibraryTower, needs=("03.4", "03.7"),
    cases=_tower_cases, hidden=_tower_hidden, builds=_TOWER_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "嵌入之后的 LayerNorm 用了默认的 eps（1e-5）": _mutant_tower(eps=1e-5),
        "层放在普通的 Python 列表里（没有注册成子模块，state_dict 里没有它们）": _mutant_tower(layer_list="list"),
        "层的容器叫 layers，不是 encoder.layer": _mutant_tower(layer_name="layers"),
        "少了 bert 这一级（embeddings 直接挂在模块上）": _mutant_tower(bert_level=False),
        "位置嵌入表写死成 512 行": _mutant_tower(positions=512),
        "句子类型嵌入表只建了 1 行": _mutant_tower(types=1),
        "词表大小写死成 21128": _mutant_tower(vocab=21128),
        "层数写死成 12": _mutant_tower(n_layers=12),
        "text_projection 的形状写反了 (E, H)": _mutant_tower(projection="transposed"),
        "text_projection 是普通张量，没有注册成参数": _mutant_tower(projection="plain tensor"),
        "直接用库里的 BertModel": lambda cfg, E: _LibraryTower(cfg, E),
    }))


# ----------------------------------------------------------------------------- 03.9 parameters of one layer
def _layer_parameters(H: int, I: int) -> int:
    """The library's answer: build one BertLayer of width H, FFN width I on the meta device and count."""
    from cnclip_edu.model.clip import count_parameters
    from cnclip_edu.model.text import BertLayer, TextConfig

    with torch.device("meta"):  # shapes only: no memory, no init
        layer = BertLayer(TextConfig(name="count", text_hidden_size=H, text_intermediate_size=I,
                                     text_num_attention_heads=1))
    return count_parameters(layer)


def _formula(biases=True, layer_norms=2, ln_params=2, ffn="I"):
    """A per-layer count with one term done differently (for the mutants)."""
    def count(H, I):
        inner = 4 * H if ffn == "4H" else I
        linear = lambda n_in, n_out: n_in * n_out + (n_out if biases else 0)  # noqa: E731
        return 4 * linear(H, H) + linear(H, inner) + linear(inner, H) + layer_norms * ln_params * H
    return count


_COUNT_BUILDS = ("cnclip_edu.model.clip.count_parameters", _TEXT + "BertLayer.__init__")
_count_run = guarded(_layer_parameters, _COUNT_BUILDS)


def _count_case(label, H, I):
    return Case(label, lambda f: _count_run(f, H, I))


def _count_cases():
    return [_count_case("RoBERTa-wwm-ext-base：H = 768, I = 3072", 768, 3072),
            _count_case("RoBERTa-wwm-ext-large：H = 1024, I = 4096", 1024, 4096),
            _count_case("课程小模型的尺寸：H = 128, I = 512", 128, 512),
            _count_case("中间层不是 4H 的一层：H = 312, I = 1200", 312, 1200)]


def _count_hidden(seed: int):
    rng = random.Random(seed)
    H = 8 * rng.randint(4, 160)
    return [_count_case("随机尺寸，I = 4H", H, 4 * H),
            _count_case("随机尺寸，I 不是 4H", H, 8 * rng.randint(4, 400) + 4)]


register(Exercise(
    id="03.9", title="BERT 一层的参数个数 bert_layer_params(H, I)", points=2,
    hint="把第 3 部分打印的一层参数逐个数一遍：每个 Linear 有权重和偏置，一层里有几个 LayerNorm、每个有几组参数？"
         "FFN 的中间层维度用参数 I，不要默认它是 4H。",
    reference=_layer_parameters,
    cases=_count_cases, hidden=_count_hidden, builds=_COUNT_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了偏置": _formula(biases=False),
        "忘了 LayerNorm 的参数": _formula(layer_norms=0),
        "只算了一个 LayerNorm": _formula(layer_norms=1),
        "LayerNorm 只算了缩放，没算偏移": _formula(ln_params=1),
        "中间层维度写死成 4H": _formula(ffn="4H"),
        "直接在 meta 设备上建一层再 count_parameters": lambda H, I: _layer_parameters(H, I),
    }))
