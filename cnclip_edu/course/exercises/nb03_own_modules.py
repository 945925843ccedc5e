"""Exercises 03.8-03.10 of notebook 03: one layer and then the whole text tower as the student's own
nn.Modules, and one layer's parameter count.

03.8 is one BERT layer as the student's own nn.Module: the library layer's weights must load into it
strictly and give the same output (an I != 4H width, and inputs small enough that LayerNorm's eps
shows); 03.9 is the whole text half of CLIP (`bert.*` + `text_projection`) as the student's module,
built from a `TextConfig` with their 03.8 layers, loaded strictly from the library's weights on three
configurations (other layer counts, vocabulary and position-table sizes; embeddings small enough that
the embedding LayerNorm's eps shows; one with 3 token types); 03.10 counts one layer's parameters from a
formula. The library stand-ins that 03.3 / 03.4 accept cannot run inside the student's own modules: 03.8 /
03.9 then name the earlier exercise that must be the student's own (`_explain_stand_ins`). Every exercise
has grading cases drawn from a seed (`hidden`) and names the library routines it builds (`builds`, guards.py).
"""
from __future__ import annotations

import random
import re

import torch
import torch.nn.functional as F

from cnclip_edu.model.text import BertLayer, BertModel, TextConfig, padding_bias

from .compare import default_compare
from .core import Case, Exercise, register
from .guards import MARK, guarded, refuse_shortcuts, watch
from .nb03_text_tower import _TEXT, _embeddings, _masked_attention
from .towers import randomize_, tokens

# ----------------------------------------------------------------------------- 03.8 a layer as your own nn.Module
class _LibraryLayer(BertLayer):
    """The reference answer to 03.8: the library's BertLayer built from (H, heads, I), called as (x, ids)."""

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


class _StandIn(Exception):
    """A library stand-in that 03.3 / 03.4 allow reached the student's own module, where it cannot run."""


# the stand-ins that 03.3 / 03.4 accept: (the container it calls, the earlier exercise it stands in for)
_STAND_INS = {"attention.self": ("layer.attention.self(x, padding_bias(...))", "03.3", "03.2 的 bert_self_attention"),
              "embeddings": ("model.bert.embeddings(tokens)", "03.4", "03.1 的 bert_embeddings")}


def _explain_stand_ins(module) -> None:
    """Make a stand-in of 03.3 / 03.4 in the student's own module raise `_StandIn` naming the earlier
    exercise it replaces: a plain container called like a module (it has no forward), or one of the
    student's layers called with the additive mask instead of the token ids."""
    for name, sub in module.named_modules():
        if type(sub).forward is torch.nn.Module.forward:   # a plain container: calling it cannot work
            key = next((k for k in _STAND_INS if name == k or name.endswith("." + k)), None)

            def no_forward(_m, _args, name=name, key=key):
                if key is None:
                    raise _StandIn(f"你的代码调用了 {name}(...)，但它在你的模块里只是容器，没有 forward")
                call, used_in, own = _STAND_INS[key]
                raise _StandIn(f"你的 {used_in} 用了代替写法 {call}：在你自己的模块里 {name} 只是容器，没有 forward。"
                               f"这一题要 {used_in} 里用的是你自己的 {own}")
            sub.register_forward_pre_hook(no_forward)
        elif re.fullmatch(r"bert\.encoder\.layer\.\d+", name):   # one of the student's layers
            def mask_not_ids(_m, args):
                if len(args) > 1 and torch.is_tensor(args[1]) and args[1].is_floating_point():
                    raise _StandIn("你的 03.4 用了代替写法 layer(x, padding_bias(...))：你的 MyBertLayer 要的是 token id，"
                                   "不是加性掩码。这一题要 03.4 里用的是你自己的 03.3 的 bert_layer")
            sub.register_forward_pre_hook(mask_not_ids)


def _why_not(expected, got):
    """A compare that gives a "why not" string of `_load_strict_and_run` whole, as the difference."""
    return got if isinstance(got, str) and not isinstance(expected, str) else default_compare(expected, got)


