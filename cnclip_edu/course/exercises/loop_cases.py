"""Cases and wrong answers for exercise 06.3, the single-process training loop (`train.single.train_loop`).

A case trains a tiny CLIP (`ddp_demo.tiny_clip_config`) on a handful of seeded pairs with whatever loop
it is given, through a recording step function and schedule: what each step saw (the learning rate of
every parameter group, whether a mask came, which batch, train mode) and what it returned is compared
with the library's loop. The loader is shorter than the run, so a loop that stops after one epoch is
seen; the optimizer has two parameter groups, so a loop that sets the lr of only the first is seen.
"""
from __future__ import annotations

import random

import torch


class _Pairs(torch.utils.data.Dataset):
    """n (image (3, R, R), tokens (L,)) pairs; some captions repeat, so a batch has known positives."""

    def __init__(self, n: int, resolution: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, resolution, resolution, generator=g)
        vocab = torch.randint(672, 8000, (3, 6), generator=g)   # 3 distinct captions of 6 ids
        self.tokens = torch.zeros(n, 10, dtype=torch.long)
        for i in range(n):
            self.tokens[i, 1:7] = vocab[i % 3]
            self.tokens[i, 0], self.tokens[i, 7] = 101, 102      # [CLS] ... [SEP], then [PAD] = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], self.tokens[i]


def run_loop(loop, n: int = 10, batch_size: int = 4, steps: int = 5, warmup: int = 2, base_lr: float = 1e-2,
             known_positives: bool = True, seed: int = 0) -> dict:
    """Run `loop` on a fresh tiny CLIP (eval mode at the start, so `model.train()` shows) -> what it did."""
    from cnclip_edu.loss import ClipLoss
    from cnclip_edu.model.clip import create_model
    from cnclip_edu.train.ddp_demo import tiny_clip_config
    from cnclip_edu.train.loop import plain_step
    from cnclip_edu.train.optim import CosineSchedule, build_optimizer

    torch.manual_seed(seed)
    model = create_model(tiny_clip_config()).eval()
    optimizer = build_optimizer(model, lr=123.0, weight_decay=0.1)   # an lr that must be overwritten
    data = _Pairs(n, model.image_resolution, seed)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    seen: list[dict] = []

    def step_fn(model_, optimizer_, loss_fn, images, tokens, positive_mask=None):
        seen.append({"lr 每个参数组": [g["lr"] for g in optimizer_.param_groups],
                     "正样本矩阵": None if positive_mask is None else positive_mask.int().tolist(),
                     "这一批的第一个 token 之后的 id": tokens[:, 1].tolist(),
                     "训练模式": model_.training})
        return plain_step(model_, optimizer_, loss_fn, images, tokens, positive_mask)

    def lr_fn(step, base, warm, total):
        return CosineSchedule(base, warm, total).lr_at(step)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny model: threads only wait for each other
    try:
        out = loop(model, loader, optimizer, ClipLoss(), steps, base_lr, warmup, step_fn, lr_fn, "cpu", known_positives)
    finally:
        torch.set_num_threads(threads)
    returned = None if out is None else [float(x) for x in out]
    return {"返回的损失": returned, "每一步": seen, "text_projection": model.text_projection.detach().clone()}


def cases():
    from .core import Case

    return [Case("10 对数据、batch 4（每个 epoch 2 批）、5 步：要跨过 epoch 的边界；known_positives=True",
                 lambda f: run_loop(f)),
            Case("同样的数据，3 步，known_positives=False", lambda f: run_loop(f, steps=3, known_positives=False)),
            Case("8 对、batch 4、warmup=0、4 步", lambda f: run_loop(f, n=8, steps=4, warmup=0, seed=3))]


def hidden(seed: int):
    from .core import Case

    rng = random.Random(seed)
    batch = rng.choice((2, 3, 4))
    n = batch * rng.randrange(1, 4) + rng.randrange(0, batch)   # a partial last batch, dropped
    steps = rng.randrange(n // batch + 2, 3 * (n // batch) + 3)  # always past the first epoch
    warmup = rng.randrange(0, 2)                                  # so that the cosine part has >= 2 steps
    s = rng.randrange(1, 10_000)
    return [Case("随机的数据量、batch 和步数（总步数超过一个 epoch）",
                 lambda f: run_loop(f, n=n, batch_size=batch, steps=steps, warmup=warmup, seed=s)),
            Case("同上，known_positives=False", lambda f: run_loop(f, n=n, batch_size=batch, steps=2,
                                                                  known_positives=False, seed=s + 1))]


def _loop(one_epoch=False, first_group_only=False, lr_shift=0, mask="right", lr_after=False, total="steps",
          train_mode=True, fresh_iter=False):
    """train_loop with one of the usual slips (each flag one of them)."""
    from cnclip_edu.loss import positive_mask_from_ids

    def loop(model, loader, optimizer, loss_fn, steps, base_lr, warmup, step_fn, lr_fn, device="cpu",
             known_positives=True):
        if train_mode:
            model.train()
        losses, lr = [], None
        while len(losses) < steps:
            for images, tokens in (iter([next(iter(loader))]) if fresh_iter else loader):
                if len(losses) == steps:
                    break
                images, tokens = images.to(device), tokens.to(device)
                use = known_positives if mask == "right" else (mask == "always")
                m = positive_mask_from_ids(tokens) if use else None
                new_lr = lr_fn(len(losses) + lr_shift, base_lr, warmup, len(loader) if total == "loader" else steps)
                if not lr_after:
                    lr = new_lr
                groups = optimizer.param_groups[:1] if first_group_only else optimizer.param_groups
                if lr is not None:
                    for g in groups:
                        g["lr"] = lr
                losses.append(step_fn(model, optimizer, loss_fn, images, tokens, m))
                lr = new_lr
            if one_epoch:
                break
        return losses

    return loop


def mutants() -> dict:
    return {"for 循环只走一遍 loader：数据用完就停了，步数不够": _loop(one_epoch=True),
            "只给第一个参数组设了学习率（不衰减的那一组还是旧值）": _loop(first_group_only=True),
            "学习率用了 step + 1（第 0 步跳过了预热的第一格）": _loop(lr_shift=1),
            "忽略 known_positives：总是不传正样本矩阵": _loop(mask="never"),
            "忽略 known_positives=False：总是传正样本矩阵": _loop(mask="always"),
            "学习率在这一步之后才设：每一步用的是上一步的学习率": _loop(lr_after=True),
            "总步数用了 len(loader)（一个 epoch 的批数），而不是 steps": _loop(total="loader"),
            "没有调用 model.train()": _loop(train_mode=False),
            "每一步都重新 iter(loader) 取第一批：总是刚洗过牌的第一批": _loop(fresh_iter=True)}
