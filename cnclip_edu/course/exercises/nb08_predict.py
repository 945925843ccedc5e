"""Exercise 08.2 of notebook 08 (zero-shot classification): the zero-shot prediction and its accuracy.

08.2 is compared with `eval.zeroshot.classify_features` (softmax of 100 x cosine, top-1 accuracy)
on seeded unit-length features.
"""
from __future__ import annotations

from .core import Case, Exercise, register
from .nb08_common import _unit


# ----------------------------------------------------------------------------- 08.2 predict + accuracy
def _library_classify(image_feats, classifier, targets):
    from cnclip_edu.eval.zeroshot import classify_features

    result = classify_features(image_feats, classifier, targets, [str(i) for i in range(classifier.shape[1])])
    return result.probs, result.top1



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


def _classify_sizes(seed: int):
    import random

    rng = random.Random(seed)
    s = rng.randrange(10 ** 6)
    return [(rng.randint(4, 12), rng.choice((8, 16)), rng.randint(2, 5), s),
            (rng.randint(2, 5), rng.choice((8, 16)), rng.randint(6, 12), s + 1),
            (rng.randint(40, 80), rng.choice((16, 32)), rng.randint(3, 9), s + 2)]


def _classify_mistake(kind: str):
    def classify(image_feats, classifier, targets):
        scale = 1.0 if kind == "no_scale" else 100.0
        probs = (scale * image_feats @ classifier).softmax(dim=0 if kind == "softmax_dim0" else -1)   # (N, C)
        correct = (probs.argmax(dim=-1) == targets).float()
        return probs, correct.sum().item() if kind == "count" else correct.mean().item()
    return classify


register(Exercise(
    id="08.2", title="零样本预测：softmax(100 · 余弦) 与 top-1 准确率", points=2,
    hint="每张图对每个类别的余弦乘以固定的 100 得到 (N, C)，在类别那一维上做 softmax（每张图的概率加起来为 1）；"
         "每张图概率最大的类别就是预测，top-1 是预测等于真实类别的图片所占的比例（0 到 1 之间）。"
         "常见错误：忘了乘 100（准确率不变，概率却几乎是均匀的）、softmax 沿错了维度、准确率算成了答对的张数。",
    reference=_library_classify,
    cases=_classify_cases,
    hidden=lambda seed: [Case(kind, lambda f, n=n, d=d, c=c, s=s: f(*_classify_inputs(n, d, c, s)))
                         for kind, (n, d, c, s) in zip(("几张图、几个类别", "类别比图多", "图很多"),
                                                       _classify_sizes(seed))],
    builds=("cnclip_edu.eval.zeroshot.classify_features",),
    mutants=lambda: {
        "忘了乘 100": _classify_mistake("no_scale"),
        "softmax 沿 dim=0": _classify_mistake("softmax_dim0"),
        "准确率算成了答对的张数": _classify_mistake("count"),
    },
))
