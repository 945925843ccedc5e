"""Exercise 06.2 of notebook 06 (training under torchrun): one training step, forward -> loss -> backward
-> update -> clamp the temperature.

Compared with the library's `train.loop.plain_step` over a few steps of a fresh, seeded tiny CLIP on a fixed
batch with duplicate captions, its logit_scale started outside [0, ln(100)] so that both bounds of the
clamp show. The mutants: zero_grad never or in the wrong place, a clamp to 100 or without a lower bound,
positive_mask not passed to the loss.
"""
from __future__ import annotations

import math

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 06.2 one training step
def _step_reference(model, optimizer, loss_fn, images, tokens, positive_mask=None) -> float:
    from cnclip_edu.train.loop import plain_step

    return plain_step(model, optimizer, loss_fn, images, tokens, positive_mask)


def _run_steps(step_fn, n_steps: int = 3, with_mask: bool = True, seed: int = 0, start_scale: float = 4.7) -> dict:
    """Steps of `step_fn` on a fresh, tiny CLIP (the course towers, narrower and shallower; seeded), a fixed batch of 8 pairs with
    duplicate captions, and a logit_scale started outside [0, ln(100)] so that the clamp shows: above ln(100) by
    default (the upper bound), below 0 with a negative `start_scale` (the lower bound: s >= 1)."""
    import torch

    from cnclip_edu import tokenize
    from cnclip_edu.loss import ClipLoss, positive_mask_from_ids
    from cnclip_edu.model.clip import create_model
    from cnclip_edu.train.optim import build_optimizer

    from cnclip_edu.train.ddp_demo import tiny_clip_config

    torch.manual_seed(seed)
    model = create_model(tiny_clip_config())  # the course towers, narrower and shallower
    model.train()
    with torch.no_grad():
        model.logit_scale.fill_(start_scale)  # 4.7 > ln(100) = 4.6052, or < 0: the first clamp pulls it back
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    g = torch.Generator().manual_seed(1 + seed)
    images = torch.randn(8, 3, model.image_resolution, model.image_resolution, generator=g)  # (B, 3, R, R)
    captions = ["一个红色的圆形", "蓝色的正方形", "一个红色的圆形", "绿色的三角形",
                "黄色的五角星", "蓝色的正方形", "紫色的十字", "一个红色的圆形"]
    tokens = tokenize(captions, context_length=16)  # (B, L)
    mask = positive_mask_from_ids(tokens) if with_mask else None  # (B, B): identical captions match
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: threads only wait for each other, badly so on a busy machine
    try:
        losses = [float(step_fn(model, optimizer, ClipLoss(), images, tokens, mask)) for _ in range(n_steps)]
    finally:
        torch.set_num_threads(threads)
    return {"每步的损失": losses, "logit_scale": model.logit_scale.item(),
            "text_projection": model.text_projection.detach().clone()}


def _step_cases():
    return [Case("小号 CLIP，8 对图文（含重复描述），positive_mask，连续 3 步", lambda f: _run_steps(f)),
            Case("同上，positive_mask=None，1 步", lambda f: _run_steps(f, n_steps=1, with_mask=False)),
            Case("logit_scale 从 -0.5 开始（s < 1），positive_mask，1 步", lambda f: _run_steps(f, n_steps=1, start_scale=-0.5))]


def _step_variant(zero_grad: str = "first", clamp_max: float = math.log(100), pass_mask: bool = True,
                  clamp_min: float | None = 0.0):
    """A train_step written with one of the usual slips: zero_grad "first" (right), "never" or
    "after_backward"; the clamp's bounds (no lower bound: None); whether positive_mask reaches the loss."""
    import torch

    def step(model, optimizer, loss_fn, images, tokens, positive_mask=None):
        if zero_grad == "first":
            optimizer.zero_grad()
        img_f, txt_f, scale = model(images, tokens)
        loss = loss_fn(img_f, txt_f, scale, positive_mask if pass_mask else None)
        loss.backward()
        if zero_grad == "after_backward":
            optimizer.zero_grad()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(min=clamp_min, max=clamp_max)
        return loss.item()

    return step


def _step_mutants():
    return {"忘了 optimizer.zero_grad()：梯度一步步累加": _step_variant(zero_grad="never"),
            "zero_grad 放在 backward 和 step 之间：梯度被清掉": _step_variant(zero_grad="after_backward"),
            "截断到 100 而不是 ln(100)": _step_variant(clamp_max=100.0),
            "只截上限、没有下限：s 可以小于 1": _step_variant(clamp_min=None),
            "没有把 positive_mask 传给损失": _step_variant(pass_mask=False)}


def _step_hidden(seed: int):
    import random

    rng = random.Random(seed)
    s = rng.randrange(1, 10_000)
    low = -rng.uniform(0.1, 1.0)  # ln s below 0: s < 1, which the lower bound must lift back to ln 1 = 0
    return [Case("另一个随机初始化和另一批图片，positive_mask，连续 3 步", lambda f: _run_steps(f, seed=s)),
            Case("同上，positive_mask=None，2 步", lambda f: _run_steps(f, n_steps=2, with_mask=False, seed=s + 1)),
            Case("logit_scale 从 0 以下开始，1 步", lambda f: _run_steps(f, n_steps=1, seed=s + 2, start_scale=low))]


register(Exercise(
    id="06.2", title="一步训练：前向 → 损失 → 反向 → 更新 → 截断温度", points=3,
    hint="梯度会累加：清零要在这一步的 backward 之前，不能夹在 backward 和 step 之间；positive_mask 要交给损失；"
         "截断在参数更新之后、不记录计算图、就地进行；参数存的是 ln(s)，1 ≤ s ≤ 100 对应的参数区间是 [ln 1, ln 100]："
         "下限和上限都要有，上限不是 100。",
    reference=_step_reference, cases=_step_cases, mutants=_step_mutants, hidden=_step_hidden,
    builds=("cnclip_edu.train.loop.plain_step",)))
