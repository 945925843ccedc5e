"""Notebook 08 (zero-shot classification): the student writes the prompt-ensemble classifier and
the zero-shot prediction with its accuracy.

08.1 is compared with the library's `eval.zeroshot.zero_shot_classifier` (equal to cn_clip's
`zero_shot_classifier`, see tests/test_zeroshot.py), run on the course model shipped with the
package: a real text tower, whose prompt features have different lengths, so averaging without
normalising first gives a different direction. There are more templates than classes in one case
and fewer in another, so a (C, D) answer or a mean over the wrong axis shows as a wrong shape.

08.2 is compared with `eval.zeroshot.classify_features` (softmax of 100 x cosine, top-1 accuracy)
on seeded unit-length features.

08.3 (build-along: the ensemble classifier from encoded prompts + the ELEVATER prediction file that
cn_clip's evaluation reads) is compared byte for byte with the file the library's writer
(`classifier_from_text_features`, `classify_features`, `elevater_object`, `save_elevater`) makes from the
same inputs. The probabilities are rounded to 6 decimals, where one float32 rounding step in a cosine
already moves the 6th decimal; so the cases are built from vectors whose entries are small multiples of
1/32 with lengths that are powers of two, where every normalisation, mean and dot product is exact in
float32 whatever order an answer sums in: a correct answer writes the library's bytes, a wrong formula
or format cannot. Class vectors and images are small perturbations of one direction, so cosines differ
by a few 1/128 and the probabilities are neither 0 nor 1.

08.4 (the analytic half: is a difference beyond noise?) is compared with `eval.paired.paired_gap` on
boolean "right / wrong" arrays for two classifiers graded on the same images, built so that each mistake
shows: many images both get right (an unpaired or sqrt(N) standard error differs), a difference of
exactly two standard errors (`>=` instead of `>`), a classifier that is worse (a missing abs or a
reversed sign), and two identical classifiers (no disagreeing image: standard error 0).

08.5 (the compositional half: a shape classifier from the colour+shape classifier, colour marginalised)
is compared with `eval.marginal.marginal_probs` on seeded features built from colour and shape
directions: a small logit scale (so summing, averaging, taking the maximum or summing logits all give
other numbers, and a hard-coded 100 shows), shapes with fewer combinations than others (as the 40 seen
combinations: a mean is not a sum), a `shapes` order unlike the order the combinations list them in, and
two shape names where one ends the other ("方形", "正方形": `endswith` or `in` counts a combination twice).
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
            (f"3 个颜色+形状类别 × {len(TOY)} 个模板 (TOY)", ["红色的圆形", "蓝色的菱形", "黑色的十字"], TOY),
            ("2 个类别 × 1 个模板", ["黄色的三角形", "紫色的五角星"], ["画面里有一个{}"])]
    return [Case(label, lambda f, c=c, t=t: f(_course_model(), c, list(t), "cpu")) for label, c, t in runs]


def _classifier_hidden(seed: int):
    import random

    from cnclip_edu.eval.prompts import TOY, TOY_COLOR, TOY_COLORS, TOY_SHAPE, TOY_SHAPES

    rng = random.Random(seed)
    combos = [f"{c}的{s}" for c in TOY_COLORS for s in TOY_SHAPES]
    runs = [("形状类别 × 形状模板", rng.sample(TOY_SHAPES, rng.randint(2, 6)), rng.sample(TOY_SHAPE, rng.randint(2, 8))),
            ("颜色类别 × 颜色模板", rng.sample(TOY_COLORS, rng.randint(2, 8)), rng.sample(TOY_COLOR, rng.randint(2, 6))),
            ("颜色+形状类别 × 1 个模板", rng.sample(combos, rng.randint(2, 5)), rng.sample(TOY, 1))]
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


# ----------------------------------------------------------------------------- 08.3 the ELEVATER file
def _library_write(model, vision_model, dataset, image_feats, prompt_feats, save_dir):
    """The library's writer on the same inputs: ensemble classifier -> softmax(100 cos) -> <dataset>.json."""
    import numpy as np

    from cnclip_edu.eval.zeroshot import (classifier_from_text_features, classify_features, elevater_object,
                                          save_elevater)

    clf = classifier_from_text_features(prompt_feats / prompt_feats.norm(dim=-1, keepdim=True))   # (D, C)
    result = classify_features(image_feats, clf, np.zeros(len(image_feats), dtype=np.int64),
                               [str(c) for c in range(clf.shape[1])])
    n_params = sum(p.numel() for p in model.parameters())
    n_visual = sum(p.numel() for p in model.visual.parameters())
    return save_elevater(elevater_object(result.probs, "CN-CLIP-" + vision_model, dataset, n_params, n_visual),
                         save_dir, dataset)


