"""Exercise 11.9 of notebook 11 (from CLIP to a chat model that sees): greedy replies to a batch of prompts,
the image in the `<IMG_CONTEXT>` slots.

11.9 is compared with what the library's generation runs (`batches.prompt_batch` for the left-padded
prompts and the valid mask, `MiniVLM.embed_inputs` for the image, `Decoder.generate` for the greedy loop
with the KV cache), each reply cut before its first `<|im_end|>`. The model is 11.6's kind of small MiniVLM
with sharp random weights, its `<|im_end|>` embedding scaled by 1.4 so that some rows of a batch stop early
and others run to `max_new_tokens` (a stop rule one token off shows either way). Prompts differ in length
(left padding and the mask matter), in tiles (1, 3, 4) and in rounds (earlier answers in the history). The
case also reports the largest batch the decoder was called with: the prompts must go through together, as
one left-padded batch (one prompt at a time needs no padding at all and teaches nothing of it).
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb11_common import _random_chats, _tiny_vlm

_MODEL = {}
_EOS_SCALE = 1.4   # the end token's embedding (= its output row) scaled: some rows stop early, some run to the max


def _generate_model():
    """11.9's model, built once: 11.6's small MiniVLM, its end token scaled so replies stop at different steps."""
    if "m" not in _MODEL:
        import torch

        m = _tiny_vlm()
        with torch.no_grad():
            m.decoder.embed.weight[m.eos] *= _EOS_SCALE
        _MODEL["m"] = m
    return _MODEL["m"]


def _open(chats):
    """[(turns, n_tiles)] -> the same chats with the last answer removed: prompts waiting for the reply."""
    return [(list(turns[:-1]) + [(turns[-1][0], None)], n) for turns, n in chats]


def _feats(prompts, seed: int):
    import torch

    T = sum(n for _, n in prompts)
    return torch.randn(T, 4, 512, generator=torch.Generator().manual_seed(seed))   # (T, tokens per tile, 4D)


def _run(f, prompts, seed: int, max_new_tokens: int):
    """The answer's replies (lists of ints) and the largest batch the decoder saw in one call."""
    model = _generate_model()
    seen = []
    hook = model.decoder.register_forward_pre_hook(lambda mod, args: seen.append(int(args[0].shape[0])))
    try:
        replies = f(model, prompts, _feats(prompts, seed), max_new_tokens)
    finally:
        hook.remove()
    return {"回答（紧凑编号）": [[int(t) for t in r] for r in replies],
            "解码器一次处理的最多提示数": max(seen, default=0)}


_FIXED = [([("红色的是什么形状？", "圆形")], 1),
          ([("图中有几个图形？", "三个"), ("左边的是什么颜色？", "绿色"), ("它是大的还是小的？", "小的")], 4),
          ([("描述这张图片。", "左边是一个大的红色圆形，右边是一个小的蓝色菱形")], 3),
          ([("图中有黄色的十字吗？", "没有")], 1)]


def _generate_cases():
    rand = _open(_random_chats(random.Random(1), 8))
    return [Case("一个提示、一块图，最多 6 个 token", lambda f: _run(f, _open(_FIXED[:1]), 1, 6)),
            Case("4 个长短不同的提示（4、3、1、1 块图，有一段三轮对话），最多 10 个 token",
                 lambda f: _run(f, _open(_FIXED[1:] + _FIXED[:1]), 2, 10)),
            Case("8 个随机提示，有的很快说完、有的到上限，最多 10 个 token", lambda f: _run(f, rand, 1, 10)),
            Case("同样 8 个提示，最多 1 个 token", lambda f: _run(f, rand, 1, 1))]


def _generate_hidden(seed: int):
    rng = random.Random(seed)
    batch = _open(_random_chats(rng, rng.randint(4, 9)))
    single = _open(_random_chats(rng, 1))
    s, top, tiny = rng.randint(0, 10**6), rng.randint(6, 12), rng.choice((1, 2))
    return [Case("一批随机提示", lambda f: _run(f, batch, s, top)),
            Case("一个随机提示", lambda f: _run(f, single, s + 1, top)),
            Case("一批随机提示，上限很小", lambda f: _run(f, batch, s + 2, tiny))]


def _generate_reference(model, prompts, feats, max_new_tokens):
    from types import SimpleNamespace

    from cnclip_edu.mllm.batches import prompt_batch

    tiles = SimpleNamespace(n_tiles=[n for _, n in prompts])                      # what prompt_batch reads of a bank
    b = prompt_batch([(k, turns) for k, (turns, _) in enumerate(prompts)], tiles, model.vocab, model.tokens_per_tile)
    with __import__("torch").no_grad():
        new = model.decoder.generate(model.embed_inputs(b.ids, feats), b.valid, max_new_tokens, model.eos)
    rows = [r.tolist() for r in new]
    return [r[:r.index(model.eos)] if model.eos in r else r for r in rows]


