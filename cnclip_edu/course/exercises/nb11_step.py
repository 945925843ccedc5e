"""Exercise 11.8 of notebook 11 (from CLIP to a chat model that sees): one training step.

The student writes `train_step(model, opt, batch, feats, lr)`: the body of `mllm.train.train_stage`'s loop for
one batch -- forward with the image features, the next-token loss on the reply tokens (shifted by one), every
parameter group's learning rate set to `lr`, zero the gradients, backward, clip the gradient norm to 1.0,
the optimizer's step -- returning the loss as a float. The reference is that loop's body, written with the
library's `next_token_loss` and the same clip. A case runs a few steps on a copy of 11.6's sharp random
MiniVLM (projector and decoder trainable) and compares the returned losses and the weights afterwards.
One case uses plain SGD, where a missing clip (the gradient norm is far above 1), gradients left from the last
step or a learning rate that was not set change the update directly; the other uses train_stage's AdamW.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb11_common import _random_chats, _tiny_vlm

_MODEL = {}


def _step_reference(model, opt, batch, feats, lr):
    import torch

    from cnclip_edu.mllm.train import next_token_loss

    loss = next_token_loss(model(batch.ids, batch.valid, feats), batch.labels)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    return loss.item()


def _batches(chat_seed: int, n_steps: int):
    """n_steps batches of 3 random chats each (right-padded by the library's collate) and their tile features."""
    import torch

    from cnclip_edu.mllm.batches import collate, encode_sample

    model = _base()
    rng = random.Random(chat_seed)
    out = []
    for k in range(n_steps):
        chats = _random_chats(rng, 3)
        b = collate([(*encode_sample(turns, n * model.tokens_per_tile, model.vocab), 0) for turns, n in chats])
        T = sum(n for _, n in chats)
        out.append((b, torch.randn(T, 4, 512, generator=torch.Generator().manual_seed(chat_seed * 100 + k))))
    return out


def _base():
    if "m" not in _MODEL:
        _MODEL["m"] = _tiny_vlm()
    return _MODEL["m"]


def _run(f, optimizer: str, lrs: tuple, chat_seed: int):
    """Steps of f on a fresh copy of the model; -> the returned losses and the trained weights afterwards."""
    import copy

    import torch

    model = copy.deepcopy(_base()).train()
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith("vision."))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.SGD(params, lr=1.0) if optimizer == "sgd" else
           torch.optim.AdamW(params, lr=1.0, betas=(0.9, 0.98), weight_decay=0.01))
    losses = [f(model, opt, b, feats, lr) for (b, feats), lr in zip(_batches(chat_seed, len(lrs)), lrs)]
    return ([float(v) for v in losses], model.projector.fc2.weight.detach().clone(),
            model.decoder.blocks[0].attn.qkv.weight.detach().clone())


def _step_cases():
    return [Case("SGD，两步（学习率 0.05、0.02）", lambda f: _run(f, "sgd", (0.05, 0.02), 1)),
            Case("AdamW（和 train_stage 一样的设置），三步，学习率先升后降", lambda f: _run(f, "adamw", (3e-4, 1e-3, 5e-4), 2))]


def _step_hidden(seed: int):
    rng = random.Random(seed)
    s = rng.randint(3, 10**5)
    return [Case("SGD，随机的批", lambda f: _run(f, "sgd", (0.03, 0.04), s)),
            Case("AdamW，随机的批", lambda f: _run(f, "adamw", (1e-3, 2e-3), s + 1))]


def _step_mistake(kind: str):
    def train_step(model, opt, batch, feats, lr):
        import torch
        import torch.nn.functional as F

        from cnclip_edu.mllm.chat import IGNORE_INDEX

        logits = model(batch.ids, batch.valid, feats)
        V = logits.shape[-1]
        if kind == "no_shift":
            loss = F.cross_entropy(logits.reshape(-1, V), batch.labels.reshape(-1), ignore_index=IGNORE_INDEX)
        else:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), batch.labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)
        if kind != "lr_not_set":
            for g in opt.param_groups:
                g["lr"] = lr
        params = [p for p in model.parameters() if p.requires_grad]
        if kind == "clip_before_backward":
            opt.zero_grad()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            loss.backward()
        elif kind == "zero_grad_after_backward":
            loss.backward()
            opt.zero_grad()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        else:
            if kind != "no_zero_grad":
                opt.zero_grad()
            loss.backward()
            if kind != "no_clip":
                torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()
    return train_step


register(Exercise(
    id="11.8", title="一步训练：前向、错开一位的损失、清零、反向、梯度裁剪、更新", points=2,
    hint="顺序是：前向得到 logits → 错开一位的交叉熵（logits 去掉最后一个位置、labels 去掉第一个，忽略 IGNORE_INDEX）"
         "→ 把每个参数组的 lr 设成这一步的学习率 → opt.zero_grad() → loss.backward() → "
         "torch.nn.utils.clip_grad_norm_(可训练的参数, 1.0) → opt.step()，返回 loss.item()。"
         "常见错误：标签没有错开、忘了清零（梯度会和上一步的累加）、清零放在反向之后（梯度全是 0）、"
         "裁剪放在反向之前或干脆不裁剪、没有设学习率。",
    reference=_step_reference,
    cases=_step_cases,
    hidden=_step_hidden,
    builds=("cnclip_edu.mllm.train.next_token_loss", "cnclip_edu.mllm.train.train_stage"),
    mutants=lambda: {
        "标签没有错开一位": _step_mistake("no_shift"),
        "没有裁剪梯度": _step_mistake("no_clip"),
        "没有 zero_grad（梯度和上一步的累加）": _step_mistake("no_zero_grad"),
        "zero_grad 放在 backward 之后": _step_mistake("zero_grad_after_backward"),
        "裁剪放在 backward 之前": _step_mistake("clip_before_backward"),
        "没有设这一步的学习率": _step_mistake("lr_not_set"),
    },
))
