"""Exercise 07.6 of notebook 07 (retrieval evaluation): why a top-1 missed, A / B1 / B2 / C / D.

07.6 is compared with `eval.failures.miss_reason` on (caption pairs, image pairs) inputs given in any
order. The cases hold one miss of each class and the edge ones a plausible answer gets wrong: the same
coloured shape twice, the same colour with another shape, one shape more of a colour already there,
colours of the same kinds in other numbers (two reds and a blue vs one red and two blues), shapes of the
same kinds in other numbers, and colour and shape both wrong. A case's result maps each input, written
out in Chinese, to the class the answer gave, so a failure names the input it got wrong.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register

_COLOURS = ("红色", "绿色", "蓝色", "黄色", "紫色", "橙色", "粉色", "黑色")
_SHAPES = ("圆形", "正方形", "三角形", "菱形", "十字", "五角星")


# ----------------------------------------------------------------------------- 07.6 why a top-1 missed
def _library_reason(said, got):
    from cnclip_edu.eval.failures import miss_reason

    return miss_reason(said, got)


def _hand_pairs() -> list[tuple[list, list]]:
    """One of each class; the asserted pairs are not in sorted order."""
    return [([("绿色", "圆形"), ("红色", "正方形")], [("红色", "正方形"), ("绿色", "圆形")]),        # A
            ([("红色", "正方形"), ("绿色", "圆形")], [("绿色", "正方形"), ("红色", "圆形")]),        # B1
            ([("蓝色", "菱形")], [("蓝色", "五角星")]),                                              # B2
            ([("黄色", "十字"), ("红色", "圆形")], [("黄色", "十字"), ("紫色", "圆形")]),            # C
            ([("红色", "圆形")], [("红色", "圆形"), ("蓝色", "正方形")])]                            # D


def _edge_pairs() -> list[tuple[list, list]]:
    r, g, b = "红色", "绿色", "蓝色"
    return [([(r, "圆形"), (r, "圆形")], [(r, "圆形"), (r, "圆形")]),                               # A, a repeat
            ([(r, "圆形")], [(r, "正方形")]),                                                        # B2: colour right
            ([(r, "圆形")], [(b, "正方形")]),                                                        # C: both wrong
            ([(r, "圆形")], [(r, "圆形"), (r, "正方形")]),                                           # D, same colour added
            ([(r, "圆形"), (r, "圆形")], [(r, "圆形")]),                                             # D, one fewer
            ([(r, "圆形"), (r, "正方形"), (b, "五角星")], [(r, "圆形"), (b, "正方形"), (b, "五角星")]),   # C: counts
            ([(r, "圆形"), (g, "圆形"), (b, "正方形")], [(r, "圆形"), (g, "正方形"), (b, "正方形")]),   # B2: counts
            ([(r, "圆形"), (g, "圆形")], [(r, "圆形"), (g, "正方形")]),                               # B2, 圆形 is drawn
            ([(r, "圆形"), (r, "圆形")], [(r, "圆形"), (r, "正方形")]),                               # B2, a repeat
            ([(b, "十字"), (r, "圆形"), (g, "菱形")], [(g, "圆形"), (b, "菱形"), (r, "十字")])]       # B1, three


def _draw(rng: random.Random, kind: str) -> tuple[list, list]:
    """A (said, got) pair of the given kind, with colours and shapes drawn from the toy world's."""
    n = rng.randint(1, 3)
    said = [(rng.choice(_COLOURS), rng.choice(_SHAPES)) for _ in range(n)]
    got = list(said)
    if kind == "A":
        pass
    elif kind == "B1":                                   # distinct colours and shapes, the shapes rotated
        cs, ss = rng.sample(_COLOURS, max(n, 2)), rng.sample(_SHAPES, max(n, 2))
        said = list(zip(cs, ss))
        got = list(zip(cs, ss[1:] + ss[:1]))
    elif kind == "B2":                                   # one shape swapped for another
        i = rng.randrange(n)
        got[i] = (got[i][0], rng.choice([s for s in _SHAPES if s != got[i][1]]))
    elif kind == "B2 个数":                               # the same kinds of shape, in other numbers
        c1, c2, c3 = rng.sample(_COLOURS, 3)
        s1, s2 = rng.sample(_SHAPES, 2)
        said, got = [(c1, s1), (c2, s1), (c3, s2)], [(c1, s1), (c2, s2), (c3, s2)]
    elif kind == "C":                                    # one colour swapped (the shape maybe too)
        i = rng.randrange(n)
        shape = got[i][1] if rng.random() < 0.5 else rng.choice(_SHAPES)
        got[i] = (rng.choice([c for c in _COLOURS if c != got[i][0]]), shape)
    elif kind == "C 形状也错":                             # one coloured shape replaced by another colour and shape
        i = rng.randrange(n)
        got[i] = (rng.choice([c for c in _COLOURS if c != got[i][0]]), rng.choice([x for x in _SHAPES if x != got[i][1]]))
    elif kind == "C 个数":                                # the same kinds of colour, in other numbers
        c1, c2 = rng.sample(_COLOURS, 2)
        s1, s2, s3 = rng.sample(_SHAPES, 3)
        said, got = [(c1, s1), (c1, s2), (c2, s3)], [(c1, s1), (c2, s2), (c2, s3)]
    elif kind == "D":                                    # one shape more (often a colour already there) or fewer
        if n > 1 and rng.random() < 0.5:
            got.pop(rng.randrange(n))
        else:
            got.append((rng.choice([c for c, _ in said] + list(_COLOURS[:2])), rng.choice(_SHAPES)))
    else:
        raise ValueError(kind)
    rng.shuffle(said)
    rng.shuffle(got)
    return said, got


