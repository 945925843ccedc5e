"""Notebook 11 (from CLIP to a chat model that sees): the student writes the tiler's grid choice, the
pixel unshuffle, the answer-only labels, the VLM forward pass and what each training stage trains.

11.1 is compared with `mllm.tiling.find_closest_aspect_ratio` (InternVL's rule; tests/test_mllm_tiling.py
checks it against transformers' port on thousands of sizes). The cases hold exact ties between
grids of the same ratio and of different ratios, an area exactly equal to half a grid's pixels (so
`>=` instead of `>` shows), elongated and tall images, and the course's own canvases.

11.2 is compared with `mllm.projector.pixel_unshuffle` (equal to transformers' InternVL
`pixel_shuffle`): a hand-sized 4x4 grid, the course's (2, 4, 4, 128), a non-square grid and
InternViT's 32x32. Random values, so any wrong channel or token order shows.

11.3 is compared with `mllm.chat.assistant_labels` on real chats rendered with the course template:
one round with image tokens, three rounds, an open prompt (no reply yet) and a reply cut short.

11.4 is the VLM forward pass, compared with the library's `encode_sample` + `collate` +
`MiniVLM.forward` (whose `embed_inputs` fills the `<IMG_CONTEXT>` slots) + `train.next_token_loss`:
chats and tile features in, the scalar loss out. The model is a small MiniVLM with sharp random
weights (init std 0.3) on a stand-in ViT (the exercise starts from tile features), so that an image
token one slot off, an unshifted label or a padded position in the loss each move the loss far
beyond the tolerance. Batches mix 1, 3 and 4 tiles and chats of different length (right padding).

11.5 is what each training stage trains, compared with `mllm.train.set_trainable`: sequences of calls on one
model (so a part left trainable by the previous stage shows), a model with the per-tile vector `tile_pos`
(part of the projector), and a misspelt part name that must raise. The case records each call's returned
count and the trainable parameters of every part after it.
"""
from __future__ import annotations

import random

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


