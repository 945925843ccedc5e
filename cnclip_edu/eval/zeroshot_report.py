"""Bookkeeping behind notebook 08's display cells: counting the training captions, the most common
confusions, and which images of a confusion went wrong.

Why here: the notebook should show the idea of each look at the data in a few lines (which captions,
which confusion, which images); the counting, the tie rules and the Chinese sentences are plumbing
that a student does not need to read to follow the argument. Each function returns plain data or
printable lines, so the notebook decides what to print.
"""
from __future__ import annotations

import collections
import re
from typing import Sequence

import numpy as np

# Shape names of the toy world and the synonyms its captions use ("方块" for 正方形, "星星" for 五角星, ...);
# longer names first, so that "十字形" is one word and not "十字" plus "形".
SHAPE_WORDS = re.compile("正方形|方块|圆形|圆|三角形|五角星|星星|十字形|十字|菱形")


def caption_stats(texts: Sequence[str], templates: Sequence[str], colors: Sequence[str],
                  shapes: Sequence[str]) -> list[str]:
    """Printable lines that describe the training captions: length, most common openings, how many start
    like each template (the part before "{}"), how many shape words a caption names, and how many are a
    bare class name or name no colour at all."""
    n = len(texts)
    pct = lambda k: f"{k / n:.1%}"
    starts = collections.Counter(t[:2] for t in texts)                      # the first two characters
    n_words = [len(SHAPE_WORDS.findall(t)) for t in texts]
    n_shapes = collections.Counter(min(k, 3) for k in n_words)              # 3 = three or more
    heads = [t.split("{}")[0] for t in templates]                           # what a template says before "{}"
    like_head = []
    for h in heads:
        starting = [k for t, k in zip(texts, n_words) if t.startswith(h)]
        like_head.append(f"{h} {pct(len(starting))}（{pct(sum(k == 1 for k in starting))}）")
    bare = {f"{c}的{s}" for c in colors for s in shapes} | set(shapes)      # a class name and nothing else
    no_color = sum(not any(c in t for c in colors) for t in texts)
    return [
        f"训练描述共 {n} 条，平均 {np.mean([len(t) for t in texts]):.1f} 个字",
        "最常见的开头（前两个字，占全部描述的比例）：" + "，".join(f"{w} {pct(k)}" for w, k in starts.most_common(8)),
        "以 TOY 模板 {} 前面的字开头的（括号里：其中只有一个形状词的）：" + "，".join(like_head),
        "一条描述里的形状词个数：" + "，".join(f"{k}{' 个或更多' if k == 3 else ' 个'} {pct(n_shapes[k])}" for k in (1, 2, 3)),
        f"只有类别名本身（如\"红色的圆形\"\"圆形\"）的：{sum(t in bare for t in texts)} 条；一个颜色词都不提的：{no_color} 条",
    ]


def top_confusions(confusion: np.ndarray, names: Sequence[str], tiers: int = 3) -> list[tuple[int, str, str]]:
    """Off-diagonal cells of a confusion matrix (rows: true class, columns: prediction) as
    (count, true name, predicted name), most common first, keeping the `tiers` largest counts
    (every cell with one of those counts, so a tie is never cut in half). Zero cells are left out."""
    cm = np.asarray(confusion)
    off = sorted(((int(cm[i, j]), names[i], names[j]) for i in range(len(names)) for j in range(len(names))
                  if i != j and cm[i, j] > 0), reverse=True)
    counts = sorted({k for k, _, _ in off}, reverse=True)[:tiers]
    return [c for c in off if c[0] in counts]


def confusion_lines(confusion: np.ndarray, names: Sequence[str], tiers: int = 3) -> list[str]:
    """`top_confusions` as one printable line (true -> predicted count / images of that class (share)),
    plus what one image is worth in percentage points."""
    cm = np.asarray(confusion)
    per_class = {name: int(cm[i].sum()) for i, name in enumerate(names)}
    items = [f"{a} -> {b} {k}/{per_class[a]}（{k / per_class[a]:.1%}）" for k, a, b in top_confusions(cm, names, tiers)]
    return ["最常见的混淆（张数最多的三档，同样张数的都列出；真实 -> 预测，张数 / 这一类的图片数）：" + "，".join(items),
            f"每类 {per_class[names[0]]} 张：1 张图 = {100 / per_class[names[0]]:.1f} 个百分点"]


def images_of(targets: Sequence[int], preds: Sequence[int], true: int, pred: int | None = None) -> list[int]:
    """Indices of the images whose true class is `true` and that were predicted `pred` (None: all of them)."""
    return [i for i, (t, p) in enumerate(zip(targets, preds)) if t == true and pred in (None, p)]
