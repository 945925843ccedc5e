"""Exercise 11.7 of notebook 11 (from CLIP to a chat model that sees): what each training stage trains.

11.7 is what each training stage trains, compared with `mllm.train.set_trainable`: sequences of calls on one
model (so a part left trainable by the previous stage shows), a model with the per-tile vector `tile_pos`
(part of the projector), and a misspelt part name that must raise. The case records each call's returned
count and the trainable parameters of every part after it.

11.q1 is the decision before it: the stage table of LLaVA, InternVL 1.5 and the course's recipe, each stage the
tuple of parts it trains (set_trainable's names), compared per recipe with the parts sorted (the order of names
in a stage does not matter, the order of stages does).
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb11_common import _StandInViT


# ----------------------------------------------------------------------------- 11.7 what each stage trains
def _stage_model(tile_embed: bool):
    """A fresh small MiniVLM per case (its requires_grad flags are the case's state), optionally with the
    per-tile vector `tile_pos`, which belongs to the projector's part."""
    import torch

    from cnclip_edu.mllm import world as W
    from cnclip_edu.mllm.chat import ChatVocab
    from cnclip_edu.mllm.decoder import DecoderConfig
    from cnclip_edu.mllm.vlm import MiniVLM, VLMConfig

    with torch.random.fork_rng():
        torch.manual_seed(5)
        cfg = VLMConfig(select_layer=-4, tile_embed=tile_embed,
                        decoder=DecoderConfig(vocab_size=0, width=32, layers=2, heads=2, mlp_hidden=64))
        return MiniVLM(_StandInViT(), ChatVocab.from_texts(W.vocabulary_texts()), cfg)


def _stage_run(f, calls, tile_embed: bool = False):
    """Call f(model, parts) for each parts in order on one model; after each call record the count it returned
    (or the exception's type) and, per part, how many of its parameters are trainable."""
    m = _stage_model(tile_embed)
    groups = {"vit": [m.vision], "projector": [m.projector], "decoder": [m.decoder], "tile_pos": [m.tile_pos]}
    out = []
    for parts in calls:
        try:
            got = int(f(m, tuple(parts)))
        except NotImplementedError:
            raise                   # the stub: not attempted yet
        except Exception as e:  # noqa: BLE001 - the type is the answer (ValueError expected for unknown parts)
            got = type(e).__name__
        flags = {k: sum(p.numel() for mod in mods if mod is not None for p in mod.parameters() if p.requires_grad)
                 for k, mods in groups.items()}
        out.append((got, flags))
    return out


_RECIPE_CALLS = [("decoder",), ("projector",), ("projector", "decoder")]   # stages 0, 1, 2


def _stage_cases():
    return [Case("配方的三个阶段依次在同一个模型上调用：decoder → projector → projector + decoder",
                 lambda f: _stage_run(f, _RECIPE_CALLS)),
            Case("先全部训练，再只训练 ViT，再全部冻结（空元组）",
                 lambda f: _stage_run(f, [("vit", "projector", "decoder"), ("vit",), ()])),
            Case("模型带每个图块的位置向量 tile_pos（属于 projector）：projector → decoder",
                 lambda f: _stage_run(f, [("projector",), ("decoder",)], tile_embed=True)),
            Case("名字写错（\"llm\"）要报 ValueError，之后照常工作",
                 lambda f: _stage_run(f, [("projector",), ("llm",), ("decoder", "vit")]))]


def _stage_hidden(seed: int):
    rng = random.Random(seed)
    names = ("vit", "projector", "decoder")
    calls = [tuple(n for n in names if rng.random() < 0.5) for _ in range(rng.randint(3, 5))]
    bad = list(calls)
    bad.insert(rng.randrange(1, len(bad)), (rng.choice(names), rng.choice(("llm", "ViT", "mlp"))))
    emb = rng.random() < 0.5
    return [Case("随机的一串调用", lambda f: _stage_run(f, calls, tile_embed=emb)),
            Case("随机的一串调用，其中一次有写错的名字", lambda f: _stage_run(f, bad, tile_embed=not emb))]


def _stage_reference(model, parts):
    from cnclip_edu.mllm.train import set_trainable

    return set_trainable(model, parts)


def _stage_mistake(kind: str):
    def set_trainable(model, parts):
        known = ("vit", "projector", "decoder")
        if kind != "no_check" and any(p not in known for p in parts):
            raise ValueError(f"unknown parts {parts}")
        extra = [] if kind == "no_tile_pos" else [getattr(model, "tile_pos", None)]
        modules = {"vit": [model.vision], "projector": [model.projector, *extra], "decoder": [model.decoder]}
        for name, mods in modules.items():
            for mod in mods:
                for p in (mod.parameters() if mod is not None else ()):
                    if name in parts:
                        p.requires_grad_(True)
                    elif kind != "only_unfreeze":
                        p.requires_grad_(False)
        if kind == "count_all":
            return sum(p.numel() for p in model.parameters())
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return set_trainable


register(Exercise(
    id="11.7", title="每个阶段训练哪些部分 (set_trainable)", points=2,
    hint="每次调用都要把三个部分的每个参数都设一遍：列出的部分 requires_grad=True，没列出的 False——只打开不关闭的话，"
         "上一个阶段打开的部分会一直开着。tile_pos（若有）算在 projector 里。返回的是此刻 requires_grad 为 True 的参数个数，"
         "不是全部参数。名字不在 vit / projector / decoder 里时报 ValueError（拼错的名字不能悄悄地把所有部分都冻结）。",
    reference=_stage_reference,
    cases=_stage_cases,
    hidden=_stage_hidden,
    builds=("cnclip_edu.mllm.train.set_trainable",),
    mutants=lambda: {
        "只把列出的部分打开，不关掉没列出的（上一阶段的状态留下来）": _stage_mistake("only_unfreeze"),
        "返回全部参数的个数，而不是可训练的": _stage_mistake("count_all"),
        "忘了 tile_pos（它属于 projector）": _stage_mistake("no_tile_pos"),
        "名字写错时不报错": _stage_mistake("no_check"),
    },
))


# ----------------------------------------------------------------------------- 11.q1 the stage table of three recipes
# What each stage trains, derived in notebook 11 from each recipe's stated constraints (11.q1's spec; the facts follow it): the names are
# set_trainable's ("decoder" is the language model).
_STAGE_TABLE = {
    "llava": [("projector",), ("projector", "decoder")],
    "internvl1.5": [("vit", "projector"), ("vit", "projector", "decoder")],
    "ours": [("decoder",), ("projector",), ("projector", "decoder")],
}
_RECIPES = {"llava": "LLaVA", "internvl1.5": "InternVL 1.5（Mini-InternVL-Chat-2B-V1-5）", "ours": "我们的配方"}


def _stage_rows(table, recipe: str):
    """One recipe's stages, each a sorted tuple of part names (the order of names within a stage is free)."""
    return [tuple(sorted(set(parts))) for parts in table[recipe]]


def _compare_stages(expected, got) -> str | None:
    """Which stage of the recipe differs (counted from 1, as the notebook counts stages), without the answer."""
    if len(got) != len(expected):
        return f"阶段数不对：这个配方有 {len(expected)} 个阶段，你写了 {len(got)} 个"
    bad = [k + 1 for k, (e, g) in enumerate(zip(expected, got)) if e != g]
    return f"列表里第 {'、'.join(map(str, bad))} 项（从 1 数起）训练的部分不对" if bad else None


def _table_cases(order=tuple(_RECIPES)):
    return [Case(_RECIPES[r], lambda table, r=r: _stage_rows(table, r)) for r in order]


def _table_hidden(seed: int):
    order = list(_RECIPES)
    random.Random(seed).shuffle(order)
    return _table_cases(tuple(order))


def _table_mistake(recipe: str, stage: int | None, parts):
    table = {k: list(v) for k, v in _STAGE_TABLE.items()}
    if stage is None:
        table[recipe] = table[recipe][1:]
    else:
        table[recipe][stage] = parts
    return table


register(Exercise(
    id="11.q1", title="三种配方的阶段表：每个阶段训练哪些部分", points=2,
    hint="对每个阶段问三件事：这个阶段的数据里有没有图像 token（没有的话，投影器和 ViT 拿不到梯度）？"
         "新的、随机初始化的部分必须学；现成的部分会不会被新投影器的乱码带偏（会的话就冻结）？"
         "视觉塔要不要跟着调整，看这个配方的图和视觉塔当初训练时见的图像不像：各家的数据不一样。",
    reference=_STAGE_TABLE,
    cases=_table_cases,
    hidden=_table_hidden,
    compare=_compare_stages,
    show_expected=False,
    builds=("cnclip_edu.mllm.recipe.stages",),
    mutants=lambda: {
        "InternVL 1.5 的预训练只训练投影器（那是 LLaVA / InternVL2 的做法）":
            _table_mistake("internvl1.5", 0, ("projector",)),
        "InternVL 1.5 的预训练也训练语言模型": _table_mistake("internvl1.5", 0, ("vit", "projector", "decoder")),
        "InternVL 1.5 的微调冻结 ViT": _table_mistake("internvl1.5", 1, ("projector", "decoder")),
        "LLaVA 的第二阶段也训练 ViT": _table_mistake("llava", 1, ("vit", "projector", "decoder")),
        "LLaVA 的第一阶段也训练语言模型": _table_mistake("llava", 0, ("projector", "decoder")),
        "我们的阶段 0（纯文本）也训练投影器": _table_mistake("ours", 0, ("projector", "decoder")),
        "我们的阶段 1 也训练解码器": _table_mistake("ours", 1, ("projector", "decoder")),
        "漏了我们的阶段 0": _table_mistake("ours", None, None),
    },
))
