"""Exercise 10.1 of notebook 10 (your own photos): the rows of a captions file -> MUGE records.

10.1 is compared with `data.convert.caption_records`, which `cnclip-edu convert captions` writes into
`{split}_texts.jsonl`: identical captions (spaces stripped) merged into one text listing each of its
images once, in the order first seen, text ids counting up from `start_text_id`. One case is the
sample photos' own train split (ids as the converter numbers them); the others are small rows built
to catch each usual slip: one record per row, unstripped captions, an image listed twice, sorted
instead of first-seen order, ids from 0.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


def _sample_train_rows() -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The sample folder's train rows and the image ids the converter gives them (first seen, from 1)."""
    from cnclip_edu.data.samples import caption_rows

    rows = caption_rows()
    ids: dict[str, int] = {}
    for image, _, _ in rows:
        ids.setdefault(image, 1 + len(ids))
    return [(image, cap) for image, cap, split in rows if split == "train"], ids


_SMALL_ROWS = [  # a photo captioned twice with the same words, a caption shared by two photos, stray spaces
    ("猫.jpg", "一只橘猫趴在沙发上"), ("狗.jpg", "一只小狗"), ("猫.jpg", "可爱的宠物"), ("狗.jpg", " 可爱的宠物 "),
    ("猫.jpg", "一只橘猫趴在沙发上"), ("鱼.png", "鱼缸里的金鱼"), ("鱼.png", "可爱的宠物"),
]
_SMALL_IDS = {"狗.jpg": 3, "猫.jpg": 8, "鱼.png": 5}   # not in file order: first-seen order is not sorted order


def _cases():
    rows, ids = _sample_train_rows()
    return [
        Case("示例照片 captions.csv 的训练集（52 条不同的描述，start_text_id=1）", lambda f: f(rows, ids, 1)),
        Case("7 行：重复的行、两张图共用的描述、首尾有空格，start_text_id=100",
             lambda f: f(_SMALL_ROWS, _SMALL_IDS, 100)),
        Case("带空格的写法先出现：记录里存的是去掉空格后的描述",
             lambda f: f([("a.jpg", " 一杯咖啡 "), ("b.jpg", "一杯咖啡"), ("a.jpg", "桌上的书 ")], {"a.jpg": 2, "b.jpg": 9}, 1)),
        Case("只有一行", lambda f: f([("a.jpg", "一杯咖啡")], {"a.jpg": 42}, 7)),
    ]


def _records_hidden(seed: int):
    rng = random.Random(seed)
    images = [f"{rng.choice('猫狗鱼鸟')}{k}.jpg" for k in range(rng.randint(3, 6))]
    ids = {img: rng.randint(1, 500) for img in images}
    captions = [f"描述{rng.randint(0, 99)}" for _ in range(4)]
    rows = [(rng.choice(images), rng.choice(["", " ", "  "]) + rng.choice(captions) + rng.choice(["", " "]))
            for _ in range(rng.randint(8, 16))]
    start = rng.randint(1, 1000)
    return [Case("同一描述对应几张图、首尾空格、重复的行", lambda f: f(rows, ids, start))]


def _mistake(kind: str):
    def caption_records(rows, image_ids, start_text_id=1):
        if kind == "no_merge":
            return [{"text_id": start_text_id + k, "text": cap.strip(), "image_ids": [image_ids[img]]}
                    for k, (img, cap) in enumerate(rows)]
        texts: dict[str, list[int]] = {}
        raw: dict[str, str] = {}   # stripped caption -> the first raw spelling seen ("first_raw" stores it)
        for img, cap in rows:
            raw.setdefault(cap.strip(), cap)
            ids = texts.setdefault(cap if kind == "no_strip" else cap.strip(), [])
            if kind == "duplicates" or image_ids[img] not in ids:
                ids.append(image_ids[img])
        items = sorted(texts.items()) if kind == "sorted_texts" else list(texts.items())
        first = 0 if kind == "from_zero" else start_text_id
        return [{"text_id": first + k, "text": raw[t] if kind == "first_raw" else t,
                 "image_ids": sorted(ids) if kind == "sorted_ids" else ids}
                for k, (t, ids) in enumerate(items)]
    return caption_records


def _reference(rows, image_ids, start_text_id=1):
    from cnclip_edu.data.convert import caption_records

    return caption_records(rows, image_ids, start_text_id)


register(Exercise(
    id="10.1", title="描述文件的行 → MUGE 的 texts.jsonl 记录", points=2,
    hint="按去掉首尾空格的描述把行归到一起，并记住每条描述第一次出现的先后；记录里的 text 也是去掉空格后的描述；"
         "同一张图在一条描述下只记一次；text_id 从 start_text_id 起按首次出现的顺序数。"
         "常见错误：每行一条记录（没合并相同描述）、忘了 strip（或只在比较时 strip、存的还是原文）、"
         "同一张图重复、把描述或 image_ids 排了序、text_id 从 0 开始。",
    reference=_reference,
    cases=_cases,
    hidden=_records_hidden,
    builds=("cnclip_edu.data.convert.caption_records",),
    mutants=lambda: {
        "每行一条记录，没有合并相同的描述": _mistake("no_merge"),
        "描述没有去掉首尾空格": _mistake("no_strip"),
        "按去掉空格的描述合并，但记录里存的是第一次出现时带空格的原文": _mistake("first_raw"),
        "同一张图在 image_ids 里出现两次": _mistake("duplicates"),
        "按描述文字排序，而不是按首次出现的顺序": _mistake("sorted_texts"),
        "把 image_ids 排了序": _mistake("sorted_ids"),
        "text_id 从 0 开始，忽略了 start_text_id": _mistake("from_zero"),
    },
))
