"""Exercise 08.4 of notebook 08 (zero-shot classification): the strict compositional test.

08.4 (part 5's experiment: held-out colour+shape combinations scored against all K combinations, split
into colour and shape, beside a same-shape and a same-colour control scored by the same classifier on
seen images) is compared with `eval.compositional.compositional_test` on small colour/shape worlds whose
features are multiples of 1/8, so every cosine is exact in float32 and a tie is a true tie (it goes to
the lower index, as argmax does). The worlds are built so that each mistake shows: seen images that the
K-way classifier calls a held-out combination (a control scored among the seen classes only), held-out
images that an 8-way choice among the held-out classes would get right, two held-out combinations of one
shape (a control taken from held-out images), and ties between a held-out column and an earlier seen one.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 08.4 the strict test
def _library_compositional(held_feats, held_targets, seen_feats, seen_targets, classifier, names):
    from cnclip_edu.eval.compositional import compositional_test

    return compositional_test(held_feats, held_targets, seen_feats, seen_targets, classifier, names)


def _world(colours, shapes, held, per_combo: int, seed: int):
    """(held_feats, held_targets, seen_feats, seen_targets, classifier (D, K), names): seen combinations
    (every colour x shape but `held`, colour-major) come first in `names`, the held-out ones after them.
    Prototypes are 2 x colour axis + 2 x shape axis (+ a little integer noise); a held-out image carries
    its colour, its shape and a random other shape (or colour) with equal weight, a seen image its own two axes plus
    noise: values are k / 8, so every dot product is exact."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n_c, n_s = len(colours), len(shapes)
    d = n_c + n_s + 3
    seen = [(c, s) for c in colours for s in shapes if (c, s) not in held]
    pairs = seen + list(held)
    names = [f"{c}的{s}" for c, s in pairs]

    def axes(c, s):
        v = torch.zeros(d)
        v[colours.index(c)] += 2
        v[n_c + shapes.index(s)] += 2
        return v

    noise = lambda n: torch.randint(-1, 2, (n, d), generator=g).float()            # integers -1, 0, 1
    protos = torch.stack([axes(c, s) for c, s in pairs]) + (torch.rand(len(pairs), d, generator=g) < 0.15) * noise(len(pairs))
    held_x, held_t, seen_x, seen_t = [], [], [], []
    for k, (c, s) in enumerate(pairs):
        for _ in range(per_combo):
            if k >= len(seen):                                                       # held-out: shape (or colour) is unsure
                other = shapes[int(torch.randint(0, n_s, (1,), generator=g))]
                blur = (colours[int(torch.randint(0, n_c, (1,), generator=g))], s) if torch.rand(1, generator=g) < 0.2 else (c, other)
                x = axes(c, s) / 2 + axes(*blur) / 2 + 0.5 * noise(1)[0]
                held_x.append(x), held_t.append(k)
            else:
                seen_x.append(axes(c, s) + noise(1)[0] * (torch.rand(d, generator=g) < 0.5)), seen_t.append(k)
    f = lambda rows: torch.stack(rows) / 8                                         # exact in float32
    return f(held_x), torch.tensor(held_t), f(seen_x), torch.tensor(seen_t), (protos / 8).T.contiguous(), names


_CASES = [  # (label, colours, shapes, held-out combinations, images per combination, seed)
    ("4 种颜色 × 3 种形状，2 个没见过的组合是同一种形状", ["红色", "蓝色", "绿色", "黄色"], ["圆形", "三角形", "菱形"],
     [("红色", "圆形"), ("绿色", "圆形")], 6, 0),
    ("5 种颜色 × 4 种形状，3 个没见过的组合，有平分（取编号小的）", ["红色", "橙色", "紫色", "黑色", "粉色"],
     ["十字", "圆形", "五角星", "正方形"], [("橙色", "五角星"), ("黑色", "十字"), ("粉色", "五角星")], 8, 1),
    ("6 种颜色 × 4 种形状，4 个没见过的组合（像玩具世界：颜色各不相同）", ["红色", "蓝色", "绿色", "黄色", "紫色", "橙色"],
     ["正方形", "圆形", "三角形", "菱形"], [("红色", "菱形"), ("蓝色", "圆形"), ("黄色", "菱形"), ("紫色", "正方形")], 5, 2),
]


def _cases():
    return [Case(label, lambda f, a=(c, s, h, n, seed): f(*_world(*a))) for label, c, s, h, n, seed in _CASES]


def _hidden(seed: int):
    import random

    from cnclip_edu.eval.prompts import TOY_COLORS, TOY_SHAPES

    rng = random.Random(seed)
    runs = []
    for kind, n_c, n_s, n_h in (("颜色多、没见过的组合少", rng.randint(5, 8), rng.randint(3, 4), 2),
                                ("没见过的组合多，有两个是同一种形状", rng.randint(5, 7), rng.randint(3, 5), rng.randint(3, 5)),
                                ("形状多、颜色少", rng.randint(3, 4), rng.randint(5, 6), 3)):
        colours, shapes = rng.sample(TOY_COLORS, n_c), rng.sample(TOY_SHAPES, n_s)
        held_colours = rng.sample(colours, min(n_h, n_c))
        twice = rng.choice(shapes)                                                   # two held-out combos share it
        held = [(c, twice if i < 2 else rng.choice(shapes)) for i, c in enumerate(held_colours)]
        runs.append((kind, colours, shapes, held, rng.randint(5, 9), rng.randrange(10 ** 6)))
    return [Case(kind, lambda f, a=(c, s, h, n, sd): f(*_world(*a))) for kind, c, s, h, n, sd in runs]


