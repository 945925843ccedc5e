"""Exercise 08.3 of notebook 08 (zero-shot classification): the ensemble classifier and the ELEVATER
prediction file, byte for byte.

08.3 (the student reads cn_clip's write-read-write `json_prec_dump` and writes the same ELEVATER
prediction file, from encoded prompts: the ensemble classifier, the probabilities, the
rounding, and the rows reordered by `--index` as cn_clip's `outputs[index]` does: a gather, not a
scatter) is compared with the file the library's writer (`classifier_from_text_features`,
`classify_features`, `elevater_object`, `save_elevater`) makes from the same inputs, by
`eval.zeroshot.elevater_diff`: the same text, except that each probability may differ by one unit in its
6th decimal. The probabilities are rounded to 6 decimals, where one float32 rounding step already moves
the 6th decimal; so the cases are built from vectors whose entries are small multiples of 1/32 with
lengths that are powers of two, where every normalisation, mean and dot product is exact in float32
whatever order an answer sums in, and the one unit absorbs a softmax summed in another order or in
float64. Class vectors and images are small perturbations of one direction, so cosines differ by a few
1/128 and the probabilities are neither 0 nor 1.

08.q1 (two choices and one number, one verdict) grades why rounding once in float64 gives cn_clip's bytes: a write-read-write round
trip cannot change them, so 08.3 cannot tell it from one pass and does not forbid it.
"""
from __future__ import annotations

from .core import Case, Exercise, register
from .nb08_common import _course_model


# ----------------------------------------------------------------------------- 08.3 the ELEVATER file
# What 08.3 builds (and what no answer of 08.q1, a quiz, has any use for): the grader's tripwires.
BUILDS_ELEVATER = ("cnclip_edu.eval.zeroshot.elevater_predictions", "cnclip_edu.eval.zeroshot.elevater_object",
                   "cnclip_edu.eval.zeroshot.save_elevater", "cnclip_edu.eval.zeroshot.classify_features",
                   "cnclip_edu.eval.zeroshot.classifier_from_text_features")


