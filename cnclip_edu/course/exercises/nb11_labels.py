"""Exercise 11.4 of notebook 11 (from CLIP to a chat model that sees): the answer-only labels.

11.4 is compared with `mllm.chat.assistant_labels` on real chats rendered with the course template:
one round with image tokens, three rounds, an open prompt (no reply yet) and a reply cut short.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb11_common import _random_chats


# ----------------------------------------------------------------------------- 11.4 answer-only labels
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
    id="11.4", title="只在回答上算损失 (answer-only labels)", points=2,
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
