"""Notebook 00 (quick start): the student writes CLIP's image-text similarity from the two towers'
features, decides and then builds the hard negatives that test one held-out colour-shape combination,
and writes the probe that turns them into a verdict over several renders.

00.q1 checks the four design choices asked before 00.2 (which wrong captions test the shape, which the
colour, whether another held-out combination may be one) and how a result is read (first in the group that
differs only in colour, not first in the group that differs only in shape: colour recognised, shape not --
the two groups are easily read the wrong way round); its one case answers only whether all four are right,
so a failed check names neither the question nor the letter and guessing one question at a time does not pay.

00.1 is compared with the library's own `CLIP.get_similarity` (normalise, scale by
exp(logit_scale), transpose), fed with fixed features instead of images and tokens. The cases
have more texts than images, so a forgotten transpose shows as a wrong shape.

00.2 is compared with `eval.hard_negatives.hard_negative_groups`. The public cases put the target
away from the front of both lists (so "target first" is tested), hold the target itself out (so
it must be kept anyway) and hold out some negatives in both directions (so each must be skipped).
The notebook asks the design first (which wrong captions test the shape, which the colour, may another
held-out combination be one); the mutants are the wrong designs -- the two lists swapped, both attributes
changed, held-out negatives kept -- and the slips of building them.

00.3 (its cases and mutants: nb00_probe.py; the world's names both use: nb00_world.py) is compared with `eval.hard_negatives.probe_rank`: the whole probe of one group over several
renders (captions, one render of the target per round, each round's probability and rank, the majority).
It runs in a fake world: `draw_fn(color, shape, k)` returns a label instead of a picture and `logits_fn`
looks each render's logits up in a fixed table, so no model runs. A caption that is not in the training
phrasing and a render number outside 0..rounds-1 are refused with a message; a render is fixed by
(combination, k), so drawing the negatives' pictures too is allowed (and reading their rows is caught).
The tables are not symmetric and scale rows differently, so softmax along the wrong dimension, a wrong
row, a 0-based or "is it first?" rank and a logit instead of a probability all give different answers.
The public cases put a non-first rank in round 0 (a majority read from round 0 only is caught), an even
split of 4 rounds (">= half" is caught), a most-common rank 1 short of a majority (the mode is caught)
and exact ties with the right caption (a rank that counts ties as ahead is caught); the first hidden
case always holds ties.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb00_world import _COLOURS, _HELDOUT, _SHAPES  # the toy world's names, shared with 00.3
from .tripwire import guard_for

BUILDS = ("cnclip_edu.model.clip.CLIP.get_similarity",)
BUILDS_HARD = ("cnclip_edu.eval.hard_negatives.hard_negative_groups",)


def _library_similarity(image_features, text_features, logit_scale):
    """`CLIP.get_similarity` itself, run on given features (encode_image/encode_text return them)."""
    import torch

    from cnclip_edu.model.clip import CLIP

    class _GivenFeatures(CLIP):
        def __init__(self):
            torch.nn.Module.__init__(self)  # no towers: the features are given
            self.logit_scale = logit_scale

        def encode_image(self, images, mask_ratio=0.0):
            return image_features

        def encode_text(self, tokens, unpad=True):
            return text_features

    with torch.no_grad():
        return _GivenFeatures().get_similarity(None, None)


def _features(n_images: int, n_texts: int, dim: int, logit_scale: float, seed: int, spread: float = 1.0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n_images, dim, generator=g) * spread, torch.randn(n_texts, dim, generator=g) * spread,
            torch.nn.Parameter(torch.tensor(logit_scale)))


_guard = guard_for(_library_similarity, BUILDS)


def _similarity_cases():
    import math

    return [
        Case(f"{b} 张图、{t} 句描述，特征维度 {d}，logit_scale = {name}",
             lambda f, b=b, t=t, d=d, s=s, seed=seed, spread=spread: _guard(f)(*_features(b, t, d, s, seed, spread)))
        for b, t, d, s, name, seed, spread in [
            (3, 5, 16, math.log(1 / 0.07), "ln(1/0.07)（初始值）", 0, 1.0),
            (1, 4, 8, math.log(100), "ln(100)（上限）", 1, 7.0),   # long, unnormalised features
            (4, 6, 32, math.log(17.0), "ln(17)", 2, 0.3),
        ]]


def _similarity_hidden(seed: int):
    import math

    rng = random.Random(seed)
    cases = []
    for _ in range(3):
        b, t = rng.randint(1, 6), rng.randint(1, 7)
        while t == b:
            t = rng.randint(1, 7)
        d, s, spread = rng.choice([4, 8, 24, 64]), rng.uniform(0.0, math.log(100)), rng.choice([0.1, 1.0, 9.0])
        cases.append(Case("随机的图数、描述数、特征维度、logit_scale 与特征范数",
                          lambda f, b=b, t=t, d=d, s=s, k=rng.randrange(10 ** 6), spread=spread:
                          _guard(f)(*_features(b, t, d, s, k, spread))))
    return cases


def _mistake(kind: str):
    def similarity(image_features, text_features, logit_scale):
        dim = 0 if kind == "dim0" else -1
        if kind == "no_norm":
            img, txt = image_features, text_features
        elif kind == "no_keepdim":
            img = image_features / image_features.norm(dim=-1)
            txt = text_features / text_features.norm(dim=-1)
        else:
            img = image_features / image_features.norm(dim=dim, keepdim=True)
            txt = text_features / text_features.norm(dim=dim, keepdim=True)
        scale = logit_scale if kind == "no_exp" else logit_scale.exp()
        logits = scale * img @ txt.t()
        return logits, (logits if kind == "no_t" else logits.t())
    return similarity


register(Exercise(
    id="00.1", title="图文相似度：归一化、点积、乘 logit_scale.exp()", points=2,
    hint="余弦只看方向：先让每个特征向量（每一行）的 L2 范数变成 1，两两点积就是余弦，一次矩阵乘法就能算出所有图和所有描述的组合；"
         "除以范数时，B 个范数要排成一列 (B, 1) 才会一行除以一行自己的范数，排成一排 (B,) 会和最后一维对齐。模型里存的是乘数的对数。两个输出说的是同一张表，一个按图排行，一个按描述排行。",
    reference=_library_similarity,
    cases=_similarity_cases,
    hidden=_similarity_hidden,
    builds=BUILDS,
    mutants=lambda: {
        "忘了归一化": _mistake("no_norm"),
        "logit_scale 忘了取 exp": _mistake("no_exp"),
        "沿 dim=0（按列）归一化": _mistake("dim0"),
        "norm 忘了 keepdim=True": _mistake("no_keepdim"),
        "logits_per_text 忘了转置": _mistake("no_t"),
    },
))


# ----------------------------------------------------------------------------- 00.q1 the design, decided first
_DESIGN = {1: "A", 2: "B", 3: "B", 4: "B"}
_DESIGN_CHOICES = {1: "ABC", 2: "ABC", 3: "AB", 4: "ABC"}


def _design_case():
    """Whether all four questions are answered right: one bool, so guessing one question at a time does not pay."""
    def run(design):
        if not isinstance(design, dict):
            return f"design 应当是一个字典 {{1: \"A\", 2: ..., 3: ..., 4: ...}}，得到的是 {type(design).__name__}"
        for k in _DESIGN:
            got = design.get(k, design.get(str(k)))
            letter = got.strip().upper() if isinstance(got, str) else None
            if letter is None or len(letter) != 1 or letter not in _DESIGN_CHOICES[k]:
                return f"问题 {k} 的回答应当是 {' / '.join(_DESIGN_CHOICES[k])} 中的一个字母，得到的是 {got!r}"
        return all(design.get(k, design.get(str(k))).strip().upper() == _DESIGN[k] for k in _DESIGN)
    return Case("四题全对（全对才是 True；不说哪一题错）", run)


register(Exercise(
    id="00.q1", title="先设计：哪些错误选项检验形状、哪些检验颜色，留出组合怎么办，结果怎么读", points=1,
    hint="一组错误选项检验的是哪个属性，取决于正确描述和错误选项之间只差什么：只差形状，模型就只能靠形状排对。"
         "留出组合的描述在训练中一次也没出现过：训练把它和哪句描述推开过？"
         "读结果时反过来想：在只差颜色的一组里排第 1，模型靠什么把它和错误选项分开的？",
    reference=dict(_DESIGN),
    cases=lambda: [_design_case()],
    hidden=lambda seed: [_design_case()],
    builds=BUILDS_HARD,
    mutants=lambda: {
        "两组弄反了（检验形状用只差颜色的一组）": {**_DESIGN, 1: "B", 2: "A"},
        "检验形状时颜色和形状都换": {**_DESIGN, 1: "C"},
        "检验颜色时颜色和形状都换": {**_DESIGN, 2: "C"},
        "别的留出组合也当错误选项": {**_DESIGN, 3: "A"},
        "结果读反了（只差颜色一组排第 1 当成认出了形状）": {**_DESIGN, 4: "C"},
        "一组排第 1 就当认出了整个组合": {**_DESIGN, 4: "A"},
        "回答写成了文字，不是字母": {**_DESIGN, 1: "只差形状"},
    },
))


def _library_hard_negatives(color, shape, colors, shapes, heldout):
    from cnclip_edu.eval.hard_negatives import hard_negative_groups

    return hard_negative_groups(color, shape, colors, shapes, heldout)


_guard_hard = guard_for(_library_hard_negatives, BUILDS_HARD)


def _plain(groups):
    """Whatever sequences the answer returns -> two lists of (colour, shape) tuples (plain data)."""
    same_colour, same_shape = groups
    return [tuple(c) for c in same_colour], [tuple(c) for c in same_shape]


def _hard_case(label, color, shape, colors, shapes, heldout):
    return Case(label, lambda f: _plain(_guard_hard(f)(color, shape, list(colors), list(shapes), list(heldout))))


def _hard_cases():
    return [
        _hard_case("紫色十字（它自己是留出组合；同形的黄色十字也是）", "紫色", "十字", _COLOURS, _SHAPES, _HELDOUT),
        _hard_case("绿色三角形（训练里有；同色的绿色正方形、同形的橙色三角形是留出组合）", "绿色", "三角形", _COLOURS, _SHAPES,
                   _HELDOUT),
        _hard_case("红色圆形，没有留出组合（目标在两个列表里本来就排第一）", "红色", "圆形", _COLOURS[:4], _SHAPES[:4], []),
    ]


def _hard_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for _ in range(3):
        colours, shapes = rng.sample(_COLOURS, rng.randint(3, 8)), rng.sample(_SHAPES, rng.randint(3, 6))
        combos = [(c, s) for c in colours for s in shapes]
        heldout = rng.sample(combos, rng.randint(1, len(combos) // 3))
        color, shape = rng.choice(heldout) if rng.random() < 0.5 else rng.choice(combos)
        cases.append(_hard_case("随机的颜色表、形状表、留出组合和目标", color, shape, colours, shapes, heldout))
    return cases


def _hard_mistake(kind: str):
    def hard_negative_groups(color, shape, colors, shapes, heldout):
        heldout = set(heldout)

        def keep(combo, other_value, target_value):
            if kind == "keeps_heldout":
                return other_value != target_value
            if kind == "target_again":
                return combo not in heldout
            return other_value != target_value and combo not in heldout

        same_colour = [(color, s) for s in shapes if keep((color, s), s, shape)]
        same_shape = [(c, shape) for c in colors if keep((c, shape), c, color)]
        if kind == "any_other":   # "a shape test needs another shape" -- and lets the colour change too
            same_colour = [(c, s) for c in colors for s in shapes if s != shape and (c, s) not in heldout]
            same_shape = [(c, s) for c in colors for s in shapes if c != color and (c, s) not in heldout]
        if kind == "in_place":   # the target where its value stands in the list, not first
            same_colour = [(color, s) for s in shapes if s == shape or (color, s) not in heldout]
            same_shape = [(c, shape) for c in colors if c == color or (c, shape) not in heldout]
            return same_colour, same_shape
        if kind == "drops_heldout_target" and (color, shape) in heldout:
            return same_colour, same_shape
        if kind == "swapped":
            same_colour, same_shape = same_shape, same_colour
        if kind == "sorted":   # e.g. looping over set(shapes) - {shape}: the order of `shapes` / `colors` is lost
            same_colour, same_shape = sorted(same_colour), sorted(same_shape)
        return [(color, shape)] + same_colour, [(color, shape)] + same_shape
    return hard_negative_groups


register(Exercise(
    id="00.2", title="为一个组合挑难负例：只差形状的一组、只差颜色的一组", points=1,
    hint="测一个属性，错误选项就只在这个属性上和目标不同：测形状的一组颜色都和目标一样、只换形状（只差形状），"
         "测颜色的一组形状都一样、只换颜色（只差颜色）。目标排第一且只出现一次；"
         "错误选项要跳过留出组合，但目标本身即使是留出组合也要保留；错误选项的先后照传进来的 shapes / colors 的顺序。",
    reference=_library_hard_negatives,
    cases=_hard_cases,
    hidden=_hard_hidden,
    builds=BUILDS_HARD,
    mutants=lambda: {
        "负例没有跳过留出组合": _hard_mistake("keeps_heldout"),
        "目标是留出组合时把目标也跳过了": _hard_mistake("drops_heldout_target"),
        "目标留在它在列表里原来的位置，没有放在第一个": _hard_mistake("in_place"),
        "目标在负例里又出现了一次": _hard_mistake("target_again"),
        "两个列表弄反了（测形状的一组换的是颜色）": _hard_mistake("swapped"),
        "错误选项只要求被测的属性不同，另一个属性也跟着换了": _hard_mistake("any_other"),
        "负例没有按 shapes / colors 给的顺序（例如先变成集合再遍历）": _hard_mistake("sorted"),
    },
))


from . import nb00_probe  # noqa: E402,F401  (importing registers 00.3, after 00.2: ids in notebook order)
