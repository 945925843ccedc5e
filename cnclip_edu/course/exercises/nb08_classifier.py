"""Exercise 08.1 of notebook 08 (zero-shot classification): the prompt-ensemble classifier.

08.1 is compared with the library's `eval.zeroshot.zero_shot_classifier` (equal to cn_clip's
`zero_shot_classifier`, see tests/test_zeroshot.py), run on the course model shipped with the
package: a real text tower, whose prompt features have different lengths, so averaging without
normalising first gives a different direction. There are more templates than classes in one case
and fewer in another, so a (C, D) answer or a mean over the wrong axis shows as a wrong shape.
"""
from __future__ import annotations

from .core import Case, Exercise, register
from .nb08_common import _course_model


# ----------------------------------------------------------------------------- 08.1 the classifier
def _library_classifier(model, classnames, templates, device):
    from cnclip_edu.eval.zeroshot import zero_shot_classifier

    return zero_shot_classifier(model, classnames, templates, device)


def _classifier_cases():
    from cnclip_edu.eval.prompts import TOY, TOY_SHAPE

    runs = [("6 种形状 × 8 个模板 (TOY_SHAPE)", ["圆形", "正方形", "三角形", "五角星", "十字", "菱形"], TOY_SHAPE),
            (f"3 个颜色-形状类别 × {len(TOY)} 个模板 (TOY)", ["红色的圆形", "蓝色的菱形", "黑色的十字"], TOY),
            ("2 个类别 × 1 个模板", ["黄色的三角形", "紫色的五角星"], ["画面里有一个{}"])]
    return [Case(label, lambda f, c=c, t=t: f(_course_model(), c, list(t), "cpu")) for label, c, t in runs]


def _classifier_hidden(seed: int):
    import random

    from cnclip_edu.eval.prompts import TOY, TOY_COLOR, TOY_COLORS, TOY_SHAPE, TOY_SHAPES

    rng = random.Random(seed)
    combos = [f"{c}的{s}" for c in TOY_COLORS for s in TOY_SHAPES]
    runs = [("形状类别 × 形状模板", rng.sample(TOY_SHAPES, rng.randint(2, 6)), rng.sample(TOY_SHAPE, rng.randint(2, 8))),
            ("颜色类别 × 颜色模板", rng.sample(TOY_COLORS, rng.randint(2, 8)), rng.sample(TOY_COLOR, rng.randint(2, 6))),
            ("颜色-形状类别 × 1 个模板", rng.sample(combos, rng.randint(2, 5)), rng.sample(TOY, 1))]
    return [Case(label, lambda f, c=c, t=t: f(_course_model(), c, list(t), "cpu")) for label, c, t in runs]


def _classifier_mistake(kind: str):
    def build_classifier(model, classnames, templates, device):
        import torch

        from cnclip_edu.tokenizer import tokenize

        weights = []
        with torch.no_grad():
            for name in classnames:
                used = templates[:1] if kind == "first_template" else templates
                tokens = tokenize([t.replace("{}", name) for t in used], context_length=52).to(device)
                f = model.encode_text(tokens)                                      # (T, D)
                if kind != "no_prenorm":
                    f = f / f.norm(dim=-1, keepdim=True)
                if kind == "mean_over_d":
                    mean = f.mean(dim=1)                                           # (T,): wrong axis
                else:
                    mean = f.mean(dim=0)                                           # (D,)
                weights.append(mean if kind == "no_renorm" else mean / mean.norm())
        return torch.stack(weights, dim=0 if kind == "rows" else 1)
    return build_classifier


register(Exercise(
    id="08.1", title="零样本分类器：每个模板编码、归一化、平均、再归一化", points=3,
    hint="每个类别一个原型：它的所有模板填上类别名后编码，每个模板的特征先变成长度 1（每个模板一票分量相同），"
         "在模板那一维上平均，平均出来的向量长度小于 1，再归一化一次；最后把各类别的原型作为列排成 (D, C)。"
         "常见错误：平均前没有先归一化、平均后忘了再归一化、排成了 (C, D)、平均掉了特征维、只用了第一个模板。",
    reference=_library_classifier,
    cases=_classifier_cases,
    hidden=lambda seed: _classifier_hidden(seed),
    builds=("cnclip_edu.eval.zeroshot.zero_shot_classifier", "cnclip_edu.eval.zeroshot.template_text_features",
            "cnclip_edu.eval.zeroshot.classifier_from_text_features"),
    mutants=lambda: {
        "平均前没有先归一化每个模板的特征": _classifier_mistake("no_prenorm"),
        "平均后忘了再归一化": _classifier_mistake("no_renorm"),
        "排成了 (C, D)（stack 用了 dim=0）": _classifier_mistake("rows"),
        "沿特征维 (dim=1) 求平均": _classifier_mistake("mean_over_d"),
        "只用了第一个模板": _classifier_mistake("first_template"),
    },
))