def _mistake(kind: str):
    def compositional_test(held_feats, held_targets, seen_feats, seen_targets, classifier, names):
        import numpy as np
        import torch

        colour = np.array([n.split("的", 1)[0] for n in names])
        shape = np.array([n.split("的", 1)[1] for n in names])
        t_h, t_s = np.asarray(held_targets), np.asarray(seen_targets)
        held_cols = sorted(set(t_h.tolist()))
        seen_cols = [k for k in range(len(names)) if k not in held_cols]
        s_h, s_s = (held_feats @ classifier).numpy(), (seen_feats @ classifier).numpy()     # (N, K) cosines

        def among(scores, cols):                                                     # argmax over some columns only
            cols = np.array(cols)
            return cols[scores[:, cols].argmax(axis=1)]

        p_h = among(s_h, held_cols) if kind == "only_held" else s_h.argmax(axis=1)
        p_s = among(s_s, seen_cols) if kind == "only_seen_ctrl" else s_s.argmax(axis=1)
        if kind == "tie_to_truth":                                                   # a tie with the truth counts as right
            p_h = np.where(s_h[np.arange(len(t_h)), t_h] == s_h.max(axis=1), t_h, p_h)
        p_part = among(s_h, held_cols) if kind == "parts_8way" else p_h
        colour_ok, shape_ok = colour[p_part] == colour[t_h], shape[p_part] == shape[t_h]
        shape_acc = shape_ok[colour_ok].mean() if kind == "shape_given_colour" else shape_ok.mean()
        held, same_shape, same_color = [], [], []
        for c in held_cols:
            mine = t_h == c
            held.append([int(shape_ok[mine].sum()), int(mine.sum())])
            if kind == "ctrl_from_held":                                             # other held-out combos of this shape
                ss = (shape[t_h] == shape[c]) & ~mine
                same_shape.append([int(shape_ok[ss].sum()), int(ss.sum())])
            elif kind == "ctrl_with_held":                                           # every image of this shape
                ss, hs = shape[t_s] == shape[c], shape[t_h] == shape[c]
                same_shape.append([int((shape[p_s] == shape[t_s])[ss].sum() + shape_ok[hs].sum()), int(ss.sum() + hs.sum())])
            else:
                ss = (shape[t_s] == shape[c]) & (colour[t_s] != colour[c])
                same_shape.append([int((shape[p_s] == shape[t_s])[ss].sum()), int(ss.sum())])
            sc = (colour[t_s] == colour[c]) & (shape[t_s] != shape[c])
            target_shape = shape[c] if kind == "colour_ctrl_vs_held_shape" else shape[t_s][sc]
            same_color.append([int((shape[p_s][sc] == target_shape).sum()), int(sc.sum())])
        if kind == "swap_controls":
            same_shape, same_color = same_color, same_shape
        return {"top1": float(np.mean(p_h == t_h)), "color_acc": float(colour_ok.mean()), "shape_acc": float(shape_acc),
                "combos": [names[c] for c in held_cols], "held": held, "same_shape": same_shape, "same_color": same_color,
                "held_preds": [int(p) for p in p_h], "seen_preds": [int(p) for p in p_s]}
    return compositional_test


register(Exercise(
    id="08.4", title="组合泛化的严格检验：K 选 1、拆成颜色和形状、两种对照", points=4,
    hint="没见过的组合的图片要在全部 K 个组合里选（不是只在没见过的那几个里选）；见过的组合的图片也用同一个 K 选 1 的分类器。"
         "颜色、形状的准确率都从这同一个 K 选 1 的预测里拆出来，分母是全部没见过的组合的图片。"
         "对照只用见过的组合的图片：同形状（别的颜色）的，和同颜色（别的形状）的，后者按每张图自己的形状算对错。"
         "平分时取编号小的那一列（argmax 的规矩），不要偏向正确答案。",
    reference=_library_compositional,
    cases=_cases,
    hidden=_hidden,
    builds=("cnclip_edu.eval.compositional.compositional_test",),
    mutants=lambda: {
        "没见过的组合的图片只在没见过的组合之间选（8 选 1，只认颜色就够）": _mistake("only_held"),
        "对照（见过的组合的图片）只在见过的组合之间选，不是同一个分类器": _mistake("only_seen_ctrl"),
        "颜色、形状的准确率用了只在没见过的组合之间选出的答案": _mistake("parts_8way"),
        "形状准确率只算颜色答对的图": _mistake("shape_given_colour"),
        "同形状的对照取自别的没见过的组合的图片": _mistake("ctrl_from_held"),
        "同形状的对照把没见过的组合的图片也算了进去": _mistake("ctrl_with_held"),
        "同颜色的对照按没见过的组合的形状算对错，而不是每张图自己的形状": _mistake("colour_ctrl_vs_held_shape"),
        "两种对照放反了": _mistake("swap_controls"),
        "平分时算作答对（偏向正确答案）": _mistake("tie_to_truth"),
    },
))
