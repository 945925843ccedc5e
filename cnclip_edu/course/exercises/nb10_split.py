"""Exercise 10.4 of notebook 10 (your own photos): a train / valid split by photo.

10.4 splits the photos into train / valid by photo. Which photos go to valid is NOT compared with
the library: any shuffle decided by the seed alone is right (sorting first, `Random(seed).sample`,
shuffling indices...). Each case runs the answer several times and checks properties, each named on
its own so a failure says which: the rows kept in order (no caption lost), every photo on one side
only, the number of valid photos (round half up), the same split for the same seed, the same split
in another Python process (simulated by photo names whose hash() is salted differently, as
PYTHONHASHSEED does: catches sorting by hash() or shuffling a set), a different one for other seeds.
Cases: the sample photos, exact halves (n * fraction = k.5), one photo with many captions (a list of
photos with repeats picks it twice), captions interleaved.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 10.4 split by photo
class _Salted(str):
    """A file name whose hash() is that of another Python process (str hashes are salted per process,
    PYTHONHASHSEED): equal to the plain name, so only an answer whose split depends on hash() notices."""

    salt = 0

    def __hash__(self) -> int:
        return hash(str(self)) ^ type(self).salt


def _in_other_process(f, rows, fraction, seed, salt):
    """Run f on rows whose photo names hash as in another process; the valid photos, as plain str."""
    salted = type("_SaltedHere", (_Salted,), {"salt": salt})
    out = f([(salted(i), c) for i, c in rows], fraction, seed)
    return sorted({str(r[0]) for r in out if r[2] == "valid"})


def _split_properties(f, rows, fraction, seed):
    """What must hold of any correct by-photo split, as plain data (the same for every correct answer).

    Which photos land in valid is not compared with the library: any seeded shuffle is right. What
    is checked is that the split is reproducible, also in another process: e.g. sorting by
    `hash((photo, seed))` or shuffling `list(set(photos))` gives the same split twice in one
    process but a different one after a restart, because Python salts str hashes per process;
    `_Salted` names play that other process here."""
    out = [tuple(r) for r in f(list(rows), fraction, seed)]
    sides: dict[str, set] = {}
    for image, _, split in out:
        sides.setdefault(str(image), set()).add(split)
    again = [tuple(r) for r in f(list(rows), fraction, seed)]
    mine = sorted({str(r[0]) for r in out if r[2] == "valid"})
    elsewhere = [_in_other_process(f, rows, fraction, seed, salt) for salt in (0x5A17, 0x2C3B9D)]
    valid_sets = {frozenset(str(r[0]) for r in f(list(rows), fraction, s) if r[2] == "valid")
                  for s in range(seed, seed + 8)}
    return {"行（去掉 split 列）保持原样和原顺序，一条描述也不少": [(r[0], r[1]) for r in out] == [tuple(r) for r in rows],
            "split 只取 train / valid": sorted({r[2] for r in out} | {"train", "valid"}) == ["train", "valid"],
            "两边都出现的照片": sorted(i for i, s in sides.items() if len(s) > 1),
            "valid 的照片数": len(mine),
            "同一个 seed 两次结果相同": again == out,
            "同一个 seed 在另一个 Python 进程里（字符串的 hash 不同）结果相同": all(e == mine for e in elsewhere),
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
        elif kind == "set":      # set order follows the str hashes: another process, another order
            photos = list(set(photos))
            rng.shuffle(photos)
        elif kind != "no_shuffle":
            rng.shuffle(photos)
        n = len(set(photos)) * valid_fraction
        n_valid = {"int": int(n), "round": round(n), "ceil": math.ceil(n)}.get(kind, math.floor(n + 0.5))
        valid = set(photos[:n_valid])
        out = [(i, c, "valid" if i in valid else "train") for i, c in rows]
        if kind == "grouped":    # the rows regrouped photo by photo: the file order is lost
            out.sort(key=lambda r: photos.index(r[0]))
        elif kind == "one_row":  # one row per photo: the photo's other captions are dropped
            out = list({r[0]: r for r in reversed(out)}.values())[::-1]
        return out
    return split_by_photo


def _split_alternatives():
    """Correct answers written differently from the library: each must pass (tests prove it)."""
    import math

    def sample_sorted(rows, valid_fraction, seed):
        photos = sorted({i for i, _ in rows})
        valid = set(random.Random(seed).sample(photos, math.floor(len(photos) * valid_fraction + 0.5)))
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]

    def shuffled_indices(rows, valid_fraction, seed):
        photos = list(dict.fromkeys(i for i, _ in rows))
        order = list(range(len(photos)))
        random.Random(seed * 7919 + 1).shuffle(order)
        n_valid = int(len(photos) * valid_fraction + 0.5)
        valid = {photos[k] for k in order[:n_valid]}
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]

    return {"先排序再 random.Random(seed).sample": sample_sorted, "打乱下标而不是文件名": shuffled_indices}


register(Exercise(
    id="10.4", title="按照片划分 train / valid（不泄露）", points=3,
    hint="划分的单位是照片：先决定每张照片在哪一边，再让每一行跟着它的照片走。可复现要一个只属于这个函数、"
         "只由 seed 决定的随机数生成器（全局的随机状态和别的代码共用；字符串的 hash() 每个进程都不同）。"
         "照片数 × 比例四舍五入，恰好 .5 时进位（round(2.5) == 2，int() 是截断）。"
         "哪几张照片进 valid 不和库比较：任何由 seed 决定的打乱都对，但换一个 Python 进程结果也必须相同"
         "（set() 的顺序和 hash() 都随进程变）。"
         "常见错误：打乱的是行而不是照片、照片列表里有重复、用 set() 去重后直接打乱、没有用 seed、行的顺序变了或丢了行。",
    reference=_split_reference,
    cases=_split_cases,
    hidden=_split_hidden,
    builds=("cnclip_edu.data.split.split_by_photo", "cnclip_edu.data.split.split_by_group",
            "cnclip_edu.data.split.scene_groups"),
    mutants=lambda: {
        "打乱的是行（描述）而不是照片：同一张照片分到两边": _split_mistake("captions"),
        "照片列表没有去重（一张照片有几条描述就出现几次）": _split_mistake("repeats"),
        "用 int() 截断照片数": _split_mistake("int"),
        "用 round()：恰好 .5 时取偶数": _split_mistake("round"),
        "向上取整": _split_mistake("ceil"),
        "用全局的 random.shuffle，没有用 seed": _split_mistake("unseeded"),
        "没有打乱：总是取前几张照片": _split_mistake("no_shuffle"),
        "按 hash((照片, seed)) 排序代替打乱：换一个进程（PYTHONHASHSEED）划分就变": _split_mistake("hash"),
        "list(set(照片)) 之后再打乱：set 的顺序随进程变": _split_mistake("set"),
        "输出按照片重新分组，行的顺序变了": _split_mistake("grouped"),
        "每张照片只输出一行，丢了其余的描述": _split_mistake("one_row"),
    },
))
