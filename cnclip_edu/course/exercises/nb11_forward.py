"""Exercise 11.6 of notebook 11 (from CLIP to a chat model that sees): the VLM forward pass.

11.6 is the VLM forward pass, compared with the library's `encode_sample` + `collate` +
`MiniVLM.forward` (whose `embed_inputs` fills the `<IMG_CONTEXT>` slots) + `train.next_token_loss`:
chats and tile features in, the scalar loss out. The model is a small MiniVLM with sharp random
weights (init std 0.3) on a stand-in ViT (the exercise starts from tile features), so that an image
token one slot off, an unshifted label or a padded position in the loss each move the loss far
beyond the tolerance. Batches mix 1, 3 and 4 tiles and chats of different length (right padding).
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb11_common import _random_chats, _tiny_vlm


# ----------------------------------------------------------------------------- 11.6 the VLM forward pass
_MODEL = {}


def _forward_model():
    """11.6's model, built once: a small MiniVLM with sharp random weights (init std 0.3)."""
    if "m" not in _MODEL:
        _MODEL["m"] = _tiny_vlm()
    return _MODEL["m"]


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
    id="11.6", title="VLM 的前向：图像 token 放进对话，只在回答上算下一个 token 的损失", points=4,
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
