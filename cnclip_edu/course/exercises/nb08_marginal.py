"""Exercise 08.6 of notebook 08 (zero-shot classification): a shape classifier with colour marginalised.

08.6 (the compositional half: a shape classifier from the colour+shape classifier, colour marginalised)
is compared with `eval.marginal.marginal_probs` on seeded features built from colour and shape
directions: a small logit scale (so summing, averaging, taking the maximum or summing logits all give
other numbers, and a hard-coded 100 shows), shapes with fewer combinations than others (as the 40 seen
combinations: a mean is not a sum), a `shapes` order unlike the order the combinations list them in, and
two shape names where one ends the other ("方形", "正方形": `endswith` or `in` counts a combination twice).
"""
from __future__ import annotations

from .core import Case, Exercise, register
from .nb08_common import _unit


# ----------------------------------------------------------------------------- 08.6 marginalise colour
def _library_marginal(image_feats, classifier, combo_names, shapes, scale):
    from cnclip_edu.eval.marginal import marginal_probs

    return marginal_probs(image_feats, classifier, combo_names, shapes, scale)


def _marginal_inputs(colours, shapes, drop: int, scale: float, seed: int, n: int = 24, d: int = 16,
                     shape_major: bool = False):
    """(image_feats (N, D), classifier (D, K), combo names, shapes, scale): the K colour+shape combinations
    (all pairs but `drop` of them, colour-major or shape-major order) have unit prototypes colour + shape +
    a little noise; each image is near one combination's prototype."""
    import random

    import torch

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    pairs = [(c, s) for s in shapes for c in colours] if shape_major else [(c, s) for c in colours for s in shapes]
    for _ in range(drop):                                  # never the last combination of a shape
        pairs.remove(rng.choice([p for p in pairs if sum(q[1] == p[1] for q in pairs) > 1]))
    colour_vec = {c: _unit(1, d, g)[0] for c in colours}
    shape_vec = {s: _unit(1, d, g)[0] for s in shapes}
    protos = torch.stack([colour_vec[c] + shape_vec[s] + 0.3 * _unit(1, d, g)[0] for c, s in pairs])   # (K, D)
    protos = protos / protos.norm(dim=-1, keepdim=True)
    which = torch.randint(0, len(pairs), (n,), generator=g)
    x = protos[which] + 0.5 * _unit(n, d, g)                                                           # (N, D)
    names = [f"{c}的{s}" for c, s in pairs]
    first_seen = list(dict.fromkeys(s for _, s in pairs))
    order = list(first_seen)
    while len(order) > 1 and order == first_seen:          # the output's column order, never the names' order
        rng.shuffle(order)
    return x / x.norm(dim=-1, keepdim=True), protos.T.contiguous(), names, order, scale


_MARGINAL_CASES = [  # (label, colours, shapes, combinations dropped, scale, shape-major order)
    ("3 种颜色 × 2 种形状，尺度 100", ["红色", "蓝色", "黄色"], ["圆形", "菱形"], 0, 100.0, False),
    ("4 种颜色 × 3 种形状，组合按形状排列，尺度 10", ["红色", "绿色", "黑色", "粉色"], ["十字", "圆形", "三角形"], 0, 10.0, True),
    ("有的形状组合少（像见过的 40 个组合），尺度 17", ["红色", "橙色", "紫色", "蓝色"], ["五角星", "圆形", "菱形"], 3, 17.0, False),
    ("形状名\"方形\"是\"正方形\"的结尾，尺度 5", ["红色", "蓝色", "绿色"], ["正方形", "方形", "圆形"], 1, 5.0, False),
]


def _marginal_cases():
    return [Case(label, lambda f, a=(c, s, k, t, i, m): f(*_marginal_inputs(*a[:5], shape_major=a[5])))
            for i, (label, c, s, k, t, m) in enumerate(_MARGINAL_CASES)]


