"""Exercise 02.6 of notebook 02 (the vision tower): the attention maps taken with forward hooks.

SDPA never hands out its attention weights, so the student hooks every block's `attn`, recomputes
softmax(q kᵀ / √Dh) from the hook's input, runs the tower once and removes the hooks again. Compared with
the library's `vit_attention` on seeded tiny towers: (layers, B, heads, L, L), plus how many hooks are
still attached afterwards (0: a forgotten `remove()` would run on every later forward pass). The
mutants are the slips that keep a plausible result: the wrong softmax axis or scale, the hook's output
(or the whole block's un-normalised input) instead of the attention's input, heads averaged, the
hooks left behind, and no hook at all (the blocks run by hand): the tower's hook tables count the
registrations made during the call, at least one per layer. The student may use `attn.qkv` here
(02.3 already wrote that part by hand).
"""
from __future__ import annotations

import math
import random
from collections import OrderedDict

import torch

from cnclip_edu.viz.attention import vit_attention

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .towers import images, tiny_vit

_MAPS_BUILDS = ("cnclip_edu.viz.attention.vit_attention",)
_maps_run = guarded(vit_attention, _MAPS_BUILDS)


class _Counted(OrderedDict):
    """A module's hook table that counts registrations (register_forward_hook writes one entry)."""
    added = 0

    def __setitem__(self, key, value):
        type(self).added += 1
        super().__setitem__(key, value)


_HOOKED_KEY = "注意力图来自前向钩子（调用期间塔里注册的前向钩子 ≥ 层数）"


def _maps_case(label: str, visual, x):
    def run(f):
        modules = list(visual.modules())
        counter = type("_Count", (_Counted,), {"added": 0})  # a fresh count per run
        for m in modules:
            m._forward_hooks, m._forward_pre_hooks = counter(m._forward_hooks), counter(m._forward_pre_hooks)
        counter.added = 0
        try:
            result = _maps_run(f, visual, x)
        finally:
            left = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in modules)
            for m in modules:  # the next call starts clean whatever this answer left behind
                m._forward_hooks, m._forward_pre_hooks = OrderedDict(), OrderedDict()
        if isinstance(result, dict):  # the shortcut marker
            return result
        return {"注意力 (layers, B, heads, L, L)": result.detach().float().cpu() if torch.is_tensor(result) else result,
                _HOOKED_KEY: counter.added >= len(visual.transformer.resblocks),
                "调用之后模型上还挂着的钩子": left}
    return Case(label, run)


def _maps_cases():
    vit4 = tiny_vit(seed=12, width=32, heads=4, layers=3)
    vit2 = tiny_vit(seed=13)
    return [_maps_case("宽 32、4 个头、3 层，2 张 12×12 的图", vit4, images(2, 12, seed=14)),
            _maps_case("宽 16、2 个头、2 层，1 张图", vit2, images(1, 12, seed=15))]


def _maps_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([2, 4])
    resolution = rng.choice([8, 12, 16])
    vit = tiny_vit(seed=seed, width=8 * heads, heads=heads, layers=rng.randint(1, 3), resolution=resolution)
    return [_maps_case("随机头数、层数、分辨率和批次", vit, images(rng.randint(1, 3), resolution, seed=seed))]


def _maps(visual, x, at="attn_input", dim=-1, scale=None, mean_heads=False, remove=True):
    """The hooked attention maps with one step done wrong (for the mutants)."""
    maps = []

    def hook(module, inputs, output):
        attn = module.attn if at == "block_input" else module
        h = output if at == "attn_output" else inputs[0]
        q, k, _ = attn.qkv(h)
        w = (q @ k.transpose(-1, -2) / (scale if scale is not None else math.sqrt(q.shape[-1]))).softmax(dim=dim)
        maps.append(w.mean(dim=1) if mean_heads else w)

    handles = [(blk if at == "block_input" else blk.attn).register_forward_hook(hook)
               for blk in visual.transformer.resblocks]
    with torch.no_grad():
        visual(x)
    if remove:
        for h in handles:
            h.remove()
    return torch.stack(maps)


def _by_hand(visual, x):
    """The same maps without any hook: the blocks run one by one and attn.qkv is called on ln_1's output."""
    maps = []
    with torch.no_grad():
        h = visual.ln_pre(visual.embed(x))
        for blk in visual.transformer.resblocks:
            q, k, _ = blk.attn.qkv(blk.ln_1(h))
            maps.append((q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1))
            h = blk(h)
    return torch.stack(maps)


register(Exercise(
    id="02.6", title="用前向钩子取出注意力图", points=2,
    hint="钩子挂在每个块的 attn 上，它的输入 inputs 是一个元组，inputs[0] 是已经过 ln_1 的 (B, L, D)；"
         "分数按每个头的维度 Dh 缩放，softmax 沿 key 那一维；每个头的图都要保留；用完把每个 handle 都 remove()。",
    reference=vit_attention,
    cases=_maps_cases, hidden=_maps_hidden, builds=_MAPS_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "softmax 沿错了维度 (dim=-2)": lambda v, x: _maps(v, x, dim=-2),
        "忘了除以 √Dh": lambda v, x: _maps(v, x, scale=1.0),
        "除以 √D 而不是 √Dh": lambda v, x: _maps(v, x, scale=math.sqrt(v.conv1.weight.shape[0])),
        "用了 attn 的输出，不是它的输入": lambda v, x: _maps(v, x, at="attn_output"),
        "钩子挂在整个块上（输入还没经过 ln_1）": lambda v, x: _maps(v, x, at="block_input"),
        "把各个头取了平均（少了 heads 这一维）": lambda v, x: _maps(v, x, mean_heads=True),
        "用完没有移除钩子": lambda v, x: _maps(v, x, remove=False),
        "不用钩子，自己逐块前向时重算（没练到钩子）": _by_hand,
        "直接调用库里的 vit_attention": lambda v, x: vit_attention(v, x),
    }))