def _load_strict_and_run(module, built_by: str, weights: str, sd, *inputs, own=True):
    """The student's freshly built `module` (`own`; else the reference), the library's weights loaded strictly,
    eval mode; -> its output on `inputs`, or why not (str). Shared by 03.8 (one layer) and 03.9 (the tower)."""
    if not isinstance(module, torch.nn.Module):
        return f"{built_by} 建出来的不是 nn.Module，而是 {type(module).__name__}"
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        return f"库里{weights}的权重 strict=True 装不进你的模块：" + " ".join(lines[1:3])[:400]
    if own:
        _explain_stand_ins(module)
    try:
        with torch.no_grad():
            return module.eval()(*inputs)
    except _StandIn as err:
        return str(err)


def _build_load_run(cls, H, heads, I, sd, x, ids):
    """cls(H, heads, I) loaded with one library layer's weights; -> its output (B, L, H), or why not (str)."""
    return _load_strict_and_run(cls(H, heads, I), str(cls), "一层", sd, x, ids, own=cls is not _LibraryLayer)


def _module_case(H, heads, I, seed, lengths, scale=1.0, bert_init=False):
    # the weights come from a library layer: built here, when the case is made, not inside `run`, which
    # the grader calls with the tripwires of 03.8 armed (BertLayer.__init__ would trip on the case itself)
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
    id="03.8", title="把一层 BERT 写成自己的 nn.Module，strict=True 装进库的权重", points=3,
    hint="state_dict 里的名字就是属性名按层级用点连起来：打印出来的每个名字都要由你建的子模块拼出来，形状也要一样；"
         "一层里两个 LayerNorm 的 eps 沿用 BERT 的值；FFN 中间层的维度用参数 I；自注意力的子模块还要记下头数。"
         "forward 算的是你的 03.3，其中的自注意力要用你自己的 03.2（03.3 允许的库模块代替写法在你的模块上跑不了）。",
    reference=_LibraryLayer, needs=("03.2", "03.3"),
    cases=_module_cases, hidden=_module_hidden, builds=_MODULE_BUILDS, compare=refuse_shortcuts(_why_not),
    mutants=lambda: {
        "LayerNorm 用了默认的 eps（1e-5）": _mutant_layer(eps=1e-5),
        "q、k、v 直接挂在 attention 下面（名字和官方权重对不上）": _mutant_layer(flat_names=True),
        "Linear 没有偏置 (bias=False)": _mutant_layer(bias=False),
        "中间层维度写死成 4H": _mutant_layer(inner="4H"),
        "FFN 用了 tanh 近似的 GELU": _mutant_layer(act=lambda t: F.gelu(t, approximate="tanh")),
        "直接用库里的 BertLayer": lambda H, heads, I: _LibraryLayer(H, heads, I),
    }))


# ----------------------------------------------------------------------------- 03.9 the whole text tower as your own nn.Module
class _LibraryTower(torch.nn.Module):
    """The reference answer to 03.9: CLIP's text half from the library (its BertModel + `text_projection`),
    built from (cfg, embed_dim); forward(tokens) -> (B, E) features, as `CLIP.encode_text`."""

    def __init__(self, cfg: TextConfig, embed_dim: int):
        super().__init__()
        self.bert = BertModel(cfg)
        self.text_projection = torch.nn.Parameter(torch.empty(cfg.text_hidden_size, embed_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, E)
        return self.bert(ids)[:, 0] @ self.text_projection


_TOWER_BUILDS = (*_MODULE_BUILDS, _TEXT + "BertEmbeddings.__init__", _TEXT + "BertModel.forward",
                 "cnclip_edu.model.clip.CLIP.__init__", "cnclip_edu.model.clip.CLIP.encode_text")


def _text_config(H, heads, I, layers, positions, vocab=8000, types=2):
    return TextConfig(name="tower", vocab_size=vocab, text_hidden_size=H, text_num_hidden_layers=layers,
                      text_num_attention_heads=heads, text_intermediate_size=I,
                      text_max_position_embeddings=positions, text_type_vocab_size=types)


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
    return _load_strict_and_run(cls(cfg, E), "MyTextTower(cfg, embed_dim)", "文本塔", sd, ids, own=cls is not _LibraryTower)


def _tower_case(cfg, E, seed, lengths, small_embeddings=False):
    sd = _tower_weights(cfg, E, seed, small_embeddings)   # made with the case, before any tripwire is armed (03.8)

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
            Case("另一种配置：3 层，H = 16、2 个头、I = 40，位置表 20 行，词表 8200，3 种句子类型，E = 12（一句是空句子）",
                 _tower_case(_text_config(16, 2, 40, 3, 20, vocab=8200, types=3), 12, 82, [10, 2])),
            Case("三张嵌入表的数很小（相加后的方差比 1e-5 小得多）：嵌入之后的 LayerNorm 的 eps 要和 BERT 一样",
                 _tower_case(_text_config(32, 4, 64, 1, 12), 6, 83, [9, 4], small_embeddings=True))]