def _marginal_hidden(seed: int):
    import random

    from cnclip_edu.eval.prompts import TOY_COLORS, TOY_SHAPES

    rng = random.Random(seed)
    colours = rng.sample(TOY_COLORS, rng.randint(3, 6))
    shapes = rng.sample(TOY_SHAPES, rng.randint(3, 5))
    pair = list(rng.choice([("方形", "正方形"), ("方形", "长方形"), ("星", "五角星"), ("圆", "椭圆")]))
    rng.shuffle(pair)
    runs = [("颜色、形状都多，尺度 100", colours, shapes, 0, 100.0, rng.random() < 0.5),
            ("有的形状组合少，尺度小", colours, shapes, rng.randint(2, 4), rng.choice((4.0, 8.0, 17.1)), False),
            ("组合按形状排列，尺度小", colours[:3], shapes[:3], 0, rng.choice((6.0, 12.0)), True),
            ("一个形状名是另一个的结尾", colours[:3], pair + [s for s in shapes if s not in pair][:1], rng.randint(0, 2), rng.choice((3.0, 5.0)),
             rng.random() < 0.5)]
    s0 = rng.randrange(10 ** 6)
    return [Case(kind, lambda f, a=(c, s, k, t, s0 + i, m): f(*_marginal_inputs(*a[:5], shape_major=a[5])))
            for i, (kind, c, s, k, t, m) in enumerate(runs)]


def _marginal_mistake(kind: str):
    def marginal_shape_probs(image_feats, classifier, combo_names, shapes, scale):
        import torch

        logits = (100.0 if kind == "fixed100" else scale) * image_feats @ classifier        # (N, K)
        probs = logits.softmax(dim=0 if kind == "softmax_dim0" else -1)
        if kind == "argmax_onehot":
            probs = torch.nn.functional.one_hot(probs.argmax(dim=-1), probs.shape[1]).float()
        part = [n.split("的")[0 if kind == "colour" else 1] for n in combo_names]
        cols = list(dict.fromkeys(part)) if kind in ("first_seen", "colour") else list(shapes)
        out = []
        for s in cols:
            mask = torch.tensor([n.endswith(s) if kind == "endswith" else p == s for n, p in zip(combo_names, part)])
            if kind == "sum_logits":
                out.append(logits[:, mask].sum(dim=-1))
            elif kind == "mean_cos":
                out.append(logits[:, mask].mean(dim=-1))
            elif kind == "max":
                out.append(probs[:, mask].max(dim=-1).values)
            elif kind == "mean":
                out.append(probs[:, mask].mean(dim=-1))
            else:
                out.append(probs[:, mask].sum(dim=-1))
        out = torch.stack(out, dim=1)                                                        # (N, S)
        return out.softmax(dim=-1) if kind == "mean_cos" else out
    return marginal_shape_probs


register(Exercise(
    id="08.6", title="对颜色边缘化：用颜色-形状分类器做形状分类", points=3,
    hint="先在全部颜色-形状组合上做一次普通的零样本预测：余弦乘以 scale，在组合那一维上 softmax，每张图的概率加起来为 1；"
         "再把同一个形状的所有组合的概率加起来（不是取最大、不是平均、也不是先把分数加起来），得到每个形状一列，"
         "列的顺序按 shapes 给的顺序。组合名是\"颜色的形状\"：形状是第一个\"的\"后面的整段文字，要和 shapes 里的名字完全相等"
         "（\"红色的正方形\"的形状是\"正方形\"，不是\"方形\"）。",
    reference=_library_marginal,
    cases=_marginal_cases,
    hidden=_marginal_hidden,
    builds=("cnclip_edu.eval.marginal.marginal_probs",),
    mutants=lambda: {
        "没有 softmax，直接把同一形状的分数（scale · 余弦）加起来": _marginal_mistake("sum_logits"),
        "先把同一形状的分数平均，再在形状之间 softmax": _marginal_mistake("mean_cos"),
        "对同一形状的组合取最大概率，而不是求和": _marginal_mistake("max"),
        "对同一形状的组合求平均概率，而不是求和": _marginal_mistake("mean"),
        "先取概率最大的组合，再看它的形状（只有 0 和 1）": _marginal_mistake("argmax_onehot"),
        "尺度写死成 100，没用参数 scale": _marginal_mistake("fixed100"),
        "softmax 沿 dim=0（图片那一维）": _marginal_mistake("softmax_dim0"),
        "列按组合名里形状第一次出现的顺序，而不是 shapes 的顺序": _marginal_mistake("first_seen"),
        "用 endswith 判断形状（\"正方形\"也算进\"方形\"）": _marginal_mistake("endswith"),
        "按\"的\"前面的部分（颜色）分组": _marginal_mistake("colour"),
    },
))
