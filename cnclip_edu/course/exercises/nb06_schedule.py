"""Exercise 06.1 of notebook 06 (training under torchrun): the learning-rate schedule, linear warmup
then a cosine decay to 0.

Compared with the library's `train.optim.CosineSchedule.lr_at` on steps at the edges of the warmup, the last
step and past the total; results are divided by base_lr, so that the comparison's absolute tolerance is
small against the values. The mutants: warmup from 0, the cosine over total_steps, a cosine gone negative.
"""
from __future__ import annotations

import math

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 06.1 warmup + cosine
def _lr_reference(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    from cnclip_edu.train.optim import CosineSchedule

    return CosineSchedule(base_lr, warmup, total_steps).lr_at(step)


_STEPS = [0, 1, 19, 39, 40, 41, 200, 420, 799, 800]


def _lr_cases():
    # lr / base_lr, so that the comparison's absolute tolerance (1e-5) is small against the values
    return [Case("base_lr=1, warmup=40, total=800（第 0…800 步中的 10 步）",
                 lambda f: [f(s, 1.0, 40, 800) for s in _STEPS]),
            Case("base_lr=5e-4, warmup=10, total=100（结果除以 base_lr）",
                 lambda f: [f(s, 5e-4, 10, 100) / 5e-4 for s in (0, 4, 9, 10, 30, 55, 99)]),
            Case("没有预热：warmup=0, total=50", lambda f: [f(s, 1.0, 0, 50) for s in (0, 10, 25, 49)])]


def _lr_mutants():
    def no_plus_one(step, base_lr, warmup, total_steps):  # step 0 gets lr 0: a wasted step
        if step < warmup:
            return base_lr * step / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total_steps - warmup)))) * base_lr

    def cosine_over_total(step, base_lr, warmup, total_steps):  # never reaches 0 at the last step
        if step < warmup:
            return base_lr * (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / total_steps))) * base_lr

    def full_cosine(step, base_lr, warmup, total_steps):  # cos goes negative: a negative learning rate
        if step < warmup:
            return base_lr * (step + 1) / warmup
        return math.cos(math.pi * min(1.0, (step - warmup) / (total_steps - warmup))) * base_lr

    return {"预热从 0 开始：少了 +1（第 0 步学习率为 0）": no_plus_one,
            "余弦的进度除以 total_steps，而不是 total_steps - warmup": cosine_over_total,
            "忘了 0.5 * (1 + cos)：学习率变成负数": full_cosine}


def _lr_hidden(seed: int):
    import random

    rng = random.Random(seed)
    warmup = rng.randrange(1, 60)
    total = warmup + rng.randrange(10, 900)
    base = rng.choice((1e-4, 5e-4, 1e-3))
    steps = sorted({0, warmup - 1, warmup, (warmup + total) // 2, total - 1, total, total + 7,
                    *(rng.randrange(0, total) for _ in range(5))})
    return [Case("随机的 warmup / total_steps，含预热的边界、最后一步和总步数之后（结果除以 base_lr）",
                 lambda f: [f(s, base, warmup, total) / base for s in steps])]


register(Exercise(
    id="06.1", title="学习率：线性预热 + 余弦衰减 (warmup + cosine)", points=2,
    hint="预热段是一条直线：第 0 步就不是 0，第 warmup - 1 步正好到 base_lr；之后把步数换成从 0 走到 1 的进度"
         "（分母是余弦段的长度，不是总步数），用半个余弦把 base_lr 平滑降到 0，学习率不能为负；进度超过 1 时停在 1。",
    reference=_lr_reference, cases=_lr_cases, mutants=_lr_mutants, hidden=_lr_hidden,
    builds=("cnclip_edu.train.optim.CosineSchedule.lr_at",)))
