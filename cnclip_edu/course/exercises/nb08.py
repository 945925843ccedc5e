"""Notebook 08 (zero-shot classification): the student writes the prompt-ensemble classifier and
the zero-shot prediction with its accuracy.

08.1 is compared with the library's `eval.zeroshot.zero_shot_classifier` (equal to cn_clip's
`zero_shot_classifier`, see tests/test_zeroshot.py), run on the course model shipped with the
package: a real text tower, whose prompt features have different lengths, so averaging without
normalising first gives a different direction. There are more templates than classes in one case
and fewer in another, so a (C, D) answer or a mean over the wrong axis shows as a wrong shape.

08.2 is compared with `eval.zeroshot.classify_features` (softmax of 100 x cosine, top-1 accuracy)
on seeded unit-length features.
"""
from __future__ import annotations

import functools

from .core import Case, Exercise, register


@functools.lru_cache(maxsize=1)
def _course_model():
    import cnclip_edu as cc

    model, _ = cc.load("course", device="cpu")
    return model.eval()


# ----------------------------------------------------------------------------- 08.1 the classifier
def _library_classifier(model, classnames, templates, device):
    from cnclip_edu.eval.zeroshot import zero_shot_classifier

    return zero_shot_classifier(model, classnames, templates, device)


def _classifier_cases():
    from cnclip_edu.eval.prompts import TOY, TOY_SHAPE

    runs = [("6 种形状 × 8 个模板 (TOY_SHAPE)", ["圆形", "正方形", "三角形", "五角星", "十字", "菱形"], TOY_SHAPE),
            ("3 个颜色+形状类别 × 5 个模板 (TOY)", ["红色的圆形", "蓝色的菱形", "黑色的十字"], TOY),
            ("2 个类别 × 1 个模板", ["黄色的三角形", "紫色的五角星"], ["画面里有一个{}"])]
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
    hint="对每个类别：把所有模板填上类别名（t.replace('{}', name)），tokenize 后 .to(device)，在 torch.no_grad() 下 "
         "model.encode_text 得到 (T, D)；每行除以自己的长度，再 .mean(dim=0) 沿模板那一维平均得到 (D,)，再除以它的长度；"
         "最后 torch.stack(..., dim=1) 把各类别排成列，得到 (D, C)。常见错误：平均前没有先归一化、平均后忘了再归一化、"
         "stack 成 (C, D)、沿 dim=1 平均（平均掉了特征维）、只用了第一个模板。",
    reference=_library_classifier,
    cases=_classifier_cases,
    mutants=lambda: {
        "平均前没有先归一化每个模板的特征": _classifier_mistake("no_prenorm"),
        "平均后忘了再归一化": _classifier_mistake("no_renorm"),
        "排成了 (C, D)（stack 用了 dim=0）": _classifier_mistake("rows"),
        "沿特征维 (dim=1) 求平均": _classifier_mistake("mean_over_d"),
        "只用了第一个模板": _classifier_mistake("first_template"),
    },
))


# ----------------------------------------------------------------------------- 08.2 predict + accuracy
def _library_classify(image_feats, classifier, targets):
    from cnclip_edu.eval.zeroshot import classify_features

    result = classify_features(image_feats, classifier, targets, [str(i) for i in range(classifier.shape[1])])
    return result.probs, result.top1


def _unit(n: int, d: int, g):
    import torch

    x = torch.randn(n, d, generator=g)
    return x / x.norm(dim=-1, keepdim=True)


def _classify_inputs(n: int, d: int, c: int, seed: int):
    """Image features near their class direction (most predictions right, some wrong), a (D, C) classifier."""
    import torch

    g = torch.Generator().manual_seed(seed)
    classifier = _unit(c, d, g).T.contiguous()                       # (D, C)
    targets = torch.randint(0, c, (n,), generator=g)
    x = classifier.T[targets] + 0.9 * torch.randn(n, d, generator=g) / d ** 0.5
    return x / x.norm(dim=-1, keepdim=True), classifier, targets


def _classify_cases():
    return [Case(f"{n} 张图、{c} 个类别、特征维度 {d}", lambda f, n=n, d=d, c=c, s=s: f(*_classify_inputs(n, d, c, s)))
            for n, d, c, s in [(12, 8, 4, 0), (30, 16, 7, 1), (5, 32, 9, 2)]]


def _classify_mistake(kind: str):
    def classify(image_feats, classifier, targets):
        scale = 1.0 if kind == "no_scale" else 100.0
        probs = (scale * image_feats @ classifier).softmax(dim=0 if kind == "softmax_dim0" else -1)   # (N, C)
        correct = (probs.argmax(dim=-1) == targets).float()
        return probs, correct.sum().item() if kind == "count" else correct.mean().item()
    return classify


register(Exercise(
    id="08.2", title="零样本预测：softmax(100 · 余弦) 与 top-1 准确率", points=2,
    hint="logits = 100 * image_feats @ classifier，形状 (N, C)；probs = logits.softmax(dim=-1)（每张图在 C 个类别上加起来为 1）；"
         "预测类别 = probs.argmax(dim=-1)；准确率 = (预测 == targets) 的比例（.float().mean()）。"
         "常见错误：忘了乘 100（准确率不变，概率却几乎是均匀的）、softmax 沿 dim=0、准确率算成了答对的张数。",
    reference=_library_classify,
    cases=_classify_cases,
    mutants=lambda: {
        "忘了乘 100": _classify_mistake("no_scale"),
        "softmax 沿 dim=0": _classify_mistake("softmax_dim0"),
        "准确率算成了答对的张数": _classify_mistake("count"),
    },
))