def _grid_hidden(seed: int):
    from cnclip_edu.mllm.tiling import candidate_grids

    rng = random.Random(seed)
    size = rng.choice((448, 32, 6, 4))
    lo, hi = rng.choice(((1, 12), (1, 6), (2, 12)))
    ties = []
    for _ in range(3):   # sizes whose ratio equals a grid's ratio: ties between grids of one ratio
        cols, rows = rng.choice(((1, 1), (2, 1), (1, 2), (3, 2), (2, 3)))
        k = rng.randint(1, 3)
        ties.append((cols * k * size // 2 or 1, rows * k * size // 2 or 1))
    free = [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(4)]

    def run(f, sizes):
        return [tuple(f(w / h, candidate_grids(lo, hi), w, h, size)) for w, h in sizes]

    k = rng.randint(1, 40)   # 9k x 8k against 2x2 tiles of 6k, 8k x 9k against 3x3 of 4k: area exactly half the grid

    def half(f):
        return [tuple(f(w / h, candidate_grids(1, 12), w, h, t)) for w, h, t in ((9 * k, 8 * k, 6 * k), (8 * k, 9 * k, 4 * k))]

    return [Case("宽高比与网格恰好相同（平局）", lambda f: run(f, ties)), Case("随机尺寸", lambda f: run(f, free)),
            Case("面积恰好等于网格像素的一半", half)]


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
    hidden=_grid_hidden,
    builds=("cnclip_edu.mllm.tiling.find_closest_aspect_ratio",),
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


def _unshuffle_hidden(seed: int):
    import torch

    rng = random.Random(seed)
    shapes = [(rng.randint(1, 3), 2 * rng.randint(1, 4), 2 * rng.randint(1, 4), rng.randint(1, 8)) for _ in range(2)]
    gen_seed = rng.randint(0, 10**6)
    return [Case("随机形状 (N, H, W, D)", lambda f, shape=shape, k=k: f(torch.randn(
        *shape, generator=torch.Generator().manual_seed(gen_seed + k)))) for k, shape in enumerate(shapes)]


def _unshuffle_cases():
    return [Case(label, lambda f, make=make: f(make())) for label, make in _grids()]


def _unshuffle_mistake(kind: str):
    def pixel_unshuffle(x):
        import torch.nn.functional as F

        N, H, W, D = x.shape
        if kind == "torch":  # the same numbers, torch's channel order (d*4 + position)
            return F.pixel_unshuffle(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)
        if kind == "reshape_only":  # no permute: groups 4 neighbours along a row, not a 2x2 neighbourhood
            return x.reshape(N, H // 2, W // 2, 4 * D)
        y = x.reshape(N, H // 2, 2, W // 2, 2, D)
        if kind == "col_major":  # order within the neighbourhood top-left, bottom-left, top-right, bottom-right
            return y.permute(0, 1, 3, 4, 2, 5).reshape(N, H // 2, W // 2, 4 * D)
        if kind == "transposed":  # output grid (W/2, H/2)
            return y.permute(0, 3, 1, 2, 4, 5).reshape(N, W // 2, H // 2, 4 * D)
        return y.permute(0, 1, 3, 2, 4, 5).reshape(N, H // 2, W // 2, 4 * D)
    return pixel_unshuffle


register(Exercise(
    id="11.2", title="像素重排 (pixel unshuffle, 0.5)", points=2,
    hint="x 形状 (N, H, W, D)。把行号拆成 (2×2 邻域的行, 邻域内第几行)、列号拆成 (邻域的列, 邻域内第几列)，"
         "再调换维度的顺序，让两个“邻域内”的维挨在一起、排在 D 前面，最后把它们和 D 并成一维。"
         "每个新 token 依次是左上、右上、左下、右下四个 patch 的特征。常见错误：不做 permute 直接 reshape（拼的是同一行相邻的 4 个 patch）、"
         "用 torch 的 F.pixel_unshuffle（通道顺序不同）、邻域内顺序写成先列后行。",
    reference=_unshuffle_reference,
    cases=_unshuffle_cases,
    hidden=_unshuffle_hidden,
    builds=("cnclip_edu.mllm.projector.pixel_unshuffle", "cnclip_edu.mllm.projector.tile_tokens"),
    mutants=lambda: {
        "用 F.pixel_unshuffle（通道按 d*4 + 位置 排列）": _unshuffle_mistake("torch"),
        "没有 permute，直接 reshape": _unshuffle_mistake("reshape_only"),
        "邻域内顺序先列后行": _unshuffle_mistake("col_major"),
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


def _labels_hidden(seed: int):
    from cnclip_edu.mllm.chat import encode_chat, render_chat

    rng = random.Random(seed)
    cases = []
    for kind in ("随机的多轮对话", "等待生成的提示", "被截断的回答"):
        turns, n_tiles = _random_chats(rng, 1)[0]
        if kind == "等待生成的提示":
            turns = turns[:-1] + [(turns[-1][0], None)]
        ids = encode_chat(render_chat(turns, n_image_tokens=4 * n_tiles))
        if kind == "被截断的回答":
            ids = ids[:-rng.randint(1, 2)]
        cases.append(Case(kind, lambda f, ids=ids: list(f(list(ids)))))
    return cases


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
    hidden=_labels_hidden,
    builds=("cnclip_edu.mllm.chat.assistant_labels", "cnclip_edu.mllm.batches.encode_sample"),
    mutants=lambda: {
        "漏了回答末尾的 <|im_end|>": _labels_mistake("no_end"),
        "把助手的开头也算进标签": _labels_mistake("with_header"),
        "从开头的最后一个 token 起就算": _labels_mistake("off_by_one"),
        "进入回答后不再离开": _labels_mistake("never_stop"),
        "所有 token 都算（语言模型预训练的标签）": _labels_mistake("all"),
    },
))


# ----------------------------------------------------------------------------- 11.4 the VLM forward pass
class _StandInViT:
    """What MiniVLM reads of a course ViT (4 blocks, a 4x4 grid, width 128) without building one: the
    exercise starts from tile features, so the tower itself never runs."""

    def __new__(cls):
        from torch import nn

        v = nn.Module()
        v.transformer = nn.Module()
        v.transformer.resblocks = nn.ModuleList(nn.Identity() for _ in range(4))
        v.conv1 = nn.Conv2d(3, 128, 8, 8, bias=False)
        v.grid_size = 4
        return v


_MODEL = {}


def _forward_model():
    """A small MiniVLM with sharp random weights (init std 0.3): a token moved by one slot changes the loss."""
    if "m" not in _MODEL:
        import torch

        from cnclip_edu.mllm import world as W
        from cnclip_edu.mllm.chat import ChatVocab
        from cnclip_edu.mllm.decoder import DecoderConfig
        from cnclip_edu.mllm.vlm import MiniVLM, VLMConfig

        with torch.random.fork_rng():
            torch.manual_seed(11)
            cfg = VLMConfig(select_layer=-4, decoder=DecoderConfig(vocab_size=0, width=32, layers=2, heads=2,
                                                                   mlp_hidden=64, init_std=0.3))
            _MODEL["m"] = MiniVLM(_StandInViT(), ChatVocab.from_texts(W.vocabulary_texts()), cfg).eval()
    return _MODEL["m"]


def _tiles_of(cells: int) -> int:
    return 1 if cells == 1 else cells + 1   # 1 cell: one tile; 2-3 cells: a tile per cell + the thumbnail


def _random_chats(rng: random.Random, n: int) -> list:
    from cnclip_edu.mllm import world as W

    combos = W.WorldConfig().seen()
    chats = []
    for k in range(n):
        cv = W.sample_canvas(rng, combos)
        if rng.random() < 0.25:
            turns = [(W.CAPTION_PROMPT, W.caption(cv))]
        else:
            turns = W.conversation(rng, k, cv, combos, rng.choice((1, 2, 3))).turns
        chats.append((turns, _tiles_of(cv.cells)))
    return chats


def _feats(chats, seed: int):
    import torch

    T = sum(n for _, n in chats)
    return torch.randn(T, 4, 512, generator=torch.Generator().manual_seed(seed))   # (T, tokens per tile, 4D)


_FIXED_CHATS = {
    "one": [([("红色的是什么形状？", "圆形")], 1)],
    "batch": [([("图中有几个图形？", "三个"), ("左边的是什么颜色？", "绿色"), ("它是大的还是小的？", "小的")], 4),
              ([("描述这张图片。", "左边是一个大的红色圆形，右边是一个小的蓝色菱形")], 3),
              ([("图中有黄色的十字吗？", "没有")], 1)],
}


def _forward_cases():
    def run(f, chats, seed):
        return f(_forward_model(), chats, _feats(chats, seed))

    rng_chats = _random_chats(random.Random(5), 5)
    return [Case("一段对话、一块图（4 个图像 token）", lambda f: run(f, _FIXED_CHATS["one"], 1)),
            Case("3 段长短不同的对话：4 块、3 块、1 块图（右侧填充）", lambda f: run(f, _FIXED_CHATS["batch"], 2)),
            Case("5 段随机生成的对话（玩具世界的问题、描述、多轮）", lambda f: run(f, rng_chats, 3))]


def _forward_hidden(seed: int):
    rng = random.Random(seed)
    chats = _random_chats(rng, rng.randint(2, 6))
    single = _random_chats(rng, 1)
    s = rng.randint(0, 10**6)
    return [Case("一批随机对话", lambda f: f(_forward_model(), chats, _feats(chats, s))),
            Case("一段随机对话", lambda f: f(_forward_model(), single, _feats(single, s + 1)))]


def _forward_reference(model, chats, feats):
    from cnclip_edu.mllm.batches import collate, encode_sample
    from cnclip_edu.mllm.train import next_token_loss

    b = collate([(*encode_sample(turns, n_tiles * model.tokens_per_tile, model.vocab), 0) for turns, n_tiles in chats])
    return next_token_loss(model(b.ids, b.valid, feats), b.labels)


def _forward_mistake(kind: str):
    def vlm_loss(model, chats, feats):
        import torch
        import torch.nn.functional as F

        from cnclip_edu.mllm import chat

        per_tile = model.vision.grid ** 2 if kind == "patches_per_tile" else model.tokens_per_tile
        rows, targets = [], []
        for turns, n_tiles in chats:
            tok = chat.encode_chat(chat.render_chat(turns, n_image_tokens=n_tiles * per_tile))
            rows.append(model.vocab.to_compact(tok))
            labels = chat.assistant_labels(tok) if kind != "all_tokens" else tok
            targets.append([t if t == chat.IGNORE_INDEX else model.vocab.index[t] for t in labels])
        L = max(len(r) for r in rows)
        pad_label = 0 if kind == "pad_label_zero" else chat.IGNORE_INDEX
        ids = torch.tensor([r + [0] * (L - len(r)) for r in rows])
        labels = torch.tensor([t + [pad_label] * (L - len(t)) for t in targets])
        x = model.decoder.embed(ids)
        img = model.projector(feats).reshape(-1, x.shape[-1])
        slots = ids == model.img_context
        if kind == "slot_off_by_one":   # the image starts one position late (the last token lands on </img>)
            slots = torch.roll(slots, 1, dims=1)
        x = x.clone()
        x[slots] = img
        logits = model.decoder(x, ids != 0)
        V = logits.shape[-1]
        if kind == "no_shift":
            return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=chat.IGNORE_INDEX)
        ignore = 0 if kind == "ignore_pad_id" else chat.IGNORE_INDEX
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=ignore)
    return vlm_loss


register(Exercise(
    id="11.4", title="VLM 的前向：图像 token 放进对话，只在回答上算下一个 token 的损失", points=4,
    hint="三步：(1) 每段对话用 render_chat 渲染，图像占位符的个数 = 块数 × 每块的 token 数（像素重排之后的，不是 patch 数），"
         "encode_chat 得到 id，assistant_labels 得到标签，都换成紧凑编号，右侧填充（填充的标签必须是 IGNORE_INDEX）；"
         "(2) 先把所有 id 过词向量层，再把投影器的输出按顺序写进值等于 <IMG_CONTEXT> 的那些位置（恰好这些位置，一个不多一个不少）；"
         "(3) 位置 t 的输出预测的是第 t+1 个 token：logits 去掉最后一个位置、labels 去掉第一个位置再算交叉熵，"
         "忽略 IGNORE_INDEX 的位置。常见错误：标签没有错开一位、所有 token 都算损失、图像特征错开了一个位置、"
         "每块的占位符个数写成 patch 数、填充位置的标签写成 0、ignore_index 写成填充的 id。",
    reference=_forward_reference,
    cases=_forward_cases,
    hidden=_forward_hidden,
    builds=("cnclip_edu.mllm.vlm.MiniVLM.embed_inputs", "cnclip_edu.mllm.vlm.MiniVLM.forward",
            "cnclip_edu.mllm.train.next_token_loss", "cnclip_edu.mllm.batches.encode_sample",
            "cnclip_edu.mllm.batches.collate", "cnclip_edu.mllm.batches.train_batch"),
    mutants=lambda: {
        "标签没有错开一位（位置 t 预测自己）": _forward_mistake("no_shift"),
        "所有 token 都算损失（图像占位符、问题也算）": _forward_mistake("all_tokens"),
        "图像特征按顺序放了，但整体错后一个位置": _forward_mistake("slot_off_by_one"),
        "每块的占位符个数写成 patch 数（16），不是像素重排后的 4": _forward_mistake("patches_per_tile"),
        "填充位置的标签写成 0（填充的 id），于是也算进了损失": _forward_mistake("pad_label_zero"),
        "ignore_index 写成填充的 id 0": _forward_mistake("ignore_pad_id"),
    },
))


# ----------------------------------------------------------------------------- 11.5 what each stage trains
def _stage_model(tile_embed: bool):
    """A fresh small MiniVLM per case (its requires_grad flags are the case's state), optionally with the
    per-tile vector `tile_pos`, which belongs to the projector's part."""
    import torch

    from cnclip_edu.mllm import world as W
    from cnclip_edu.mllm.chat import ChatVocab
    from cnclip_edu.mllm.decoder import DecoderConfig
    from cnclip_edu.mllm.vlm import MiniVLM, VLMConfig

    with torch.random.fork_rng():
        torch.manual_seed(5)
        cfg = VLMConfig(select_layer=-4, tile_embed=tile_embed,
                        decoder=DecoderConfig(vocab_size=0, width=32, layers=2, heads=2, mlp_hidden=64))
        return MiniVLM(_StandInViT(), ChatVocab.from_texts(W.vocabulary_texts()), cfg)


def _stage_run(f, calls, tile_embed: bool = False):
    """Call f(model, parts) for each parts in order on one model; after each call record the count it returned
    (or the exception's type) and, per part, how many of its parameters are trainable."""
    m = _stage_model(tile_embed)
    groups = {"vit": [m.vision], "projector": [m.projector], "decoder": [m.decoder], "tile_pos": [m.tile_pos]}
    out = []
    for parts in calls:
        try:
            got = int(f(m, tuple(parts)))
        except NotImplementedError:
            raise                   # the stub: not attempted yet
        except Exception as e:  # noqa: BLE001 - the type is the answer (ValueError expected for unknown parts)
            got = type(e).__name__
        flags = {k: sum(p.numel() for mod in mods if mod is not None for p in mod.parameters() if p.requires_grad)
                 for k, mods in groups.items()}
        out.append((got, flags))
    return out


_RECIPE_CALLS = [("decoder",), ("projector",), ("projector", "decoder")]   # stages 0, 1, 2


def _stage_cases():
    return [Case("配方的三个阶段依次在同一个模型上调用：decoder → projector → projector + decoder",
                 lambda f: _stage_run(f, _RECIPE_CALLS)),
            Case("先全部训练，再只训练 ViT，再全部冻结（空元组）",
                 lambda f: _stage_run(f, [("vit", "projector", "decoder"), ("vit",), ()])),
            Case("模型带每个图块的位置向量 tile_pos（属于 projector）：projector → decoder",
                 lambda f: _stage_run(f, [("projector",), ("decoder",)], tile_embed=True)),
            Case("名字写错（\"llm\"）要报 ValueError，之后照常工作",
                 lambda f: _stage_run(f, [("projector",), ("llm",), ("decoder", "vit")]))]


def _stage_hidden(seed: int):
    rng = random.Random(seed)
    names = ("vit", "projector", "decoder")
    calls = [tuple(n for n in names if rng.random() < 0.5) for _ in range(rng.randint(3, 5))]
    bad = list(calls)
    bad.insert(rng.randrange(1, len(bad)), (rng.choice(names), rng.choice(("llm", "ViT", "mlp"))))
    emb = rng.random() < 0.5
    return [Case("随机的一串调用", lambda f: _stage_run(f, calls, tile_embed=emb)),
            Case("随机的一串调用，其中一次有写错的名字", lambda f: _stage_run(f, bad, tile_embed=not emb))]


def _stage_reference(model, parts):
    from cnclip_edu.mllm.train import set_trainable

    return set_trainable(model, parts)


def _stage_mistake(kind: str):
    def set_trainable(model, parts):
        known = ("vit", "projector", "decoder")
        if kind != "no_check" and any(p not in known for p in parts):
            raise ValueError(f"unknown parts {parts}")
        extra = [] if kind == "no_tile_pos" else [getattr(model, "tile_pos", None)]
        modules = {"vit": [model.vision], "projector": [model.projector, *extra], "decoder": [model.decoder]}
        for name, mods in modules.items():
            for mod in mods:
                for p in (mod.parameters() if mod is not None else ()):
                    if name in parts:
                        p.requires_grad_(True)
                    elif kind != "only_unfreeze":
                        p.requires_grad_(False)
        if kind == "count_all":
            return sum(p.numel() for p in model.parameters())
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return set_trainable


register(Exercise(
    id="11.5", title="每个阶段训练哪些部分 (set_trainable)", points=2,
    hint="每次调用都要把三个部分的每个参数都设一遍：列出的部分 requires_grad=True，没列出的 False——只打开不关闭的话，"
         "上一个阶段打开的部分会一直开着。tile_pos（若有）算在 projector 里。返回的是此刻 requires_grad 为 True 的参数个数，"
         "不是全部参数。名字不在 vit / projector / decoder 里时报 ValueError（拼错的名字不能悄悄地把所有部分都冻结）。",
    reference=_stage_reference,
    cases=_stage_cases,
    hidden=_stage_hidden,
    builds=("cnclip_edu.mllm.train.set_trainable",),
    mutants=lambda: {
        "只把列出的部分打开，不关掉没列出的（上一阶段的状态留下来）": _stage_mistake("only_unfreeze"),
        "返回全部参数的个数，而不是可训练的": _stage_mistake("count_all"),
        "忘了 tile_pos（它属于 projector）": _stage_mistake("no_tile_pos"),
        "名字写错时不报错": _stage_mistake("no_check"),
    },
))
