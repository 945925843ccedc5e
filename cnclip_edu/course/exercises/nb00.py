"""Notebook 00 (quick start): the student writes CLIP's image-text similarity from the two towers'
features, and answers what truncation keeps.

00.1 is compared with the library's own `CLIP.get_similarity` (normalise, scale by
exp(logit_scale), transpose), fed with fixed features instead of images and tokens. The cases
have more texts than images, so a forgotten transpose shows as a wrong shape.
"""
from __future__ import annotations

from .core import Case, Exercise, register


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


def _similarity_cases():
    import math

    return [
        Case(f"{b} 张图、{t} 句描述，特征维度 {d}，logit_scale = {name}",
             lambda f, b=b, t=t, d=d, s=s, seed=seed, spread=spread: f(*_features(b, t, d, s, seed, spread)))
        for b, t, d, s, name, seed, spread in [
            (3, 5, 16, math.log(1 / 0.07), "ln(1/0.07)（初始值）", 0, 1.0),
            (1, 4, 8, math.log(100), "ln(100)（上限）", 1, 7.0),   # long, unnormalised features
            (4, 6, 32, math.log(17.0), "ln(17)", 2, 0.3),
        ]]


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
    id="00.1", title="图文相似度：归一化、点积、乘温度", points=2,
    hint="每个特征向量除以它自己的长度：x / x.norm(dim=-1, keepdim=True)；再 logit_scale.exp() * img @ txt.t() "
         "得到 (图数, 描述数) 的 logits_per_image，logits_per_text 是它的转置。常见错误：忘了 .exp()（logit_scale 存的是对数）、"
         "沿 dim=0 归一化、忘了 keepdim=True、logits_per_text 忘了转置。",
    reference=_library_similarity,
    builds=("cnclip_edu.model.clip.CLIP.get_similarity",),
    cases=_similarity_cases,
    mutants=lambda: {
        "忘了归一化": _mistake("no_norm"),
        "logit_scale 忘了取 exp": _mistake("no_exp"),
        "沿 dim=0（按列）归一化": _mistake("dim0"),
        "norm 忘了 keepdim=True": _mistake("no_keepdim"),
        "logits_per_text 忘了转置": _mistake("no_t"),
    },
))

TRUNCATION_TEXT = "一只在草地上奔跑的金毛小狗"


def _kept_characters() -> int:
    """How many of the caption's characters survive `tokenize(..., context_length=8)`."""
    from cnclip_edu.tokenizer import CLS_ID, PAD_ID, SEP_ID, tokenize

    row = tokenize(TRUNCATION_TEXT, context_length=8)[0]
    return int(((row != PAD_ID) & (row != CLS_ID) & (row != SEP_ID)).sum())


register(Exercise(
    id="00.q1", title="截断：context_length = 8 时还剩几个字", points=1,
    hint="[CLS] 和 [SEP] 各占一个位置，剩下的位置才放描述里的字；这句描述的每个汉字是一个 token。",
    reference=_kept_characters,  # computed by the library when checked, not typed in
    cases=lambda: [Case(f"cc.tokenize('{TRUNCATION_TEXT}', context_length=8) 保留的字数",
                        lambda a: a() if callable(a) else a)],
    mutants=lambda: {"忘了 [CLS] 和 [SEP] 也占位置": 8, "只算了 [SEP]": 7, "以为不会截断": len(TRUNCATION_TEXT)},
))