def _generate_mistake(kind: str):
    def generate_reply(model, prompts, feats, max_new_tokens):
        import torch

        from cnclip_edu.mllm import chat

        if kind == "one_by_one":   # right replies, but no batch: one prompt at a time needs no padding
            starts = [sum(n for _, n in prompts[:k]) for k in range(len(prompts))]
            return [_generate_mistake("ok")(model, [p], feats[a: a + p[1]], max_new_tokens)[0]
                    for p, a in zip(prompts, starts)]
        rows = [model.vocab.to_compact(chat.encode_chat(chat.render_chat(t, n * model.tokens_per_tile)))
                for t, n in prompts]
        L = max(len(r) for r in rows)
        if kind == "right_pad":
            ids = torch.tensor([r + [0] * (L - len(r)) for r in rows])
        else:
            ids = torch.tensor([[0] * (L - len(r)) + r for r in rows])               # (B, L) left-padded
        valid = torch.ones_like(ids, dtype=torch.bool) if kind == "no_mask" else ids != 0
        x = model.decoder.embed(ids)
        if kind != "no_image":
            x = x.clone()
            x[ids == model.img_context] = model.projector(feats).reshape(-1, x.shape[-1])
        out = [[] for _ in prompts]
        done = [False] * len(prompts)
        steps = max_new_tokens + 1 if kind == "one_more" else max_new_tokens
        with torch.no_grad():
            for _ in range(steps):
                logits = model.decoder(x, valid)                                      # (B, L', V)
                if kind == "last_real":   # right padding's rule: the last real token at valid.sum() - 1
                    nxt = logits[torch.arange(len(rows)), valid.sum(1) - 1].argmax(-1)
                elif kind == "second_last":
                    nxt = logits[:, -2].argmax(-1)
                else:
                    nxt = logits[:, -1].argmax(-1)                                    # (B,)
                for k, t in enumerate(nxt.tolist()):
                    if done[k]:
                        continue
                    if t == model.eos and kind != "never_stop":
                        done[k] = True
                        if kind == "keep_end":
                            out[k].append(t)
                        continue
                    out[k].append(t)
                if all(done):
                    break
                x = torch.cat([x, model.decoder.embed(nxt)[:, None]], dim=1)
                valid = torch.cat([valid, torch.ones(len(rows), 1, dtype=torch.bool)], dim=1)
        return out
    return generate_reply


register(Exercise(
    id="11.9", title="生成回答：左侧填充、有效位置掩码、图像进占位符、贪心解码到结束标记", points=4,
    hint="提示按模板渲染（最后一轮的回答是 None，图像占位符个数 = 块数 × model.tokens_per_tile），换成紧凑编号，"
         "在左侧补 0 成一批，valid 标出不是填充的位置；词向量的 <IMG_CONTEXT> 位置换成投影后的图块特征（和练习 11.6 一样）。"
         "然后反复：解码器算整段（带 valid），取**最后一个位置**的 logits 的 argmax 作为每个提示的下一个 token，"
         "把它的词向量接到序列末尾、valid 接一个 True。某个提示生成了结束标记 model.eos 就停（结束标记不算进回答），"
         "一个提示最多生成 max_new_tokens 个 token（结束标记也算一个）。常见错误：右侧填充、valid 全是 True、"
         "取错了位置的 logits、忘了放图像、把结束标记留在回答里、多生成一个 token、遇到结束标记不停。",
    reference=_generate_reference,
    cases=_generate_cases,
    hidden=_generate_hidden,
    builds=("cnclip_edu.mllm.vlm.MiniVLM.generate", "cnclip_edu.mllm.decoder.Decoder.generate",
            "cnclip_edu.mllm.vlm.MiniVLM.embed_inputs", "cnclip_edu.mllm.batches.prompt_batch",
            "cnclip_edu.mllm.evaluate.answer_all", "cnclip_edu.mllm.evaluate.answer_text"),
    mutants=lambda: {
        "右侧填充（最后一个位置可能是填充）": _generate_mistake("right_pad"),
        "valid 全是 True：填充也被看见、位置编号也错开了": _generate_mistake("no_mask"),
        "取的是最后一个真实 token 的位置（右侧填充时的做法），左侧填充时不对": _generate_mistake("last_real"),
        "取了倒数第二个位置的 logits": _generate_mistake("second_last"),
        "忘了把图像特征放进 <IMG_CONTEXT> 位置": _generate_mistake("no_image"),
        "结束标记也留在了回答里": _generate_mistake("keep_end"),
        "多生成了一个 token（max_new_tokens + 1 步）": _generate_mistake("one_more"),
        "遇到结束标记不停，一直生成到上限": _generate_mistake("never_stop"),
        "一次只生成一个提示的回答（没有成批、也就没有填充）": _generate_mistake("one_by_one"),
    },
))
