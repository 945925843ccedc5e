"""Exercise 10.5 of notebook 10 (your own photos): a split that keeps same-scene photos together.

10.5 (`data.split.split_by_group`): the photos known to show one scene are given as pairs
(`same_scene`: a stereo pair, burst shots, a crop and its original); photos joined by a chain of pairs
form one group, and whole groups go to valid. Which groups go is NOT compared with the library (any
seeded shuffle is right); each case checks properties, each named on its own: the rows kept in order,
no photo and no same-scene pair on both sides, the number of valid groups (round half up; also for 8
seeds in a row, which catches a grouping with one group too few or too many), the same split for the same seed, also in another Python process (names hashed as after a restart, see
nb10_split._Salted: catches groups kept in a set), a different one for other seeds. Cases: the sample
photos with the stereo pair (split by photo alone separates it for this seed), chains a~b~c, two groups
joined by a later pair (catches `label[b] = label[a]`), pairs
naming a photo that is not in the file (it still links: a chain a~x, x~b joins a and b, as `scene_groups`
does and the notebook's spec says; catches skipping such pairs; a group made only of such photos is not
counted: catches counting it), no pairs at all, one big group.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb10_split import _photo_rows, _Salted, _sample_rows


# ----------------------------------------------------------------------------- 10.5 split by group
def _groups(photos, pairs):
    """The checker's own grouping (not the library's: that is what is being built): chains of pairs."""
    group = {p: {p} for pair in pairs for p in pair}    # photos without captions link too (a~x, x~b)
    group.update({p: {p} for p in photos})
    for pair in pairs:
        for a, b in zip(pair, pair[1:]):
            if group[a] is not group[b]:
                merged = group[a] | group[b]
                for p in merged:
                    group[p] = merged
    return group


def _group_properties(f, rows, pairs, fraction, seed):
    """What must hold of any correct group split, as plain data (the same for every correct answer)."""
    photos = list(dict.fromkeys(i for i, _ in rows))
    group = _groups(photos, pairs)
    out = [tuple(r) for r in f(list(rows), [tuple(p) for p in pairs], fraction, seed)]
    side: dict[str, set] = {}
    for image, _, split in out:
        side.setdefault(str(image), set()).add(split)
    valid = {str(r[0]) for r in out if r[2] == "valid"}
    n_groups = len({frozenset(group[p]) for p in valid})

    def valid_elsewhere(salt):
        salted = type("_SaltedHere", (_Salted,), {"salt": salt})
        got = f([(salted(i), c) for i, c in rows], [tuple(salted(p) for p in pair) for pair in pairs], fraction, seed)
        return sorted({str(r[0]) for r in got if r[2] == "valid"})

    again = [tuple(r) for r in f(list(rows), [tuple(p) for p in pairs], fraction, seed)]
    per_seed = [{str(r[0]) for r in f(list(rows), [tuple(p) for p in pairs], fraction, s) if r[2] == "valid"}
                for s in range(seed, seed + 8)]
    valid_sets = {frozenset(v) for v in per_seed}
    apart = sorted({tuple(sorted((a, b))) for v in per_seed for a in photos for b in group[a] & set(photos)
                    if a != b and (a in v) != (b in v)})
    return {"行（去掉 split 列）保持原样和原顺序，一条描述也不少": [(r[0], r[1]) for r in out] == [tuple(r) for r in rows],
            "split 只取 train / valid": sorted({r[2] for r in out} | {"train", "valid"}) == ["train", "valid"],
            "两边都出现的照片": sorted(i for i, s in side.items() if len(s) > 1),
            "同一场景（经一串照片对连在一起）却分在两边的照片（连续 8 个 seed）": apart,
            "valid 的组数": n_groups,
            "换 seed（连续 8 个）时 valid 的组数": [len({frozenset(group[p]) for p in v}) for v in per_seed],
            "同一个 seed 两次结果相同": again == out,
            "同一个 seed 在另一个 Python 进程里（字符串的 hash 不同）结果相同":
                all(valid_elsewhere(salt) == sorted(valid) for salt in (0x5A17, 0x2C3B9D)),
            "换 seed 划分会变": len(valid_sets) > 1}


_STEREO = [("motorcycle_left.png", "motorcycle_right.png")]


def _chain_rows():
    return _photo_rows(12, [2] * 12, random.Random(4))


def _group_cases():
    chains = [("p00.jpg", "p01.jpg"), ("p01.jpg", "p02.jpg"), ("p05.jpg", "p04.jpg"), ("p04.jpg", "p03.jpg"),
              ("p07.jpg", "p09.jpg")]
    messy = [("p02.jpg", "别的文件夹里的.jpg"), ("别的文件夹里的.jpg", "p05.jpg"), ("p03.jpg", "p06.jpg"), ("p06.jpg", "p03.jpg"), ("p03.jpg", "p06.jpg"),
             ("p08.jpg", "p08.jpg"),
             ("原图甲.jpg", "原图乙.jpg"), ("原图丙.jpg", "原图甲.jpg")]   # a group made only of photos not in rows
    big = [(f"p{i:02d}.jpg", f"p{i + 1:02d}.jpg") for i in range(7)]
    joined = [("p00.jpg", "p01.jpg"), ("p02.jpg", "p03.jpg"), ("p01.jpg", "p02.jpg"), ("p05.jpg", "p06.jpg"),
              ("p07.jpg", "p08.jpg"), ("p06.jpg", "p07.jpg")]
    return [
        Case("示例照片的 81 行 + 两张摩托车是同一场景，valid 占 0.2（17 组 × 0.2 = 3.4 组）",
             lambda f: _group_properties(f, _sample_rows(), _STEREO, 0.2, 2)),
        Case("12 张照片，照片对连成串（a~b、b~c 是同一组），valid 占 0.5",
             lambda f: _group_properties(f, _chain_rows(), chains, 0.5, 1)),
        Case("两个已有的组被一对连起来：(p00,p01)、(p02,p03) 之后才有 (p01,p02)，p05~p08 同样，valid 占 0.4",
             lambda f: _group_properties(f, _chain_rows(), joined, 0.4, 1)),
        Case("照片对里有不在描述文件里的照片（p02~x、x~p05：x 不在 rows 里，照样把 p02 和 p05 连成一组；另有一组全不在 rows 里，不算组数）、重复的对、反过来写的对、自己和自己",
             lambda f: _group_properties(f, _chain_rows(), messy, 0.3, 6)),
        Case("没有照片对（每张照片自成一组），10 张照片，valid 占 0.25（恰好 2.5 组）",
             lambda f: _group_properties(f, _photo_rows(10, [3] * 10, random.Random(1)), [], 0.25, 7)),
        Case("8 张照片连成一大组，另有 4 张单独的，valid 占 0.3（5 组 × 0.3 = 1.5 组）",
             lambda f: _group_properties(f, _chain_rows(), big, 0.3, 3)),
    ]


def _group_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind in ("照片对连成串的一般情形", "照片对里有不在文件里的照片", "恰好半组的比例"):
        n = rng.randint(8, 30)
        prefix = f"g{rng.randint(0, 999)}_"
        rows = _photo_rows(n, [rng.randint(1, 4) for _ in range(n)], random.Random(rng.random()), prefix=prefix)
        names = [f"{prefix}{i:02d}.jpg" for i in range(n)]
        pairs = [tuple(rng.sample(names, 2)) for _ in range(rng.randint(2, n // 2))]
        if kind.startswith("照片对里有"):
            outside = f"{prefix}不在这里.jpg"   # a chain through a photo not in the file: it joins nothing
            pairs += [(rng.choice(names), outside), (outside, rng.choice(names)),
                      (f"{prefix}原图甲.jpg", f"{prefix}原图乙.jpg")]   # a group with no photo in rows: not counted
        n_groups = len({frozenset(g) for g in _groups(names, pairs).values()})
        fraction = (rng.randint(0, n_groups - 1) + 0.5) / n_groups if kind == "恰好半组的比例" else \
            rng.choice([0.15, 0.2, 0.3])
        s = rng.randint(0, 10**6)
        cases.append(Case(kind, lambda f, rows=rows, pairs=pairs, fr=fraction, s=s: _group_properties(f, rows, pairs, fr, s)))
    return cases


def _group_reference(rows, same_scene, valid_fraction, seed):
    from cnclip_edu.data.split import split_by_group

    return split_by_group(rows, same_scene, valid_fraction, seed)


def _group_mistake(kind: str):
    import math

    def split_by_group(rows, same_scene, valid_fraction, seed):
        photos = list(dict.fromkeys(i for i, _ in rows))
        if kind == "by_photo":       # the pairs ignored: split_by_photo
            groups = [[p] for p in photos]
        elif kind == "copy_label":   # b takes a's label, but b's old group keeps its own: (a,b),(c,d),(b,c) splits
            label = {p: p for p in photos}
            for a, b in same_scene:
                if a in label and b in label:
                    label[b] = label[a]
            groups = [[p for p in photos if label[p] == lab] for lab in dict.fromkeys(label[p] for p in photos)]
        elif kind == "pairs_only":   # b labelled with a, not with a's group: a chain a~b, b~c falls apart
            label = {p: p for p in photos}
            for a, b in same_scene:
                if a in label and b in label:
                    label[b] = label[a] if label[a] == a else a
            groups = [[p for p in photos if label[p] == lab] for lab in dict.fromkeys(label[p] for p in photos)]
        else:
            # the right grouping links through photos named only in pairs; "skip_outside" drops such pairs
            # (a~x, x~b no longer joins a and b), "unknown_crash" looks every photo up among `photos`
            group = {p: {p} for pair in same_scene for p in pair} if kind not in ("skip_outside", "unknown_crash") else {}
            group.update({p: {p} for p in photos})
            for a, b in same_scene:
                if kind == "skip_outside" and not (a in group and b in group):
                    continue
                merged = group[a] | group[b]
                for p in merged:
                    group[p] = merged
            own = set(photos)
            if kind == "count_outside":   # groups made only of photos not in rows counted too (they hold no row)
                named = list(dict.fromkeys([*photos, *(p for pair in same_scene for p in pair)]))
                firsts = dict.fromkeys(min(group[p], key=named.index) for p in named)
                groups = [sorted(group[f] & own, key=photos.index) for f in firsts]
            elif kind == "set_order":  # groups and their members kept as sets: the order follows str hashes
                groups = [list(g & own) for g in {frozenset(group[p]) for p in photos}]
            else:
                firsts = dict.fromkeys(min(group[p] & own, key=photos.index) for p in photos)
                groups = [sorted(group[f] & own, key=photos.index) for f in firsts]
        if kind == "unseeded":
            random.shuffle(groups)
        else:
            random.Random(seed).shuffle(groups)
        if kind == "count_photos":   # whole groups until the photo count is reached
            n_valid, valid = math.floor(len(photos) * valid_fraction + 0.5), set()
            for g in groups:
                if len(valid) >= n_valid:
                    break
                valid |= set(g)
        else:
            n = len(groups) * valid_fraction
            n_valid = round(n) if kind == "round" else math.floor(n + 0.5)
            valid = {p for g in groups[:n_valid] for p in g}
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]
    return split_by_group


def _group_alternatives():
    """Correct answers written differently from the library: each must pass (tests prove it)."""
    import math

    def relabel_then_sample(rows, same_scene, valid_fraction, seed):
        label = {p: p for pair in same_scene for p in pair}   # every photo named, with or without captions,
        label.update({i: i for i, _ in rows})                 # labelled by its group's smallest name, repeatedly
        changed = True
        while changed:
            changed = False
            for pair in same_scene:
                known = [p for p in pair if p in label]
                for a, b in zip(known, known[1:]):
                    lo = min(label[a], label[b])
                    for p in label:
                        if label[p] in (label[a], label[b]) and label[p] != lo:
                            label[p], changed = lo, True
        names = sorted({label[i] for i, _ in rows})   # groups with a photo in rows (not an uncaptioned one's alone)
        chosen = set(random.Random(seed).sample(names, math.floor(len(names) * valid_fraction + 0.5)))
        return [(i, c, "valid" if label[i] in chosen else "train") for i, c in rows]

    return {"反复合并标签 + 排序后 random.Random(seed).sample": relabel_then_sample}


register(Exercise(
    id="10.5", title="按组划分：同一场景的照片留在同一边", points=3,
    hint="先回答“划分的单位是什么”：一串照片对连起来的所有照片是一个单位（a 和 b 同景、b 和 c 同景，a 和 c 就得在一边）。"
         "单位定下来，其余的要求和练习 10.4 一样：只由 seed 决定、换一个进程也不变（集合的顺序随进程变），"
         "单位的个数 × 比例，恰好 .5 时进位。照片对里可能有不在描述文件里的照片：它不进划分，但照样连线（a~x、x~b 把 a 和 b 并成一组）；只由这种照片组成的组不算组数。"
         "常见错误：只合并直接成对的两张（没有顺着串合并）、数的是照片而不是组、组存在 set 里再打乱、round()、没用 seed。",
    reference=_group_reference,
    cases=_group_cases,
    hidden=_group_hidden,
    builds=("cnclip_edu.data.split.split_by_group", "cnclip_edu.data.split.scene_groups",
            "cnclip_edu.data.split.split_by_photo"),
    mutants=lambda: {
        "忽略照片对，按照片划分": _group_mistake("by_photo"),
        "只合并直接成对的两张，没有顺着 a~b、b~c 连成一组": _group_mistake("pairs_only"),
        "label[b] = label[a]：两个已有的组被一对连起来时，b 原来组里的其他照片没跟着改": _group_mistake("copy_label"),
        "组存在 set 里再打乱：换一个进程顺序就变": _group_mistake("set_order"),
        "valid 按照片数而不是组数计算": _group_mistake("count_photos"),
        "用 round()：恰好 .5 时取偶数": _group_mistake("round"),
        "用全局的 random.shuffle，没有用 seed": _group_mistake("unseeded"),
        "照片对里的照片不在文件里时出错": _group_mistake("unknown_crash"),
        "跳过含不在文件里的照片的对：a~x、x~b 没把 a 和 b 并成一组": _group_mistake("skip_outside"),
        "只由不在文件里的照片组成的组也算进组数": _group_mistake("count_outside"),
    },
))
