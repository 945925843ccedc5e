"""Toy-world captions: semantic keys (what a caption asserts) and their Chinese renderings.

A key is a hashable tuple. `image_keys` lists every key an image satisfies; a caption with key k
matches exactly the images whose `image_keys` contain k. Rendering picks one of several natural
phrasings (measure words 个/块/颗, optional 的, synonyms such as 星星 for 五角星, 在…的左边,
左边是…右边是…, 上面/下面, corners), so the text tower has to learn meaning, not one template.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import random

# name -> [(surface form, [measure words])]
_SHAPE_FORMS = {
    "圆形": [("圆形", ["个"]), ("圆", ["个"])],
    "正方形": [("正方形", ["个", "块"]), ("方块", ["个", "块"])],
    "三角形": [("三角形", ["个", "块"])],
    "五角星": [("五角星", ["个", "颗"]), ("星星", ["颗", "个"])],
    "十字": [("十字", ["个"]), ("十字形", ["个"])],
    "菱形": [("菱形", ["个", "块"])],
}
_CELL_NAMES = {
    (0, 0): ["左上角"], (1, 0): ["正上方", "上方中间"], (2, 0): ["右上角"],
    (0, 1): ["左边", "左侧"], (1, 1): ["正中间", "中央"], (2, 1): ["右边", "右侧"],
    (0, 2): ["左下角"], (1, 2): ["正下方", "下方中间"], (2, 2): ["右下角"],
}
_SIZE_FORMS = {"大": ["大", "大大的"], "小": ["小", "小小的"]}
_CHINESE_NUM = {2: "两", 3: "三"}


@dataclass(frozen=True)
class Shape:
    color: str
    shape: str
    size: Optional[str]          # "大" / "小" (1-2 shape images) or None (3-shape rows)
    cell: Optional[tuple]        # (col, row) in a 3x3 grid, single-shape images only
    x: float                     # centre, fraction of the image side
    y: float
    scale: float                 # shape height, fraction of the image side


def _cs(p: Shape) -> tuple[str, str]:
    return (p.color, p.shape)


def _scs(p: Shape) -> tuple[str, str, str]:
    return (p.size, p.color, p.shape)


def image_keys(layout: str, shapes: list[Shape]) -> list[tuple]:
    """Every caption meaning this image satisfies (see module docstring)."""
    keys = [("set", tuple(sorted(_cs(p) for p in shapes)))]
    if layout == "one":
        p = shapes[0]
        keys += [("pos", p.color, p.shape, p.cell), ("size", _scs(p)), ("full", _scs(p), p.cell)]
    elif layout in ("h", "v"):
        a, b = shapes
        keys += [(layout, _cs(a), _cs(b)), (layout + "s", _scs(a), _scs(b)),
                 ("sizeset", tuple(sorted([_scs(a), _scs(b)])))]
    else:
        keys.append(("h3",) + tuple(_cs(p) for p in shapes))
    return keys


def caption_objects(key: tuple) -> tuple[tuple[str, str], ...]:
    """The (colour, shape) pairs a caption key asserts, sorted: sizes, places and order dropped.

    Equal to an image's own ("set", ...) objects when the image holds exactly those shapes, so a
    wrong retrieval can be told apart: right objects in the wrong place / size / order, or wrong objects.
    """
    kind = key[0]
    if kind == "set":
        items = key[1]
    elif kind == "pos":
        items = [key[1:3]]
    elif kind in ("size", "full"):
        items = [key[1][1:]]
    elif kind in ("h", "v", "h3"):
        items = key[1:]
    elif kind in ("hs", "vs"):
        items = [p[1:] for p in key[1:]]
    elif kind == "sizeset":
        items = [p[1:] for p in key[1]]
    else:
        raise ValueError(f"unknown caption kind {kind!r}")
    return tuple(sorted(tuple(p) for p in items))


def describe_scene(layout: str, shapes: list[Shape]) -> str:
    """Everything an image holds, in plain Chinese: "左上角：大的红色正方形", "左：…；右：…", "从左到右：…"."""
    def name(p: Shape) -> str:
        return f"{p.size + '的' if p.size else ''}{p.color}{p.shape}"

    if layout == "one":
        return f"{_CELL_NAMES[shapes[0].cell][0]}：{name(shapes[0])}"
    if layout in ("h", "v"):
        first, second = ("左", "右") if layout == "h" else ("上", "下")
        return f"{first}：{name(shapes[0])}；{second}：{name(shapes[1])}"
    return "从左到右：" + "、".join(name(p) for p in shapes)


_WEIGHTS = {  # caption kind -> weight, per layout
    "one": {"full": 0.4, "pos": 0.25, "size": 0.2, "set": 0.15},
    "h": {"h": 0.45, "hs": 0.25, "set": 0.15, "sizeset": 0.15},
    "v": {"v": 0.45, "vs": 0.25, "set": 0.15, "sizeset": 0.15},
    "h3": {"h3": 0.65, "set": 0.35},
}


def sample_captions(rng: random.Random, layout: str, shapes: list[Shape], k: int) -> list[tuple]:
    """Keys of `k` captions for one image: distinct kinds first, by weight (then repeats)."""
    by_kind = {key[0]: key for key in image_keys(layout, shapes)}
    weights = dict(_WEIGHTS[layout])
    out = []
    for _ in range(k):
        if not weights:
            weights = dict(_WEIGHTS[layout])
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        del weights[kind]
        out.append(by_kind[kind])
    return out


# ----------------------------------------------------------------------------- rendering
def _pick(rng: random.Random, options: list):
    return options[rng.randrange(len(options))]


def _np(rng, color: str, shape: str, size: Optional[str] = None, numeral: bool = True) -> str:
    """Noun phrase: 一个红色的圆形 / 一块大的蓝色方块 / 红色的大星星 / 黄色十字 ..."""
    form, mws = _pick(rng, _SHAPE_FORMS[shape])
    de = _pick(rng, ["的", ""]) if size is None else ""
    if size is None:
        core = f"{color}{de}{form}"
    else:
        s = _pick(rng, _SIZE_FORMS[size])
        s_de = s if s.endswith("的") else s + "的"
        core = _pick(rng, [f"{s_de}{color}{form}", f"{color}的{s.rstrip('的')}{form}"])
    return f"一{_pick(rng, mws)}{core}" if numeral else core


def render_caption(rng: random.Random, key: tuple) -> str:
    kind = key[0]
    if kind == "set":
        items = list(key[1])
        rng.shuffle(items)
        nps = [_np(rng, c, s) for c, s in items]
        if len(nps) == 1:
            return _pick(rng, ["{0}", "图中只有{0}", "浅色背景上画着{0}", "画面里有{0}"]).format(*nps)
        listed = "、".join(nps[:-1]) + "和" + nps[-1]
        n = _CHINESE_NUM[len(nps)]
        return _pick(rng, [listed, f"图中有{n}个图形：{listed}", f"画面里共有{n}个图形，分别是{listed}"])
    if kind in ("pos", "full"):
        if kind == "pos":
            _, c, s, cell = key
            np_ = _np(rng, c, s)
        else:
            (size, c, s), cell = key[1], key[2]
            np_ = _np(rng, c, s, size)
        where = _pick(rng, _CELL_NAMES[cell])
        return _pick(rng, [f"{where}有{np_}", f"{np_}在画面的{where}", f"{np_}位于图片{where}",
                           f"图片的{where}是{np_}"])
    if kind == "size":
        np_ = _np(rng, *key[1][1:], size=key[1][0])
        return _pick(rng, ["{0}", "图中只有{0}", "画面里有{0}"]).format(np_)
    if kind == "sizeset":
        items = list(key[1])
        rng.shuffle(items)
        a, b = (_np(rng, c, s, size) for size, c, s in items)
        return _pick(rng, [f"{a}和{b}", f"图中有{a}和{b}", f"画面里有{a}，还有{b}"])
    if kind in ("h", "v", "hs", "vs"):
        first, second = key[1], key[2]
        if kind in ("hs", "vs"):
            a, b = _np(rng, first[1], first[2], first[0]), _np(rng, second[1], second[2], second[0])
            a_bare = b_bare = None
        else:
            a, b = _np(rng, *first), _np(rng, *second)
            a_bare, b_bare = _np(rng, *first, numeral=False), _np(rng, *second, numeral=False)
        lo, hi, rel_lo, rel_hi = ("左边", "右边", "左边", "右边") if kind[0] == "h" else ("上面", "下面", "上面", "下面")
        options = [f"{lo}是{a}，{hi}是{b}", f"{lo}有{a}，{hi}有{b}"]
        if a_bare is not None:
            options += [f"{a}在{b_bare}的{rel_lo}", f"{b}在{a_bare}的{rel_hi}"]
        return _pick(rng, options)
    if kind == "h3":
        a, b, c = (_np(rng, *p) for p in key[1:])
        return _pick(rng, [f"从左到右依次是{a}、{b}和{c}", f"左边是{a}，中间是{b}，右边是{c}",
                           f"一排三个图形：{a}、{b}、{c}"])
    raise ValueError(f"unknown caption kind {kind!r}")
