"""Exercise 02.5 of notebook 02 (the vision tower): the whole `encode_image(model, images)`, the capstone
piece of notebook 02: the student's own ViT forward computed from `model.visual`'s parameters.

Compared with `CLIP.encode_image` on seeded tiny CLIPs: the features, and the gradients of a weighted
sum of them with respect to a few visual parameters (towers.feature_probes), because the capstone needs
autograd to reach `model.visual`'s parameters through this forward: an answer computed under
`torch.no_grad()` gives the right numbers and no gradient.
"""
from __future__ import annotations

import random

import torch

from cnclip_edu.model.clip import CLIP

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts
from .nb02_common import _VISION
from .towers import feature_probes, images, tiny_clip


# ----------------------------------------------------------------------------- 02.5 encode_image(model, images)
def _encode(m, x, pool="cls", ln_pre=True, ln_post_after_proj=False, grad=True):
    v = m.visual
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        x = v.embed(x)
        if ln_pre:
            x = v.ln_pre(x)
        for block in v.transformer.resblocks:
            x = block(x)
        x = x[:, 0] if pool == "cls" else x.mean(dim=1)
        return v.ln_post(x @ v.proj) if ln_post_after_proj else v.ln_post(x) @ v.proj


_ENCODE_IMAGE_BUILDS = (_VISION + "VisionTransformer.forward", _VISION + "Transformer.forward",
                        "cnclip_edu.model.clip.CLIP.encode_image", "cnclip_edu.model.clip.CLIP.forward")
_encode_run = guarded(CLIP.encode_image, _ENCODE_IMAGE_BUILDS)
_GRAD_PARAMS = ("visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
                "visual.transformer.resblocks.0.attn.in_proj_weight", "visual.ln_pre.weight", "visual.proj")


# the features (no autograd), and the gradients of a weighted sum of them w.r.t. a few visual parameters
_features, _gradients = feature_probes(_encode_run, _GRAD_PARAMS)


def _encode_image_cases():
    big = tiny_clip(seed=21, resolution=32, patch=8, width=32, layers=2, head_width=8)
    small = tiny_clip(seed=22, layers=2)
    x_big, x_small, x_one = images(2, 32, seed=23), images(3, 12, seed=24), images(1, 12, seed=25)
    return [Case("32×32 图、patch 8、宽 32、2 层的 CLIP，2 张图", lambda f: _features(f, big, x_big)),
            Case("12×12 图、patch 4、宽 16、2 层的 CLIP，3 张图", lambda f: _features(f, small, x_small)),
            Case("只有 1 张图 (B = 1)", lambda f: _features(f, small, x_one)),
            Case("反向传播：梯度要能传到 model.visual 的参数", lambda f: _gradients(f, small, x_small))]


def _encode_image_hidden(seed: int):
    rng = random.Random(seed)
    grid, patch, heads = rng.randint(2, 4), rng.randint(2, 5), rng.choice([1, 2, 4])
    m = tiny_clip(seed=seed, resolution=grid * patch, patch=patch, width=8 * heads, layers=rng.randint(1, 3),
                  head_width=8)
    x = images(rng.randint(1, 4), grid * patch, seed=seed + 1)
    return [Case("随机大小的 CLIP 和一批随机图片", lambda f: _features(f, m, x)),
            Case("随机大小的 CLIP：梯度", lambda f: _gradients(f, m, x))]


register(Exercise(
    id="02.5", title="完整的 encode_image(model, images)", points=3,
    hint="CLIP 的 ViT 在进第一个残差块之前多一个 LayerNorm；走完所有块以后只有一个 token 代表整张图；"
         "投影和最后一个 LayerNorm 的先后顺序要对；别用 torch.no_grad() 或 .detach()，否则梯度传不回参数。",
    reference=CLIP.encode_image, needs=("02.1", "02.2", "02.4"),
    cases=_encode_image_cases, hidden=_encode_image_hidden, builds=_ENCODE_IMAGE_BUILDS,
    compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了 ln_pre": lambda m, x: _encode(m, x, ln_pre=False),
        "对所有 token 取平均，而不是取 [CLS]": lambda m, x: _encode(m, x, pool="mean"),
        "先投影再 ln_post": lambda m, x: _encode(m, x, ln_post_after_proj=True),
        "在 torch.no_grad() 里计算（梯度传不回参数）": lambda m, x: _encode(m, x, grad=False),
        "直接调用库里的 model.visual(images)": lambda m, x: m.visual(x),
        "直接调用库里的 model.encode_image": lambda m, x: m.encode_image(x),
    }))
