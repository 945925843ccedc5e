"""Exercise 00.3 of notebook 00: the probe the student builds (several renders of the target, each round's
probability and rank, the majority), checked in a fake world. What the cases and mutants catch is described
in nb00.py's docstring; nb00.py imports this part after registering 00.1, 00.q1 and 00.2, so the ids stay in
notebook order.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb00_world import _COLOURS, _SHAPES  # the toy world's names, shared with 00.2
from .tripwire import guard_for

BUILDS_PROBE = ("cnclip_edu.eval.hard_negatives.probe_rank",)


def _library_probe(combos, draw_fn, logits_fn, rounds):
    from cnclip_edu.eval.hard_negatives import probe_rank

    return probe_rank(combos, draw_fn, logits_fn, rounds)


_guard_probe = guard_for(_library_probe, BUILDS_PROBE)


def _fake_world(combos, table):
    """-> (draw, logits_of) for a fake model: render k of combination i is the label "图：紫色十字#k", and
    its logits over the captions are `table[i, k]` (table: (combinations, rounds, captions)). Each render
    is fixed by (combination, k), so an answer that also draws the negatives' pictures gets the same
    target rows; a caption outside the training phrasing or a render number outside 0..rounds-1 is refused."""
    import torch

    captions = [f"一个{c}的{s}" for c, s in combos]
    names = [f"{c}{s}" for c, s in combos]
    rounds = table.shape[1]

    def draw(color, shape, k):
        if not isinstance(k, int) or not 0 <= k < rounds:
            raise ValueError(f"draw_fn 的第 3 个参数是第几轮，应当是 0 到 {rounds - 1} 的整数（rounds = {rounds}），得到的是 {k!r}")
        return f"图：{color}{shape}#{k}"

    def logits_of(caps, pics):
        for cap in caps:
            if cap not in captions:
                raise ValueError(f"描述 {cap!r} 不是训练数据的句式（应当像 {captions[0]!r}）")
        rows = []
        for pic in pics:
            name, _, k = str(pic).removeprefix("图：").partition("#")
            if name not in names or not k.isdigit():
                raise ValueError(f"{pic!r} 不是 draw_fn 画出的这组组合之一")
            rows.append(table[names.index(name), int(k)])
        cols = [captions.index(c) for c in caps]
        return torch.stack(rows)[:, cols].clone()
    return draw, logits_of


def _probe_case(label, combos, table):
    rounds = table.shape[1]

    def run(f):
        draw, logits_of = _fake_world(combos, table)
        probs, ranks, majority = _guard_probe(f)(list(combos), draw, logits_of, rounds)
        # the spec asks for plain Python numbers (to print and compare), not tensors
        if not (isinstance(probs, list) and all(isinstance(p, float) for p in probs)):
            probs = f"probs 应当是 Python float 的列表，得到的是 {type(probs).__name__}"
        if not (isinstance(ranks, list) and all(isinstance(r, int) and not isinstance(r, bool) for r in ranks)):
            ranks = f"ranks 应当是 Python int 的列表，得到的是 {type(ranks).__name__}"
        if not isinstance(majority, bool):
            majority = f"majority 应当是 Python 的 bool（True / False），得到的是 {type(majority).__name__}"
        return probs, ranks, majority
    return Case(label, run)


def _probe_logits(n: int, target_rank: int, seed: int, ties: int = 0):
    """(n, n) logits, not symmetric, rows on different scales; the target picture's own caption
    (row 0, column 0) has rank `target_rank` in row 0, and column 0 would rank it differently.

    `ties` captions ranked just below the target get exactly the target's logit in row 0, so their
    probabilities equal the target's: they must not push its rank down (the spec counts only
    strictly higher captions), which a `>=` count without the `+ 1` gets wrong."""
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n, generator=g) * torch.linspace(2.0, 6.0, n)[:, None]
    row = logits[0].clone()
    order = torch.argsort(row, descending=True)
    others = [int(j) for j in order if int(j) != 0]
    ranked = others[: target_rank - 1] + [0] + others[target_rank - 1:]
    values = torch.sort(row, descending=True).values
    logits[0, ranked] = values                    # row 0 sorted so that column 0 sits at target_rank
    assert target_rank + ties <= n, "not enough captions below the target to tie with"
    logits[0, ranked[target_rank: target_rank + ties]] = logits[0, 0].clone()   # exact ties -> equal probabilities
    logits[1:, 0] = logits[0, 0] + 3.0            # column 0: other pictures like caption 0 more
    return logits


def _probe_table(n: int, ranks, seed: int, ties=None):
    """(n combinations, rounds, n captions): round k's renders are `_probe_logits(n, ranks[k], ...)`, so the
    target's render k ranks its caption `ranks[k]` (with `ties[k]` exact ties), and the other
    combinations' renders favour caption 0 (reading a column or a negative's picture gives other numbers)."""
    import torch

    ties = ties or [0] * len(ranks)
    return torch.stack([_probe_logits(n, r, seed + 17 * k, t) for k, (r, t) in enumerate(zip(ranks, ties))], dim=1)


_PURPLE_SHAPES = [("紫色", s) for s in ["十字", "圆形", "正方形", "三角形", "五角星", "菱形"]]


def _probe_cases():
    return [
        _probe_case("紫色十字和 5 个只差形状的负例，画 5 轮，名次 [2, 1, 1, 1, 3]（第 0 轮不是第 1，多数轮是）",
                    _PURPLE_SHAPES, _probe_table(6, [2, 1, 1, 1, 3], 0)),
        _probe_case("绿色三角形和 3 个只差颜色的负例，画 4 轮，名次 [1, 3, 1, 2]（排第 1 的正好一半）",
                    [("绿色", "三角形"), ("红色", "三角形"), ("黄色", "三角形"), ("蓝色", "三角形")],
                    _probe_table(4, [1, 3, 1, 2], 1)),
        _probe_case("黑色圆形和 6 个只差颜色的负例，画 5 轮，名次 [1, 1, 4, 7, 5]（第 1 名最常见，但不到一半）",
                    [("黑色", "圆形")] + [(c, "圆形") for c in _COLOURS[:6]], _probe_table(7, [1, 1, 4, 7, 5], 2)),
        _probe_case("红色正方形和 4 个只差形状的负例，画 3 轮，有的轮里别的描述和正确描述一样高（并列），名次 [1, 2, 1]",
                    [("红色", "正方形"), ("红色", "圆形"), ("红色", "三角形"), ("红色", "十字"), ("红色", "菱形")],
                    _probe_table(5, [1, 2, 1], 3, ties=[2, 1, 0])),
        _probe_case("只画 1 轮：紫色十字，名次 [1]", _PURPLE_SHAPES[:4], _probe_table(4, [1], 4)),
    ]


def _probe_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for k in range(3):
        n = rng.randint(3, 8)
        if rng.random() < 0.5:
            shape, colours = rng.choice(_SHAPES), rng.sample(_COLOURS, n)
            combos = [(c, shape) for c in colours]
        else:
            colour, shapes = rng.choice(_COLOURS), rng.sample(_SHAPES, min(n, len(_SHAPES)))
            combos = [(colour, s) for s in shapes]
        n = len(combos)
        rounds = rng.randint(2, 6)
        if k == 0:   # the first case ties captions with the right one (ties must not lower its rank)
            ranks = [rng.randint(1, n - 1) for _ in range(rounds)]
            ties = [rng.randint(1, n - r) for r in ranks]
        else:
            ranks, ties = [rng.choice([1, 1, rng.randint(1, n)]) for _ in range(rounds)], None
        if k == 1 and rounds % 2 == 0:   # an even split: half the rounds first is no majority
            ranks = [1] * (rounds // 2) + [rng.randint(2, n) for _ in range(rounds // 2)]
            rng.shuffle(ranks)
        label = "随机的一组难负例、随机的轮数、logits 和每轮的名次" + ("，有和正确描述一样高的描述" if ties else "")
        cases.append(_probe_case(label, combos, _probe_table(n, ranks, rng.randrange(10 ** 6), ties)))
    return cases


def _probe_mistake(kind: str):
    def probe_rank(combos, draw_fn, logits_fn, rounds):
        import collections

        import torch

        fmt = "{}{}" if kind == "caption" else "一个{}的{}"
        captions = [fmt.format(c, s) for c, s in combos]
        color, shape = combos[0]
        if kind == "all_pictures":   # every combination drawn each round (round -> combination), then the first rows read
            pictures = [draw_fn(c, s, k) for k in range(rounds) for c, s in combos]
        elif kind == "same_render":
            pictures = [draw_fn(color, shape, 0) for _ in range(rounds)]
        elif kind == "from_one":
            pictures = [draw_fn(color, shape, k + 1) for k in range(rounds)]
        else:
            pictures = [draw_fn(color, shape, k) for k in range(rounds)]
        logits = logits_fn(captions, pictures)[:rounds]
        probs = logits.softmax(dim=0 if kind == "dim0" else -1)
        right = logits[:, 0] if kind == "logit" else probs[:, 0]
        higher = (probs >= right[:, None]).sum(dim=1) if kind == "ge" else (probs > right[:, None]).sum(dim=1)
        ranks = [int(h) if kind == "zero_based" else int(h) + 1 for h in higher]
        if kind == "ge_itself":   # counts itself instead of adding 1: right until another caption ties with it
            ranks = [int(h) for h in (probs >= right[:, None]).sum(dim=1)]
        if kind == "first_only":
            ranks = [1 if int(row.argmax()) == 0 else 2 for row in probs]
        if kind == "tensors":
            return right, (probs > right[:, None]).sum(dim=1) + 1, torch.tensor(2 * ranks.count(1) > rounds)
        majority = 2 * ranks.count(1) > rounds
        if kind == "half":
            majority = 2 * ranks.count(1) >= rounds
        elif kind == "mode":
            majority = collections.Counter(ranks).most_common(1)[0][0] == 1
        elif kind == "round0":
            majority = ranks[0] == 1
        return [float(p) for p in right], ranks, majority
    return probe_rank


register(Exercise(
    id="00.3", title="把一组难负例变成一次检验：多画几轮，读出每轮的名次和多数", points=2,
    hint="负例是那些描述：每个组合一句训练句式的描述（\"一个紫色的十字\"）；要读的只有目标图，所以每一轮画一张目标图（第 k 轮用 draw_fn(颜色, 形状, k)）。"
         "问的是\"这张图是哪句话\"，所以 softmax 沿描述那一维，每张目标图一行；名次 = 这一行里比正确描述（第 0 句）概率严格更高的有几句，再加 1；"
         "多数 = 排第 1 的轮数超过一半（正好一半不算）。",
    reference=_library_probe,
    cases=_probe_cases,
    hidden=_probe_hidden,
    builds=BUILDS_PROBE,
    mutants=lambda: {
        "描述没有用训练数据的句式": _probe_mistake("caption"),
        "softmax 沿 dim=0（这句话是哪张图）": _probe_mistake("dim0"),
        "每轮把所有组合都画了，却读了前 rounds 行（那是第 0 轮各个组合的图）": _probe_mistake("all_pictures"),
        "每轮画的都是同一张图（第 0 轮）": _probe_mistake("same_render"),
        "轮次从 1 数起": _probe_mistake("from_one"),
        "返回的是 logit，不是概率": _probe_mistake("logit"),
        "名次从 0 数起": _probe_mistake("zero_based"),
        "用 >= 比较，把正确描述自己也数进去了": _probe_mistake("ge"),
        "用 >= 数、不再加 1（和正确描述一样高的描述被算成排在它前面）": _probe_mistake("ge_itself"),
        "只判断是不是第一，不数排第几": _probe_mistake("first_only"),
        "正好一半的轮排第 1 也算多数": _probe_mistake("half"),
        "多数看的是最常见的名次是不是 1": _probe_mistake("mode"),
        "多数只看第 0 轮": _probe_mistake("round0"),
        "返回的是张量，不是 float、int 的列表和 bool": _probe_mistake("tensors"),
    },
))
