"""Chinese prompt templates for zero-shot classification (our own wording).

A class name alone ("猫") is a poor query: the model was trained on captions, not on single
words. A template turns it into a caption-like sentence ("一张猫的照片"). Different templates
carry different noise (style, framing, quality words), and averaging the class embedding over
many of them (a "prompt ensemble") cancels much of that noise: the average points at what the
sentences share, the class. `{}` marks where the class name goes.

- `GENERAL`: photos of everyday things, for any dataset without a domain set;
- per-domain sets (`DOMAIN_TEMPLATES`) add what the domain's captions would say ("……，一种花");
- `TOY`: the course's toy world. Its training captions read like "一个红色的圆形", so its
  templates read the same way; a template unlike the training captions ("一张……的照片")
  would be out of distribution for a model trained only on them.
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

# The toy world: captions are short statements about coloured shapes ("一个红色的圆形",
# "图中有一个红色的圆形", "蓝色的正方形在左边" ...); class names are a shape ("圆形"), a colour
# ("红色") or both ("红色的圆形").
TOY: list[str] = [
    "一个{}",
    "{}",
    "图中有一个{}",
    "画面里有{}",
    "这是一个{}",
]

DOMAIN_TEMPLATES: dict[str, list[str]] = {
    "general": GENERAL,
    "toy": TOY,
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

    Names starting with "toy" (e.g. the toy tasks "toy-shape") get the toy set.
    """
    if not name:
        return list(GENERAL)
    key = name.lower()
    if key.startswith("toy"):
        return list(TOY)
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
