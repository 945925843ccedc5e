"""Chinese prompt templates for zero-shot classification (our own wording).

A class name alone ("猫") is a poor query: the model was trained on captions, not on single
words. A template turns it into a caption-like sentence ("一张猫的照片"). Different templates
carry different noise (style, framing, quality words), and averaging the class embedding over
many of them (a "prompt ensemble") cancels much of that noise: the average points at what the
sentences share, the class. `{}` marks where the class name goes.

- `GENERAL`: photos of everyday things, for any dataset without a domain set;
- per-domain sets (`DOMAIN_TEMPLATES`) add what the domain's captions would say ("……，一种花");
- `TOY`, `TOY_SHAPE`, `TOY_COLOR`: the course's toy world. Its training captions read like
  "一个红色的圆形", so its templates read the same way; a template unlike the training captions
  ("一张……的照片") would be out of distribution for a model trained only on them.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

Template = Union[str, Callable[[str], str]]

GENERAL: list[str] = [
    "{}",
    "一张{}的照片",
    "{}的图片",
    "这是{}",
    "照片里有{}",
    "一张清晰的{}的照片",
    "一张模糊的{}的照片",
    "{}的特写",
    "一张{}的黑白照片",
    "{}的简笔画",
    "一幅画着{}的画",
    "卡通风格的{}",
    "{}的素描",
    "网上找到的一张{}的图片",
    "一张低分辨率的{}的照片",
    "明亮光线下的{}",
    "昏暗光线下的{}",
    "一张很小的{}的图片",
    "一张很大的{}的图片",
    "一张拍得不好的{}的照片",
    "手机拍的{}",
    "{}的高清照片",
    "一个{}的玩具模型",
    "一张{}的插图",
]

# The toy world. Its captions are short statements about coloured shapes: "一个红色的圆形",
# "图中只有一个红色圆形", "画面里有一个红色的圆形", "浅色背景上画着一个红色的圆形" ... Class names
# are a colour + shape ("红色的圆形"), a shape ("圆形") or a colour ("红色").
TOY_COLORS = ("红色", "橙色", "黄色", "绿色", "蓝色", "紫色", "粉色", "黑色")
TOY_SHAPES = ("圆形", "正方形", "三角形", "五角星", "十字", "菱形")

# No bare "{}": a class name alone ("红色的圆形") never stands as a training caption, and notebook 08
# measures that it hurts (combo_seen top-1 dips when the ensemble takes it in).
TOY: list[str] = [
    "一个{}",
    "图中只有一个{}",
    "画面里有一个{}",
    "浅色背景上画着一个{}",
]
# A shape alone never occurs in a training caption: every caption names a colour too. So a shape
# class is described in every colour ("一个红色的{}", "一个蓝色的{}", ...) and the ensemble
# averages the colour out - the nuisance attribute is marginalized by the prompts themselves.
TOY_SHAPE: list[str] = [f"一个{c}的{{}}" for c in TOY_COLORS]
# ... and a colour class in every shape ("一个{}的圆形", "一颗{}的五角星", ...).
TOY_COLOR: list[str] = [f"{'一颗' if s == '五角星' else '一个'}{{}}的{s}" for s in TOY_SHAPES]

DOMAIN_TEMPLATES: dict[str, list[str]] = {
    "general": GENERAL,
    "toy": TOY,
    "toy-shape": TOY_SHAPE,
    "toy-color": TOY_COLOR,
    "flowers": ["{}，一种花", "一朵{}", "一张{}的照片，一种花", "盛开的{}", "一束{}", "花园里的{}"],
    "food": ["{}，一种食物", "一盘{}", "一张{}的照片，一道菜", "美味的{}", "餐桌上的{}", "刚做好的{}"],
    "pets": ["{}，一种宠物", "一只{}", "一张{}的照片，一种宠物", "可爱的{}", "家里养的{}"],
    "aircraft": ["{}，一种飞机", "一架{}", "一张{}的照片，一种飞机", "机场上的{}", "正在飞行的{}"],
    "cars": ["一辆{}", "一张{}的照片，一种汽车", "路上的{}", "{}，一款汽车", "停着的{}"],
    "satellite": ["{}的卫星图像", "从太空拍摄的{}", "一张{}的航拍照片", "{}的遥感图像", "俯瞰{}"],
    "textures": ["{}的纹理", "{}质地的表面", "一张{}纹理的照片", "{}的图案", "带有{}花纹的布料"],
    "country": ["在{}拍摄的照片", "一张拍摄于{}的照片", "{}的风景", "{}的街景", "去{}旅行时拍的照片"],
}

# ELEVATER dataset names (as cn_clip's zeroshot_evaluation uses them) -> domain.
DATASET_DOMAINS: dict[str, str] = {
    "oxford-flower-102": "flowers",
    "food-101": "food",
    "oxford-iiit-pets": "pets",
    "fgvc-aircraft-2013b-variants102": "aircraft",
    "stanford-cars": "cars",
    "eurosat_clip": "satellite",
    "resisc45_clip": "satellite",
    "dtd": "textures",
    "country211": "country",
}


def get_templates(name: str | None = None) -> list[str]:
    """Templates for a domain ("toy", "food", ...) or an ELEVATER dataset name; `GENERAL` otherwise.

    The toy tasks: "toy-shape" and "toy-color" get their marginalizing sets, any other "toy..."
    name (e.g. "toy-combo_seen") the colour + shape set `TOY`.
    """
    if not name:
        return list(GENERAL)
    key = name.lower()
    if key.startswith("toy"):
        return list(DOMAIN_TEMPLATES.get(key, TOY))
    key = DATASET_DOMAINS.get(key, key)
    return list(DOMAIN_TEMPLATES.get(key, GENERAL))


def fill(template: Template, classname: str) -> str:
    """One prompt: a `{}` string or a callable applied to `classname`."""
    if callable(template):
        return template(classname)
    if "{}" not in template:
        raise ValueError(f"template {template!r} has no '{{}}' for the class name")
    return template.replace("{}", classname)


def build_prompts(classnames: Sequence[str], templates: Sequence[Template]) -> list[list[str]]:
    """prompts[c][t] = templates[t] filled with classnames[c]."""
    if not templates:
        raise ValueError("need at least one template")
    return [[fill(t, c) for t in templates] for c in classnames]