def _signed_shuffle(rng, pattern, n=8):
    a = list(pattern) + [0] * (n - len(pattern))
    a = [v * rng.choice((-1, 1)) for v in a]
    rng.shuffle(a)
    return a


def _perturb(rng, a, times):
    """Flip the sign of a small entry (+-1 or +-2): the length stays 16 (a / 16 has length 1) and the cosine
    with the unperturbed vector moves by 2 a_i^2 / 256, a few hundredths: 100 x that is a logit of about 1."""
    a = list(a)
    small = [i for i, v in enumerate(a) if 0 < abs(v) <= 2]
    for _ in range(times):
        i = rng.choice(small)
        a[i] = -a[i]
    return a


def _elevater_inputs(n_images: int, n_classes: int, n_templates: int, seed: int):
    """image_feats (N, 16) unit length, prompt_feats (C, T, 16) of lengths 2^k; every step exact in float32.

    Class c's direction w_c (entries a/16 with sum a^2 = 256, length 1) lives in the first 8 coordinates; its T prompts are
    2^k * (w_c + e_t) / 2 with e_t in the last 8 coordinates (three entries +-1, |e|^2 = 3, so the
    prompt has length exactly 2^k) and the e_t cancelling in pairs: the mean of the normalised prompts
    is w_c / 2 exactly, and an answer that averages before normalising gets another direction.
    """
    import random

    import torch

    rng = random.Random(seed)
    base = _signed_shuffle(rng, rng.choice(((15, 4, 3, 2, 1, 1), (12, 8, 6, 3, 1, 1, 1))))
    classes = [_perturb(rng, base, rng.randint(1, 3)) for _ in range(n_classes)]
    prompts = []
    for w in classes:
        es = []
        for _ in range(n_templates // 2):
            e = _signed_shuffle(rng, (1, 1, 1))
            es += [e, [-v for v in e]]
        es = es or [None]
        rows = []
        for e in es:
            length = 2.0 ** rng.randint(-1, 4)
            if e is None:      # one template: the prompt is w itself, at some length
                rows.append([v / 16 * length for v in w] + [0.0] * 8)
            else:
                rows.append([v / 32 * length for v in w] + [v / 2 * length for v in e])
        prompts.append(rows)
    targets = [rng.randrange(n_classes) for _ in range(n_images)]
    images = [[v / 16 for v in _perturb(rng, classes[t], rng.randint(0, 2))] + [0.0] * 8 for t in targets]
    return torch.tensor(images), torch.tensor(prompts)


def _read_written(f, n: int, c: int, t: int, seed: int, dataset: str):
    """Run the answer in a fresh folder; -> the text of the file it wrote (and says it wrote)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = f(_course_model(), "ViT-Course", dataset, *_elevater_inputs(n, c, t, seed), tmp)
        path = Path(path)
        if path.resolve() != (Path(tmp) / f"{dataset}.json").resolve():
            return f"（文件名不对：应当是 <save_dir>/{dataset}.json，你返回的是 {path.name}）"
        return path.read_bytes().decode("utf-8")


def _elevater_cases():
    runs = [("12 张图、4 个类别、每类 4 个模板（各模板长度不同）", 12, 4, 4, 0, "toy-combo_heldout"),
            ("5 张图、7 个类别、每类 2 个模板", 5, 7, 2, 1, "toy-color"),
            ("3 张图、3 个类别、只有 1 个模板", 3, 3, 1, 2, "toy-shape"),
            # a Chinese dataset name: ensure_ascii=True (json.dumps' default) writes \uXXXX instead of the characters
            ("4 张图、3 个类别、数据集名是中文", 4, 3, 2, 3, "玩具-形状")]
    return [Case(label, lambda f, n=n, c=c, t=t, s=s, d=d: _read_written(f, n, c, t, s, d))
            for label, n, c, t, s, d in runs]


def _elevater_hidden(seed: int):
    import random

    rng = random.Random(seed)
    return [Case(kind, lambda f, n=rng.randint(2, 20), c=c, t=t, s=rng.randrange(10 ** 6), d=d:
                 _read_written(f, n, c, t, s, d))
            for kind, c, t, d in (("类别多、模板多", rng.randint(6, 12), 4, "toy-combo_seen"),
                                  ("类别少、模板少", rng.randint(2, 4), 2, "cifar-10"),
                                  ("只有 1 个模板", rng.randint(2, 8), 1, "toy-color"),
                                  ("数据集名是中文", rng.randint(2, 6), 2, rng.choice(["玩具-颜色", "花卉-102"])))]


def _compare_files(expected: str, got) -> str | None:
    """None if byte-identical; else where the first difference is, with a little context."""
    if not isinstance(got, str):
        return f"应当是文件内容（字符串），得到的是 {type(got).__name__}"
    if got == expected:
        return None
    i = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    lo = max(0, i - 40)
    return (f"文件内容不同（期望 {len(expected)} 个字符，得到 {len(got)} 个），第一处不同在第 {i} 个字符：\n"
            f"  期望 …{expected[lo:i + 40]}…\n  得到 …{got[lo:i + 40]}…")


def _elevater_mistake(kind: str):
    def write_elevater(model, vision_model, dataset, image_feats, prompt_feats, save_dir):
        import json
        from pathlib import Path

        import numpy as np

        f = prompt_feats if kind == "no_prenorm" else prompt_feats / prompt_feats.norm(dim=-1, keepdim=True)
        w = f.mean(dim=1)
        w = w / w.norm(dim=-1, keepdim=True)                                  # (C, D)
        logits = 100.0 * image_feats @ w.T                                     # (N, C)
        probs = logits if kind == "logits" else logits.softmax(dim=-1)
        if kind == "transposed":
            probs = probs.T
        probs = probs.numpy().astype(np.float64)
        if kind == "no_round":
            preds = probs.tolist()
        elif kind == "round4":
            preds = np.round(probs, 4).tolist()
        elif kind == "strings":
            preds = [[f"{p:.6f}" for p in row] for row in probs]
        else:
            preds = np.round(probs, 6).tolist()
        n_params = sum(p.numel() for p in model.parameters())
        obj = {"model_name": "CN-CLIP-" + vision_model, "dataset_name": dataset, "num_trainable_params": 0,
               "num_params": n_params, "num_visual_params": sum(p.numel() for p in model.visual.parameters()),
               "num_backbone_params": n_params, "n_shot": 0, "rnd_seeds": [123], "predictions": [preds]}
        if kind == "key_name":
            obj["dataset"] = obj.pop("dataset_name")
        if kind == "key_order":
            obj = dict(sorted(obj.items()))
        if kind == "no_seed_axis":
            obj["predictions"] = preds
        path = Path(save_dir) / f"{dataset}.json"
        path.write_text(json.dumps(obj, ensure_ascii=kind == "ascii", indent=2 if kind == "indent" else None),
                        encoding="utf-8")
        return path
    return write_elevater


register(Exercise(
    id="08.3", title="提示词集成分类器 + ELEVATER 预测文件（与库逐字节相同）", points=4,
    hint="先做分类器：每个模板的特征除以自己的长度，沿模板那一维平均，再归一化，得到每个类别一个原型；概率是 softmax(100 · 余弦)，"
         "每行对应一张图、每列对应一个类别（label_cn.txt 的顺序）。文件是一个 JSON 对象，键的名字和先后要和 cn_clip 的一样"
         "（model_name 是 \"CN-CLIP-\" 加视觉塔名），概率先转成 float64 再四舍五入到 6 位小数，外面还有一层\"随机种子\"的列表；"
         "json.dumps 用默认的分隔符、不缩进、ensure_ascii=False，写到 save_dir/<dataset>.json。",
    reference=_library_write,
    cases=_elevater_cases,
    hidden=_elevater_hidden,
    compare=_compare_files,
    builds=("cnclip_edu.eval.zeroshot.elevater_predictions", "cnclip_edu.eval.zeroshot.elevater_object",
            "cnclip_edu.eval.zeroshot.save_elevater", "cnclip_edu.eval.zeroshot.classify_features",
            "cnclip_edu.eval.zeroshot.classifier_from_text_features"),
    mutants=lambda: {
        "键名写错（dataset 而不是 dataset_name）": _elevater_mistake("key_name"),
        "json.dumps 用了默认的 ensure_ascii=True（中文写成 \\uXXXX）": _elevater_mistake("ascii"),
        "键的顺序和 cn_clip 不同": _elevater_mistake("key_order"),
        "概率没有做 softmax（写的是 100 · 余弦）": _elevater_mistake("logits"),
        "概率没有四舍五入到 6 位": _elevater_mistake("no_round"),
        "四舍五入到了 4 位": _elevater_mistake("round4"),
        "概率写成了字符串 \"0.123457\"": _elevater_mistake("strings"),
        "概率矩阵转置了（每行一个类别）": _elevater_mistake("transposed"),
        "少了随机种子那一层列表": _elevater_mistake("no_seed_axis"),
        "json.dumps 加了缩进": _elevater_mistake("indent"),
        "平均前没有先归一化每个模板的特征": _elevater_mistake("no_prenorm"),
    },
))


# ----------------------------------------------------------------------------- 08.4 paired comparison
def _library_paired(ok_base, ok_other):
    from cnclip_edu.eval.paired import paired_gap

    return paired_gap(ok_base, ok_other)


def _paired_arrays(both: int, neither: int, only_base: int, only_other: int, seed: int):
    """(N,) booleans for base and other: `both` images right under both, ... , in a shuffled order."""
    import numpy as np

    rows = [(1, 1)] * both + [(0, 0)] * neither + [(1, 0)] * only_base + [(0, 1)] * only_other
    rows = np.array(rows, dtype=bool).reshape(-1, 2)
    rows = rows[np.random.default_rng(seed).permutation(len(rows))]
    return rows[:, 0].copy(), rows[:, 1].copy()


def _paired_run(f, counts, seed):
    """The answer on one pair of arrays -> (difference, standard error, beyond two SE) as plain numbers."""
    result = f(*_paired_arrays(*counts, seed))
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return f"应当返回 (差几张, 标准误, 是否超出两个标准误) 三个值，得到 {result!r}"
    d, se, beyond = result
    return float(d), float(se), bool(beyond)


_PAIRED_CASES = [  # (label, (both right, both wrong, only base right, only other right))
    ("200 张图，150 张两边都对；other 多对 7 张，只有 9 张图两边不同", (150, 41, 1, 8)),
    ("40 张图；4 张图两边不同，都是 other 对：差正好是两个标准误", (30, 6, 0, 4)),
    ("60 张图；other 少对 5 张（更差），5 张图两边不同", (40, 15, 5, 0)),
    ("30 张图，两个分类器每张图的对错完全一样", (20, 10, 0, 0)),
    ("320 张图；两边各有十几张独有的对，差在噪声以内", (250, 40, 14, 16)),
]


def _paired_cases():
    return [Case(label, lambda f, c=c, s=i: _paired_run(f, c, s)) for i, (label, c) in enumerate(_PAIRED_CASES)]


def _paired_hidden(seed: int):
    import random

    rng = random.Random(seed)
    k = rng.randint(1, 3)
    runs = [("一边明显更好", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(0, 2), rng.randint(12, 25))),
            ("一边明显更差", (rng.randint(50, 200), rng.randint(5, 40), rng.randint(12, 25), rng.randint(0, 2))),
            # a = 2k^2 + 2k right only under one, b = 2k^2 - 2k only under the other: |a - b| = 4k = 2 sqrt(a + b)
            ("差正好是两个标准误", (rng.randint(10, 80), rng.randint(0, 10)) + tuple(
                sorted((2 * k * k + 2 * k, 2 * k * k - 2 * k), reverse=rng.random() < 0.5))),
            ("两边差不多", (rng.randint(100, 300), rng.randint(10, 50), rng.randint(8, 15), rng.randint(8, 15))),
            ("两边完全一样", (rng.randint(5, 60), rng.randint(0, 30), 0, 0))]
    return [Case(kind, lambda f, c=c, s=rng.randrange(10 ** 6): _paired_run(f, c, s)) for kind, c in runs]


def _paired_mistake(kind: str):
    def paired_gap(ok_base, ok_other):
        import numpy as np

        ok_base, ok_other = np.asarray(ok_base, dtype=bool), np.asarray(ok_other, dtype=bool)
        n = len(ok_base)
        d = int(ok_other.sum()) - int(ok_base.sum())
        if kind == "reversed":
            d = -d
        m = int(np.sum(ok_base != ok_other))
        if kind == "one_way":
            m = int(np.sum(ok_other & ~ok_base))
        se = float(np.sqrt(m))
        if kind == "sqrt_n":
            se = float(np.sqrt(n))
        elif kind == "unpaired":
            p, q = ok_base.mean(), ok_other.mean()
            se = float(np.sqrt(n * p * (1 - p) + n * q * (1 - q)))
        elif kind == "m_not_sqrt":
            se = float(m)
        if kind == "fraction":
            d = d / n
        beyond = abs(d) > 2 * se
        if kind == "geq":
            beyond = abs(d) >= 2 * se
        elif kind == "no_abs":
            beyond = d > 2 * se
        return d, se, beyond
    return paired_gap


register(Exercise(
    id="08.4", title="配对比较：两个分类器在同一批图上的差，超出噪声了吗", points=2,
    hint="两边都对、两边都错的图对差没有贡献；差只来自一边对、一边错的那些图。假设两个分类器一样好，"
         "这样的每张图是 +1 还是 -1 各占一半，m 张图的和的方差是 m。差要超过两个标准误（严格大于）才算超出噪声，"
         "变好、变差都算。",
    reference=_library_paired,
    cases=_paired_cases,
    hidden=_paired_hidden,
    builds=("cnclip_edu.eval.paired.paired_gap",),
    mutants=lambda: {
        "差的方向反了（base 减 other）": _paired_mistake("reversed"),
        "标准误用了全部图片数 √N": _paired_mistake("sqrt_n"),
        "当成两组独立的图（两个二项分布的标准误）": _paired_mistake("unpaired"),
        "只数了 other 对、base 错的图": _paired_mistake("one_way"),
        "标准误写成了 m 而不是 √m": _paired_mistake("m_not_sqrt"),
        "差写成了比例而不是张数": _paired_mistake("fraction"),
        "超出两个标准误用了 >=（正好两个标准误也算超出）": _paired_mistake("geq"),
        "忘了取绝对值（变差的永远不算超出）": _paired_mistake("no_abs"),
    },
))


# ----------------------------------------------------------------------------- 08.5 marginalise colour
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
    id="08.5", title="对颜色边缘化：用颜色+形状分类器做形状分类", points=3,
    hint="先在全部颜色+形状组合上做一次普通的零样本预测：余弦乘以 scale，在组合那一维上 softmax，每张图的概率加起来为 1；"
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
