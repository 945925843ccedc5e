"""Notebook 10's checked exercise: turn the rows of your captions file into MUGE text records.

10.1 is compared with `data.convert.caption_records`, which `cnclip-edu convert captions` writes into
`{split}_texts.jsonl`: identical captions (spaces stripped) merged into one text listing each of its
images once, in the order first seen, text ids counting up from `start_text_id`. One case is the
sample photos' own train split (ids as the converter numbers them); the others are small rows built
to catch each usual slip: one record per row, unstripped captions, an image listed twice, sorted
instead of first-seen order, ids from 0.

10.2 splits the photos into train / valid by photo. The spec pins the shuffle (photos once each in
first-seen order, `random.Random(seed).shuffle`, the first n_valid are valid), so that the split is
the same in every process: a split keyed on `hash()` of a str is not (PYTHONHASHSEED). Each case runs
the answer several times and compares with the library's split what must hold, each named on its
own so a failure says which: the rows kept in order, every photo on one side only, the number of
valid photos (round half up), the valid photos themselves, the same split for the same seed, a
different one for other seeds. Cases: the sample photos, exact halves (n * fraction = k.5),
one photo with many captions (a list of photos with repeats picks it twice), captions interleaved.
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
    hint="用一个字典 {描述: [image_id, ...]} 按行累积：描述先 .strip()，字典的键和记录里的 text 都用去掉空格后的描述；同一张图只记一次；"
         "Python 3.7+ 的 dict 保持插入顺序，所以 enumerate(字典.items()) 给出的就是首次出现的顺序，"
         "text_id = start_text_id + 序号。常见错误：每行一条记录（没合并相同描述）、忘了 strip（或只在比较时 strip、存的还是原文）、"
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


# ----------------------------------------------------------------------------- 10.2 split by photo
def _split_properties(f, rows, fraction, seed):
    """What must hold of a by-photo split, as plain data (the same for every correct answer).

    The valid photos themselves are compared too: the spec pins the shuffle (photos in first-seen
    order, `random.Random(seed).shuffle`), because a split must be reproducible in another process,
    and e.g. sorting by `hash((photo, seed))` passes every other property yet changes with
    PYTHONHASHSEED, which Python draws afresh in each process."""
    out = [tuple(r) for r in f(list(rows), fraction, seed)]
    sides: dict[str, set] = {}
    for image, _, split in out:
        sides.setdefault(image, set()).add(split)
    again = [tuple(r) for r in f(list(rows), fraction, seed)]
    valid_sets = {frozenset(r[0] for r in f(list(rows), fraction, s) if r[2] == "valid") for s in range(seed, seed + 8)}
    return {"行（去掉 split 列）保持原样和原顺序": [(r[0], r[1]) for r in out] == [tuple(r) for r in rows],
            "split 只取 train / valid": sorted({r[2] for r in out} | {"train", "valid"}) == ["train", "valid"],
            "两边都出现的照片": sorted(i for i, s in sides.items() if len(s) > 1),
            "valid 的照片数": len({r[0] for r in out if r[2] == "valid"}),
            "valid 的是哪几张照片": sorted({r[0] for r in out if r[2] == "valid"}),
            "同一个 seed 两次结果相同": again == out,
            "换 seed 划分会变": len(valid_sets) > 1}


def _photo_rows(n_photos, per_photo, rng=None, prefix="p"):
    rows = [(f"{prefix}{i:02d}.jpg", f"第 {i} 张照片的描述 {k}") for i in range(n_photos) for k in range(per_photo[i])]
    if rng is not None:
        rng.shuffle(rows)   # a photo's captions scattered over the file
    return rows


def _sample_rows():
    from cnclip_edu.data.samples import caption_rows

    return [(image, cap) for image, cap, _ in caption_rows()]


def _split_cases():
    one_big = [("大.jpg", f"同一张照片的第 {k} 条描述") for k in range(30)] + \
        [(f"小{i}.jpg", f"小照片 {i}") for i in range(5)]
    return [
        Case("示例照片 captions.csv 的全部 81 行，valid 占 0.2（18 × 0.2 = 3.6 张）", lambda f: _split_properties(f, _sample_rows(), 0.2, 0)),
        Case("10 张照片 × 3 条描述，valid 占 0.25（恰好 2.5 张）", lambda f: _split_properties(
            f, _photo_rows(10, [3] * 10, random.Random(1)), 0.25, 7)),
        Case("18 张照片，valid 占 0.25（恰好 4.5 张），描述数各不相同",
             lambda f: _split_properties(f, _photo_rows(18, [1 + i % 5 for i in range(18)]), 0.25, 3)),
        Case("一张照片有 30 条描述，另有 5 张各 1 条，valid 占 0.5",
             lambda f: _split_properties(f, one_big, 0.5, 11)),
        Case("10 张照片，valid 占 1/3（3.33 张）", lambda f: _split_properties(f, _photo_rows(10, [2] * 10), 1 / 3, 5)),
    ]


def _split_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind, n, fraction in [("恰好半张的比例", 2 * rng.randint(3, 12) + 1, 0.5),
                              ("一般的比例", rng.randint(8, 40), rng.choice([0.1, 0.15, 0.2, 0.3])),
                              ("比例 × 照片数恰为 .5", 4 * rng.randint(2, 8) + 2, 0.25)]:
        per = [rng.randint(1, 6) for _ in range(n)]
        rows = _photo_rows(n, per, random.Random(rng.random()), prefix=f"h{rng.randint(0, 999)}_")
        s = rng.randint(0, 10**6)
        cases.append(Case(kind, lambda f, rows=rows, fr=fraction, s=s: _split_properties(f, rows, fr, s)))
    return cases


def _split_reference(rows, valid_fraction, seed):
    from cnclip_edu.data.split import split_by_photo

    return split_by_photo(rows, valid_fraction, seed)


def _split_mistake(kind: str):
    import math

    def split_by_photo(rows, valid_fraction, seed):
        rng = random.Random(seed)
        if kind == "captions":   # holds out rows: a photo's other captions stay in train
            order = list(range(len(rows)))
            rng.shuffle(order)
            valid_rows = set(order[:math.floor(len(rows) * valid_fraction + 0.5)])
            return [(i, c, "valid" if k in valid_rows else "train") for k, (i, c) in enumerate(rows)]
        photos = [i for i, _ in rows] if kind == "repeats" else list(dict.fromkeys(i for i, _ in rows))
        if kind == "unseeded":
            random.shuffle(photos)
        elif kind == "hash":     # fixed within one process only: str hashes are salted per process
            photos.sort(key=lambda p: hash((p, seed)))
        elif kind != "no_shuffle":
            rng.shuffle(photos)
        n = len(set(photos)) * valid_fraction
        n_valid = {"int": int(n), "round": round(n), "ceil": math.ceil(n)}.get(kind, math.floor(n + 0.5))
        valid = set(photos[:n_valid])
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]
    return split_by_photo


register(Exercise(
    id="10.2", title="按照片划分 train / valid（不泄漏）", points=3,
    hint="划分的单位是照片：先决定每张照片在哪一边，再让每一行跟着它的照片走。可复现要一个只属于这个函数、"
         "只由 seed 决定的随机数生成器（全局的随机状态和别的代码共用；字符串的 hash() 每个进程都不同）。"
         "照片数 × 比例四舍五入，恰好 .5 时进位（round(2.5) == 2，int() 是截断）。"
         "“valid 的是哪几张照片”不对时，打开笔记本里的第二层提示，看和库相同的打乱方式。"
         "常见错误：打乱的是行而不是照片、照片列表里有重复、照片列表排了序或用了 set()（顺序变了）、没有用 seed。",
    reference=_split_reference,
    cases=_split_cases,
    hidden=_split_hidden,
    builds=("cnclip_edu.data.split.split_by_photo",),
    mutants=lambda: {
        "打乱的是行（描述）而不是照片：同一张照片分到两边": _split_mistake("captions"),
        "照片列表没有去重（一张照片有几条描述就出现几次）": _split_mistake("repeats"),
        "用 int() 截断照片数": _split_mistake("int"),
        "用 round()：恰好 .5 时取偶数": _split_mistake("round"),
        "向上取整": _split_mistake("ceil"),
        "用全局的 random.shuffle，没有用 seed": _split_mistake("unseeded"),
        "没有打乱：总是取前几张照片": _split_mistake("no_shuffle"),
        "按 hash((照片, seed)) 排序代替打乱：换一个进程（PYTHONHASHSEED）划分就变": _split_mistake("hash"),
    },
))