def _tower_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    H, I, layers = heads * rng.randint(3, 8), rng.choice([2, 3, 5]) * 8, rng.randint(1, 3)
    L = rng.randint(4, 12)
    E = rng.randint(4, 12)
    E = E + 1 if E == H else E
    cfg = _text_config(H, heads, I, layers, L + rng.randint(0, 8), vocab=8000 + rng.randint(0, 500),
                       types=rng.randint(3, 4))   # not 2: an answer that hard-codes 2 rows must fail
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
    id="03.9", title="把整个文本塔写成自己的 nn.Module，严格装进库的权重", points=3,
    hint="从 state_dict 的名字倒推模块的层级：bert 下面有 embeddings 和 encoder，encoder 下面的 layer 按下标 0, 1, … 编号；"
         "每张表的行数和列数、层数、头数和 FFN 的维度都从 cfg 读，不要写死；嵌入之后的 LayerNorm 的 eps 沿用 BERT 的值；"
         "text_projection 是一个要被保存和加载的参数，形状是 (隐藏层维度, 投影后的维度)。"
         "forward 算的是你的 03.4，层是你的 03.8；03.4 里要用你自己的 03.1 和 03.3（它允许的库模块代替写法在你的模块上跑不了）。",
    reference=_LibraryTower, needs=("03.1", "03.2", "03.3", "03.4", "03.8"),
    cases=_tower_cases, hidden=_tower_hidden, builds=_TOWER_BUILDS, compare=refuse_shortcuts(_why_not),
    mutants=lambda: {
        "嵌入之后的 LayerNorm 用了默认的 eps（1e-5）": _mutant_tower(eps=1e-5),
        "层放在普通的 Python 列表里（没有注册成子模块，state_dict 里没有它们）": _mutant_tower(layer_list="list"),
        "层的容器叫 layers，不是 encoder.layer": _mutant_tower(layer_name="layers"),
        "少了 bert 这一级（embeddings 直接挂在模块上）": _mutant_tower(bert_level=False),
        "位置嵌入表写死成 512 行": _mutant_tower(positions=512),
        "句子类型嵌入表只建了 1 行": _mutant_tower(types=1),
        "句子类型嵌入表写死成 2 行": _mutant_tower(types=2),
        "词表大小写死成 21128": _mutant_tower(vocab=21128),
        "层数写死成 12": _mutant_tower(n_layers=12),
        "text_projection 的形状写反了 (E, H)": _mutant_tower(projection="transposed"),
        "text_projection 是普通张量，没有注册成参数": _mutant_tower(projection="plain tensor"),
        "直接用库里的 BertModel": lambda cfg, E: _LibraryTower(cfg, E),
    }))


# ----------------------------------------------------------------------------- 03.10 parameters of one layer
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
    id="03.10", title="BERT 一层的参数个数 bert_layer_params(H, I)", points=2,
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
