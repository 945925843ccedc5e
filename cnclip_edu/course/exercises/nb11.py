"""Notebook 11 (from CLIP to a chat model that sees): the student writes the tiler's grid choice, the
pixel unshuffle and the answer-only labels.

11.1 is compared with `mllm.tiling.find_closest_aspect_ratio` (InternVL's rule; tests/test_mllm_tiling.py
checks it against transformers' port on thousands of sizes). The cases hold exact ties between
grids of the same ratio and of different ratios, an area exactly equal to half a grid's pixels (so
`>=` instead of `>` shows), elongated and tall images, and the course's own canvases.

11.2 is compared with `mllm.projector.pixel_unshuffle` (equal to transformers' InternVL
`pixel_shuffle`): a hand-sized 4x4 grid, the course's (2, 4, 4, 128), a non-square grid and
InternViT's 32x32. Random values, so any wrong channel or token order shows.

11.3 is compared with `mllm.chat.assistant_labels` on real chats rendered with the course template:
one round with image tokens, three rounds, an open prompt (no reply yet) and a reply cut short.
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 11.1 grid choice
_GRID_SIZES = [  # (width, height, min_num, max_num, tile size, what it shows)
    (800, 600, 1, 12, 448, "800×600，最多 12 块"),
    (448, 448, 1, 12, 448, "448×448：正好一块"),
    (634, 634, 1, 12, 448, "634×634：面积刚过 2×2 网格像素的一半"),
    (633, 633, 1, 12, 448, "633×633：面积差一点不够"),
    (875, 700, 1, 6, 448, "875×700：比例 1.25 与 1×1、2×2、3×2 同样接近"),
    (865, 692, 1, 6, 448, "865×692：同上，面积只够 2×2"),
    (9, 8, 1, 6, 6, "9×8、块边长 6：面积恰好等于 2×2 网格像素的一半"),
    (8, 9, 1, 12, 4, "8×9、块边长 4：面积恰好等于 3×3 网格像素的一半"),
    (10, 90, 1, 12, 448, "10×90 的细长条"),
    (1200, 300, 1, 12, 448, "1200×300 的宽图"),
    (96, 32, 1, 12, 32, "课程画布：3 格，96×32"),
    (500, 400, 2, 6, 448, "500×400，至少 2 块"),
]


def _grid_cases():
    from cnclip_edu.mllm.tiling import candidate_grids

    groups = [_GRID_SIZES[0:4], _GRID_SIZES[4:8], _GRID_SIZES[8:12]]
    labels = ["800×600、448×448、634×634、633×633", "平局：875×700、865×692、9×8、8×9（面积恰为一半）",
              "10×90、1200×300、96×32（块边长 32）、500×400（至少 2 块）"]

    def run(f, group):
        return [tuple(f(w / h, candidate_grids(lo, hi), w, h, s)) for w, h, lo, hi, s, _ in group]

    return [Case(label, lambda f, g=g: run(f, g)) for label, g in zip(labels, groups)]


def _grid_reference(aspect_ratio, target_ratios, width, height, image_size):
    from cnclip_edu.mllm.tiling import find_closest_aspect_ratio

    return find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size)


def _grid_mistake(kind: str):
    def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
        best, best_diff = (1, 1), float("inf")
        area = width * height
        for cols, rows in target_ratios:
            diff = abs(aspect_ratio - (rows / cols if kind == "inverted" else cols / rows))
            half = (1.0 if kind == "no_half" else 0.5) * image_size ** 2 * cols * rows
            more = {"always": True, "never": False, "ge": area >= half}.get(kind, area > half)
            if diff < best_diff:
                best, best_diff = (cols, rows), diff
            elif diff == best_diff and more:
                best = (cols, rows)
        return best
    return find_closest_aspect_ratio


register(Exercise(
    id="11.1", title="动态切块：选网格 (find_closest_aspect_ratio)", points=2,
    hint="对每个候选 (cols, rows)（已按块数从少到多排好）算 diff = |图片宽高比 - cols/rows|；diff 更小就换成它；"
         "diff 恰好相等（平局）时，只有当图片面积 width*height **大于**（不是大于等于）这个网格像素的一半 "
         "0.5 * image_size**2 * cols * rows 时才换成这个块数更多的网格。常见错误：把比例写成 rows/cols、"
         "平局时总是换（或总是不换）、忘了那个 0.5、用了 >=。",
    reference=_grid_reference,
    cases=_grid_cases,
    mutants=lambda: {
        "比例写成 rows / cols": _grid_mistake("inverted"),
        "平局时总是换成块数多的网格": _grid_mistake("always"),
        "平局时从不换": _grid_mistake("never"),
        "面积条件用了 >=": _grid_mistake("ge"),
        "面积条件忘了 0.5": _grid_mistake("no_half"),
    },
))


# ----------------------------------------------------------------------------- 11.2 pixel unshuffle
def _unshuffle_reference(x):
    from cnclip_edu.mllm.projector import pixel_unshuffle

    return pixel_unshuffle(x, 0.5)


def _grids():
    import torch

    def rand(*shape, seed):  # the same values every call: the answer and the reference see one input
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))

    return [("4×4 网格、1 个通道，值 = 行×4 + 列", lambda: torch.arange(16.0).reshape(1, 4, 4, 1)),
            ("课程 ViT：2 个图块的 (4, 4, 128)", lambda: rand(2, 4, 4, 128, seed=1)),
            ("非正方形网格 (4, 8, 3)", lambda: rand(1, 4, 8, 3, seed=2)),
            ("InternViT-300M：(32, 32, 16)（通道取 16 以便比较）", lambda: rand(1, 32, 32, 16, seed=3))]


def _unshuffle_cases():
    return [Case(label, lambda f, make=make: f(make())) for label, make in _grids()]


def _unshuffle_mistake(kind: str):
    def pixel_unshuffle(x):
        import torch.nn.functional as F

        N, H, W, D = x.shape
        if kind == "torch":  # the same numbers, torch's channel order (d*4 + position)
            return F.pixel_unshuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        if kind == "reshape_only":  # no permute: groups 4 neighbours along a row, not a 2x2 block
            return x.reshape(N, H // 2, W // 2, 4 * D)
        y = x.reshape(N, H // 2, 2, W // 2, 2, D)
        if kind == "col_major":  # block order top-left, bottom-left, top-right, bottom-right
            return y.permute(0, 1, 3, 4, 2, 5).reshape(N, H // 2, W // 2, 4 * D)
        if kind == "transposed":  # output grid (W/2, H/2)
            return y.permute(0, 3, 1, 2, 4, 5).reshape(N, W // 2, H // 2, 4 * D)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(N, H // 2, W // 2, 4 * D)
    return pixel_unshuffle


register(Exercise(
    id="11.2", title="像素重排 (pixel unshuffle, 0.5)", points=2,
    hint="x 形状 (N, H, W, D)。先 reshape 成 (N, H/2, 2, W/2, 2, D)：把行号拆成 (块的行, 块内第几行)、列号拆成 (块的列, 块内第几列)；"
         "再 permute(0, 1, 3, 2, 4, 5) 把两个“块内”维放到一起，得到 (N, H/2, W/2, 2, 2, D)；最后 reshape 成 (N, H/2, W/2, 4*D)。"
         "每个新 token 依次是左上、右上、左下、右下四个 patch 的特征。常见错误：不做 permute 直接 reshape（拼的是同一行相邻的 4 个 patch）、"
         "用 torch 的 F.pixel_unshuffle（通道顺序不同）、块内顺序写成先列后行。",
    reference=_unshuffle_reference,
    cases=_unshuffle_cases,
    mutants=lambda: {
        "用 F.pixel_unshuffle（通道按 d*4 + 位置 排列）": _unshuffle_mistake("torch"),
        "没有 permute，直接 reshape": _unshuffle_mistake("reshape_only"),
        "块内顺序先列后行": _unshuffle_mistake("col_major"),
        "输出网格转置成 (W/2, H/2)": _unshuffle_mistake("transposed"),
    },
))


# ----------------------------------------------------------------------------- 11.3 answer-only labels
def _labels_reference(ids):
    from cnclip_edu.mllm.chat import assistant_labels

    return assistant_labels(ids)


def _chats():
    from cnclip_edu.mllm.chat import encode_chat, render_chat

    one = encode_chat(render_chat([("红色的是什么形状？", "圆形")], n_image_tokens=4))
    three = encode_chat(render_chat([("图中有几个图形？", "两个"), ("左边的是什么颜色？", "红色"),
                                     ("它是大的还是小的？", "大的")], n_image_tokens=12))
    caption = encode_chat(render_chat([("描述这张图片。", "左边是一个大的红色圆形，右边是一个小的蓝色菱形")],
                                      n_image_tokens=12))
    open_prompt = encode_chat(render_chat([("图中有几个图形？", "一个"), ("它是什么颜色？", None)], n_image_tokens=4))
    return [("一轮问答（4 个图像 token）", one), ("三轮对话", three), ("一句描述", caption),
            ("还没有回答的提示（最后一轮等待生成）", open_prompt), ("回答被截断（没有 <|im_end|>）", three[:-3])]


def _labels_cases():
    return [Case(label, lambda f, ids=ids: list(f(list(ids)))) for label, ids in _chats()]


def _labels_mistake(kind: str):
    def assistant_labels(ids):
        from cnclip_edu.mllm.chat import ASSISTANT_HEADER, IGNORE_INDEX, IM_END_ID

        n = len(ASSISTANT_HEADER)
        labels = [IGNORE_INDEX] * len(ids)
        if kind == "all":
            return list(ids)
        inside = False
        for t, tok in enumerate(ids):
            at_header_end = t + 1 >= n and tuple(ids[t + 1 - n: t + 1]) == ASSISTANT_HEADER
            if kind == "with_header" and at_header_end:
                for u in range(t + 1 - n, t + 1):
                    labels[u] = ids[u]
            if inside:
                if tok == IM_END_ID:
                    if kind != "no_end":
                        labels[t] = tok
                    if kind != "never_stop":
                        inside = False
                    continue
                labels[t] = tok
            elif at_header_end:
                inside = True
                if kind == "off_by_one":
                    labels[t] = tok
        return labels
    return assistant_labels


register(Exercise(
    id="11.3", title="只在回答上算损失 (answer-only labels)", points=2,
    hint="从头扫一遍 ids：刚读完助手的开头 ASSISTANT_HEADER（<|im_start|> as ##sis ##tant 这 4 个 id）之后进入“回答”，"
         "回答里的每个 id 都照抄成标签，包括结束它的 <|im_end|>（模型要学会停下）；读到 <|im_end|> 就离开回答。"
         "其他位置（图像、问题、开头本身）都是 IGNORE_INDEX (-100)。常见错误：漏了 <|im_end|>、把开头也算进去、"
         "从开头的最后一个 token 就开始算、进入回答后不再离开（把后面的问题也算进去）、所有 token 都算。",
    reference=_labels_reference,
    cases=_labels_cases,
    mutants=lambda: {
        "漏了回答末尾的 <|im_end|>": _labels_mistake("no_end"),
        "把助手的开头也算进标签": _labels_mistake("with_header"),
        "从开头的最后一个 token 起就算": _labels_mistake("off_by_one"),
        "进入回答后不再离开": _labels_mistake("never_stop"),
        "所有 token 都算（语言模型预训练的标签）": _labels_mistake("all"),
    },
))
