"""Notebook 00 (quick start): the student writes CLIP's image-text similarity from the two towers'
features.

00.1 is compared with the library's own `CLIP.get_similarity` (normalise, scale by
exp(logit_scale), transpose), fed with fixed features instead of images and tokens. The cases
have more texts than images, so a forgotten transpose shows as a wrong shape.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .tripwire import guard_for

BUILDS = ("cnclip_edu.model.clip.CLIP.get_similarity",)


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
        cases.append(Case("随机的图数、描述数、特征维度、logit_scale 与特征长度",
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
    hint="余弦只看方向：先让每个特征向量（每一行）的长度变成 1，两两点积就是余弦，一次矩阵乘法就能算出所有图和所有描述的组合；"
         "除以长度时想一想形状怎么广播。模型里存的是乘数的对数。两个输出说的是同一张表，一个按图排行，一个按描述排行。",
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
