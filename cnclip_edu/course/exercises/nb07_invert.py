"""Exercise 07.4 of notebook 07 (retrieval evaluation): inverting the text -> image gold annotation,
which image -> text scoring needs.

07.4 (text -> image gold inverted into image -> text gold, what cn_clip's
`transform_ir_annotation_to_tr.py` does) is compared with `eval.recall.t2i_to_i2t`. The result is
compared as an ordered list of (image id, text ids) pairs, because the order is part of the contract:
cn_clip writes the `.tr.jsonl` file in first-seen image order, text ids in annotation order. The
annotations have unsorted text ids, images shared by several captions, captions with several images,
and image ids numerically equal to text ids (the toy data numbers both from 3000000); the case also
reports whether the answer left its input unchanged.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.4 inverting the gold annotation
def _library_invert(gold_t2i):
    from cnclip_edu.eval.recall import t2i_to_i2t

    return t2i_to_i2t(gold_t2i)


def _hand_gold() -> dict:
    """Text ids unsorted; image 3000000 is gold for three captions; ids shared between texts and images."""
    return {3000007: [3000002, 3000000], 3000001: [3000000], 3000000: [3000005, 3000002, 3000000],
            3000003: [3000006]}


def _random_gold(seed: int, n_texts: int = 30, n_images: int = 12) -> dict:
    """n_texts captions in shuffled id order, 1-4 gold images each from a small shared pool."""
    import random

    rng = random.Random(seed)
    texts = rng.sample(range(3_000_000, 3_000_000 + 4 * n_texts), n_texts)   # not sorted: dict order = file order
    images = list(range(3_000_000, 3_000_000 + n_images))                   # overlaps the text ids
    return {t: rng.sample(images, rng.randint(1, 4)) for t in texts}


def _run_invert(answer, gold_t2i: dict):
    import copy

    given = copy.deepcopy(gold_t2i)
    out = answer(given)
    return {"结果（按键的先后）": [[int(k), [int(t) for t in v]] for k, v in out.items()],
            "传进来的字典没有被改动": given == gold_t2i}


def _invert_mistake(kind: str):
    def invert_gold(gold_t2i):
        if kind == "unchanged":                               # forgot to invert
            return dict(gold_t2i)
        out = {}
        items = [(t, gold_t2i.pop(t)) for t in list(gold_t2i)] if kind == "pops" else gold_t2i.items()
        for text_id, image_ids in items:
            for image_id in (image_ids[:1] if kind == "first_image" else image_ids):
                if kind == "overwrite":
                    out[image_id] = [text_id]
                elif kind == "set":
                    out.setdefault(image_id, set()).add(text_id)
                else:
                    out.setdefault(image_id, []).append(text_id)
        if kind == "sorted_keys":
            return dict(sorted(out.items()))
        if kind == "sorted_texts":
            return {k: sorted(v) for k, v in out.items()}
        return {k: list(v) for k, v in out.items()}
    return invert_gold


register(Exercise(
    id="07.4", title="把标注反过来：从 描述 → 图片 到 图片 → 描述", points=1,
    hint="对每条描述、它的每一张正例图：把这条描述的 id 记到那张图名下（第一次见到这张图时先给它一个空列表）。"
         "字典按插入的先后保存键，所以按原来的顺序走一遍，图片的先后和每张图下描述的先后就都对了；不要改动传进来的字典。"
         "常见错误：每次都新建列表（只剩最后一条描述）、只看每条描述的第一张图、对键或描述排序、用集合收集（先后乱了）。",
    reference=_library_invert,
    cases=lambda: [Case("手工标注：描述 id 没排序，一张图是三条描述的正例，图片 id 和描述 id 数值相同",
                        lambda f: _run_invert(f, _hand_gold())),
                   Case("30 条描述、12 张图（每条 1-4 张正例）", lambda f: _run_invert(f, _random_gold(0)))],
    hidden=lambda seed: [Case("随机标注（描述 id 没排序）", lambda f: _run_invert(f, _random_gold(seed * 2 + 21))),
                         Case("随机标注，图片更少（很多描述共用一张图）",
                              lambda f: _run_invert(f, _random_gold(seed * 2 + 22, n_texts=25, n_images=6)))],
    builds=("cnclip_edu.eval.recall.t2i_to_i2t",),
    mutants=lambda: {
        "忘了反过来（原样返回）": _invert_mistake("unchanged"),
        "每次都新建列表 out[image_id] = [text_id]（只剩最后一条描述）": _invert_mistake("overwrite"),
        "只看每条描述的第一张正例图": _invert_mistake("first_image"),
        "图片按 id 排了序（不是第一次出现的先后）": _invert_mistake("sorted_keys"),
        "每张图下的描述 id 排了序": _invert_mistake("sorted_texts"),
        "用集合收集描述 id（先后乱了）": _invert_mistake("set"),
        "边处理边 pop，清空了传进来的字典": _invert_mistake("pops"),
    },
))
