"""Exercise 06.3 of notebook 06 (training under torchrun): the single-process loop, epochs over the
loader until the step count is reached, each step's learning rate set before the step.

Compared with the library's `train.single.train_loop`; its cases, hidden cases and mutants are built in
loop_cases.py.
"""
from __future__ import annotations

from .core import Exercise, register


# ----------------------------------------------------------------------------- 06.3 the single-process loop
def _loop_reference(model, loader, optimizer, loss_fn, steps, base_lr, warmup, step_fn, lr_fn, device="cpu",
                    known_positives=True):
    from cnclip_edu.train.single import train_loop

    return train_loop(model, loader, optimizer, loss_fn, steps, base_lr, warmup, step_fn, lr_fn, device,
                      known_positives)


def _loop_cases():
    from . import loop_cases

    return loop_cases.cases()


def _loop_hidden(seed: int):
    from . import loop_cases

    return loop_cases.hidden(seed)


def _loop_mutants():
    from . import loop_cases

    return loop_cases.mutants()


register(Exercise(
    id="06.3", title="单进程训练循环：一个个 epoch 取数据，设好每一步的学习率，再走一步", points=3,
    hint="数数的是步数，不是 epoch：一遍 loader 用完了而步数还没到，就再从头遍历一遍（重新遍历会重新洗牌）。"
         "第 k 步（从 0 数）的学习率是 lr_fn(k, …, steps)，总步数是整个训练的步数；它要在这一步之前写进优化器的每一个参数组"
         "（AdamW 有衰减和不衰减两组）。正样本矩阵只在 known_positives 为真时才给。别忘了切到训练模式。",
    reference=_loop_reference, cases=_loop_cases, mutants=_loop_mutants, hidden=_loop_hidden,
    builds=("cnclip_edu.train.single.train_loop",)))