_KINDS = ("A", "B1", "B2", "B2 个数", "C", "C 形状也错", "C 个数", "D")


def _random_pairs(seed: int, per_kind: int = 4) -> list[tuple[list, list]]:
    rng = random.Random(seed)
    return [_draw(rng, kind) for kind in _KINDS for _ in range(per_kind)]


def _written(pairs) -> str:
    return "、".join(c + s for c, s in pairs)


def _run(answer, pairs) -> dict[str, str]:
    """{"描述：… | 第 1 名：…": class}; each input passed as a fresh list of tuples."""
    out = {}
    for said, got in pairs:
        label = f"描述：{_written(said)} | 第 1 名：{_written(got)}"
        reason = answer(list(said), list(got))
        out[label] = reason if isinstance(reason, str) else repr(reason)
    return out


def _reason_mistake(kind: str):
    def miss_reason(said, got):
        if kind == "unsorted":                               # compares lists as given: order counts
            s, g = list(said), list(got)
            colours = lambda p: [c for c, _ in p]            # noqa: E731
            shapes = lambda p: [x for _, x in p]             # noqa: E731
        elif kind == "sets":                                 # repeats collapsed everywhere
            s, g = sorted(set(said)), sorted(set(got))
            colours = lambda p: sorted({c for c, _ in p})    # noqa: E731
            shapes = lambda p: sorted({x for _, x in p})     # noqa: E731
        else:
            s, g = sorted(said), sorted(got)
            colours = (lambda p: sorted({c for c, _ in p})) if kind == "colour_kinds" else \
                (lambda p: sorted(c for c, _ in p))                                          # noqa: E731
            shapes = (lambda p: sorted({x for _, x in p})) if kind == "shape_kinds" else \
                (lambda p: sorted(x for _, x in p))                                          # noqa: E731
        if kind == "colour_first" and colours(s) != colours(g):
            return "C"
        if kind == "zip":                                    # pair by pair: a count difference is cut off
            pairs = list(zip(s, g))
            if all(a == b for a, b in pairs):
                return "A"
            if any(a[0] != b[0] for a, b in pairs):
                return "C"
            return "B1" if sorted(a[1] for a, _ in pairs) == sorted(b[1] for _, b in pairs) else "B2"
        if kind == "fewer_only":
            if len(g) < len(s):
                return "D"
        elif len(s) != len(g):
            return "D"
        if kind == "shape_first":
            if s == g:
                return "A"
            if shapes(s) != shapes(g):
                return "B2"
            return "C" if colours(s) != colours(g) else "B1"
        if colours(s) != colours(g):
            return "C"
        if s == g:
            return "A"
        if kind == "said_shapes_drawn":                      # B2 only when an asserted shape is not drawn at all
            same = all(x in shapes(g) for x in shapes(s))
        else:
            same = shapes(s) == shapes(g)
        if kind == "swapped":
            return "B2" if same else "B1"
        return "B1" if same else "B2"
    return miss_reason


register(Exercise(
    id="07.6", title="第 1 名错在哪里：A / B1 / B2 / C / D", points=2,
    hint="把描述和图都看成 (颜色, 形状) 的多重集合 (multiset)：先后不论，重复的要按个数算。"
         "每次没命中只归到一类；判断的先后看前提：一个判断只能在它的前提（个数对？颜色都对？）都已确认之后做。"
         "用练习说明里的两对例子试一试你的先后。"
         "常见错误：先比颜色再比个数、先比形状再比颜色、用集合比（重复的只算一个）、没排序就比较、B1 和 B2 弄反。",
    reference=_library_reason,
    cases=lambda: [Case("每一类各一个（描述里的先后没排序）", lambda f: _run(f, _hand_pairs())),
                   Case("边界情况：重复的图形、同色换了形状、同色多一个图形、颜色或形状的种类相同而个数不同",
                        lambda f: _run(f, _edge_pairs())),
                   Case("32 个随机的例子（8 种各 4 个，先后打乱）", lambda f: _run(f, _random_pairs(0)))],
    hidden=lambda seed: [Case("随机的例子（每一类都有，先后打乱）", lambda f: _run(f, _random_pairs(seed * 2 + 31))),
                         Case("另一组随机的例子", lambda f: _run(f, _random_pairs(seed * 2 + 32, per_kind=3)))],
    builds=("cnclip_edu.eval.failures.miss_reason",),
    mutants=lambda: {
        "先比颜色、再比个数（个数不同也算成 C）": _reason_mistake("colour_first"),
        "先比形状、再比颜色（颜色错也算成 B2）": _reason_mistake("shape_first"),
        "B1 和 B2 弄反了": _reason_mistake("swapped"),
        "没排序就比较（描述和图里的先后不同就算错）": _reason_mistake("unsorted"),
        "用集合比较（重复的图形只算一个）": _reason_mistake("sets"),
        "颜色只比种类、不比个数": _reason_mistake("colour_kinds"),
        "形状只比种类、不比个数": _reason_mistake("shape_kinds"),
        "B2 只认'描述说的某个形状图里根本没画'": _reason_mistake("said_shapes_drawn"),
        "排序后逐对比较（zip 截掉了多出来的图形，个数差被忽略）": _reason_mistake("zip"),
        "只有图里少画了图形才算 D（多画了的不算）": _reason_mistake("fewer_only"),
    },
))