def _library_write(model, vision_model, dataset, image_feats, prompt_feats, save_dir, index=None):
    """The library's writer on the same inputs: ensemble classifier -> softmax(100 cos) -> rows reordered as
    cn_clip's `outputs[index]` (row i of the file is image index[i]) -> <dataset>.json."""
    import numpy as np

    from cnclip_edu.eval.zeroshot import (classifier_from_text_features, classify_features, elevater_object,
                                          save_elevater)

    clf = classifier_from_text_features(prompt_feats / prompt_feats.norm(dim=-1, keepdim=True))   # (D, C)
    result = classify_features(image_feats, clf, np.zeros(len(image_feats), dtype=np.int64),
                               [str(c) for c in range(clf.shape[1])])
    probs = result.probs if index is None else result.probs[np.asarray(index, dtype=np.int64)]
    n_params = sum(p.numel() for p in model.parameters())
    n_visual = sum(p.numel() for p in model.visual.parameters())
    return save_elevater(elevater_object(probs, "CN-CLIP-" + vision_model, dataset, n_params, n_visual),
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


def _index(n: int, seed: int) -> list[int] | None:
    """A reordering of n rows with no fixed point and no 2-cycle only (so that its inverse differs from it),
    or None (seed < 0: no --index)."""
    import random

    if seed < 0 or n < 3:
        return None
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    return order[1:] + order[:1]            # one n-cycle: index[i] != i, and the inverse is another order


def _read_written(f, n: int, c: int, t: int, seed: int, dataset: str, index_seed: int = -1):
    """Run the answer in a fresh folder; -> the text of the file it wrote (and says it wrote)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = f(_course_model(), "ViT-Course", dataset, *_elevater_inputs(n, c, t, seed), tmp, _index(n, index_seed))
        path = Path(path)
        if path.resolve() != (Path(tmp) / f"{dataset}.json").resolve():
            return f"（文件名不对：应当是 <save_dir>/{dataset}.json，你返回的是 {path.name}）"
        return path.read_bytes().decode("utf-8")


def _elevater_cases():
    runs = [("12 张图、4 个类别、每类 4 个模板（各模板长度不同）", 12, 4, 4, 0, "toy-combo_heldout", -1),
            ("5 张图、7 个类别、每类 2 个模板", 5, 7, 2, 1, "toy-color", -1),
            ("3 张图、3 个类别、只有 1 个模板", 3, 3, 1, 2, "toy-shape", -1),
            # a Chinese dataset name: ensure_ascii=True (json.dumps' default) writes \uXXXX instead of the characters
            ("4 张图、3 个类别、数据集名是中文", 4, 3, 2, 3, "玩具-形状", -1),
            # --index: row i of the file is image index[i] (cn_clip's outputs[index]), not image i moved to row index[i]
            ("6 张图、4 个类别，给了 index（重排各行）", 6, 4, 2, 4, "toy-combo_seen", 7)]
    return [Case(label, lambda f, n=n, c=c, t=t, s=s, d=d, i=i: _read_written(f, n, c, t, s, d, i))
            for label, n, c, t, s, d, i in runs]


def _elevater_hidden(seed: int):
    import random

    rng = random.Random(seed)
    return [Case(kind, lambda f, n=rng.randint(3, 20), c=c, t=t, s=rng.randrange(10 ** 6), d=d, i=i:
                 _read_written(f, n, c, t, s, d, i))
            for kind, c, t, d, i in (("类别多、模板多", rng.randint(6, 12), 4, "toy-combo_seen", -1),
                                     ("类别少、模板少", rng.randint(2, 4), 2, "cifar-10", -1),
                                     ("只有 1 个模板", rng.randint(2, 8), 1, "toy-color", -1),
                                     ("数据集名是中文", rng.randint(2, 6), 2, rng.choice(["玩具-颜色", "花卉-102"]), -1),
                                     ("给了 index", rng.randint(2, 6), 2, "toy-shape", rng.randrange(10 ** 6)))]


def _compare_files(expected: str, got) -> str | None:
    """None if the files agree (`elevater_diff`: one unit in a probability's 6th decimal allowed)."""
    from cnclip_edu.eval.zeroshot import elevater_diff

    if not isinstance(got, str):
        return f"应当是文件内容（字符串），得到的是 {type(got).__name__}"
    return elevater_diff(expected, got)


def _elevater_mistake(kind: str):
    def write_elevater(model, vision_model, dataset, image_feats, prompt_feats, save_dir, index=None):
        import json
        from pathlib import Path

        import numpy as np
        import torch

        f = prompt_feats if kind == "no_prenorm" else prompt_feats / prompt_feats.norm(dim=-1, keepdim=True)
        w = f.mean(dim=1)
        w = w / w.norm(dim=-1, keepdim=True)                                  # (C, D)
        logits = 100.0 * image_feats @ w.T                                     # (N, C)
        probs = logits if kind == "logits" else logits.softmax(dim=-1)
        if kind == "transposed":
            probs = probs.T
        if kind == "softmax64":    # a correct answer that sums the softmax in float64: accepted (not a mutant)
            probs = (100.0 * image_feats.double() @ w.T.double()).softmax(dim=-1)
        if index is not None and kind == "index_scatter":     # row index[i] of the file gets image i
            out = torch.empty_like(probs)
            out[torch.as_tensor(index)] = probs
            probs = out
        elif index is not None and kind != "index_ignored":
            probs = probs[torch.as_tensor(index)]             # cn_clip: outputs = outputs[index]
        probs = probs.numpy() if kind == "round32" else probs.numpy().astype(np.float64)
        if kind == "no_round":
            preds = probs.tolist()
        elif kind == "round4":
            preds = np.round(probs, 4).tolist()
        elif kind == "strings":
            preds = [[f"{p:.6f}" for p in row] for row in probs]
        else:
            preds = np.round(probs, 6).tolist()
        n_params = sum(p.numel() for p in model.parameters())
        n_visual = sum(p.numel() for p in model.visual.parameters())
        obj = {"model_name": "CN-CLIP-" + vision_model, "dataset_name": dataset,
               "num_trainable_params": (sum(p.numel() for p in model.parameters() if p.requires_grad)
                                        if kind == "trainable" else 0),
               "num_params": n_params, "num_visual_params": n_visual,
               "num_backbone_params": n_visual if kind == "backbone_visual" else n_params,
               "n_shot": 0, "rnd_seeds": [123], "predictions": [preds]}
        if kind == "key_name":
            obj["dataset"] = obj.pop("dataset_name")
        if kind == "key_order":
            obj = dict(sorted(obj.items()))
        if kind == "no_seed_axis":
            obj["predictions"] = preds
        path = Path(save_dir) / f"{dataset}.json"
        path.write_text(json.dumps(obj, ensure_ascii=kind == "ascii", indent=2 if kind == "indent" else None)
                        + ("\n" if kind == "newline" else ""), encoding="utf-8")
        return path
    return write_elevater


register(Exercise(
    id="08.3", title="提示词集成分类器 + ELEVATER 预测文件（与库逐字节相同）", points=4,
    hint="先做分类器：每个模板的特征除以自己的长度，沿模板那一维平均，再归一化，得到每个类别一个原型；概率是 softmax(100 · 余弦)，"
         "每行对应一张图、每列对应一个类别（label_cn.txt 的顺序）。文件是一个 JSON 对象，键的名字和先后要和 cn_clip 的一样"
         "（model_name 是 \"CN-CLIP-\" 加视觉塔名），概率要和 json_prec_dump 那一圈舍入出的数相同（round(float(x), 6) 是在哪种浮点数上舍入？），外面还有一层\"随机种子\"的列表；"
         "json.dumps 用默认的分隔符、不缩进、ensure_ascii=False，写到 save_dir/<dataset>.json。"
         "给了 index 时，照 cn_clip 的 outputs[index] 重排各行：文件的第 i 行是哪张图？",
    reference=_library_write,
    cases=_elevater_cases,
    hidden=_elevater_hidden,
    compare=_compare_files,
    builds=BUILDS_ELEVATER,
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
        "在 float32 里舍入（tolist 之后写出 0.12345600128173828 这样的长串）": _elevater_mistake("round32"),
        "num_trainable_params 数了 requires_grad 的参数（零样本什么都没训练：0）": _elevater_mistake("trainable"),
        "num_backbone_params 写成了视觉塔的参数个数": _elevater_mistake("backbone_visual"),
        "文件末尾多了一个换行符": _elevater_mistake("newline"),
        "没有按 index 重排各行": _elevater_mistake("index_ignored"),
        "按 index 反着重排（第 i 张图放到第 index[i] 行；cn_clip 是第 i 行取第 index[i] 张图）": _elevater_mistake("index_scatter"),
    },
))


# ----------------------------------------------------------------------------- 08.q1 why one rounding in float64 is enough
# Two choices and one number about 08.3's rounding (the notebook states the questions). A write-read-write round
# trip cannot change the bytes (json writes the shortest decimal that reads back to the same float64), so 08.3
# does not forbid it; what it cannot check is *why* rounding once in float64 is the same: these questions grade
# that. One verdict for all three (no per-question right/wrong), and question 2 asks for a number, so trying
# answers until the check passes does not pay.
_ROUNDING = {1: "B", 2: 38, 3: "A"}


def _rounding_run(answers):
    """True when all three answers are right; a message only for a malformed answer (never which one is wrong)."""
    if not isinstance(answers, dict):
        return f"应当是一个字典 {{1: \"A\", 2: 整数, 3: ...}}，得到的是 {type(answers).__name__}"
    got = {k: answers.get(k, answers.get(str(k))) for k in _ROUNDING}
    for k in (1, 3):
        letter = got[k].strip().upper() if isinstance(got[k], str) else None
        if letter is None or len(letter) != 1 or letter not in "ABC":
            return f"问题 {k} 的回答应当是 A / B / C 中的一个字母，得到的是 {got[k]!r}"
        got[k] = letter
    if isinstance(got[2], bool) or not (isinstance(got[2], int) or (isinstance(got[2], str) and got[2].strip().isdigit())):
        return f"问题 2 的回答应当是一个整数（二进制位数），得到的是 {got[2]!r}"
    got[2] = int(got[2])
    return got == _ROUNDING


def _rounding_cases():
    return [Case("三题全对（只给一个总的结论，不逐题说对错）", _rounding_run)]


register(Exercise(
    id="08.q1", title="舍入：为什么在 float64 里舍入一次就和 cn_clip 的一圈相同", points=1,
    hint="json.dumps 写一个 float 时写的是\"读回来还是它\"的最短十进制；float32 的有效数字有 24 位二进制，"
         "10⁶ = 2⁶ × 15625；tolist 把 float32 变成 Python float 时，值变了吗？",
    reference=dict(_ROUNDING),
    cases=_rounding_cases,
    hidden=lambda seed: _rounding_cases(),
    builds=BUILDS_ELEVATER,
    mutants=lambda: {
        "以为读回来时又舍入了一次，字节会不同": {**_ROUNDING, 1: "A"},
        "以为 json.dumps 只写 6 位小数": {**_ROUNDING, 1: "C"},
        "只数了 float32 的 24 位，忘了乘 10⁶ 要多出的位": {**_ROUNDING, 2: 24},
        "把 10⁶ 整个算成 20 位（没拆出 2⁶，2⁶ 只改指数）": {**_ROUNDING, 2: 44},
        "答成了 float64 的 53 位": {**_ROUNDING, 2: 53},
        "第 2 题写成了选项字母": {**_ROUNDING, 2: "C"},
        "以为 float32 里舍入后写出来也是 6 位小数": {**_ROUNDING, 3: "B"},
        "以为 float32 的数 json 写不了": {**_ROUNDING, 3: "C"},
        "回答写成了文字，不是字母": {**_ROUNDING, 1: "不会"},
    },
))
