"""Exercises of notebook 06 (training under torchrun): the learning-rate schedule, one training step,
and the smallest DDP program. Each is compared with the library on fixed inputs."""
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


register(Exercise(
    id="06.1", title="学习率：线性预热 + 余弦衰减 (warmup + cosine)", points=2,
    hint="预热阶段 lr = base_lr * (step + 1) / warmup（step 从 0 数，第 0 步就不是 0）；之后 "
         "progress = (step - warmup) / (total_steps - warmup)，lr = 0.5 * (1 + cos(π·progress)) * base_lr，"
         "progress 最大取 1。",
    reference=_lr_reference, cases=_lr_cases, mutants=_lr_mutants))


# ----------------------------------------------------------------------------- 06.2 one training step
def _step_reference(model, optimizer, loss_fn, images, tokens, positive_mask=None) -> float:
    from cnclip_edu.train.loop import plain_step

    return plain_step(model, optimizer, loss_fn, images, tokens, positive_mask)


def _run_steps(step_fn, n_steps: int = 3, with_mask: bool = True) -> dict:
    """Steps of `step_fn` on a fresh, tiny CLIP (the course towers, narrower and shallower; seeded), a fixed batch of 8 pairs with
    duplicate captions, and a logit_scale started above ln(100) so that the clamp shows."""
    import torch

    from cnclip_edu import tokenize
    from cnclip_edu.loss import ClipLoss, positive_mask_from_ids
    from cnclip_edu.model.clip import create_model
    from cnclip_edu.train.optim import build_optimizer

    config = create_model("ViT-Course@RBT-Course", device="meta").config.to_dict()
    config.update(vision_layers=1, vision_width=64, embed_dim=32, text_hidden_size=32,  # same towers, tiny
                  text_num_hidden_layers=1, text_intermediate_size=64)
    torch.manual_seed(0)
    model = create_model(config)
    model.train()
    with torch.no_grad():
        model.logit_scale.fill_(4.7)  # above ln(100) = 4.6052: the first clamp pulls it back
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
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
            Case("同上，positive_mask=None，1 步", lambda f: _run_steps(f, n_steps=1, with_mask=False))]


def _step_variant(zero_grad: str = "first", clamp_max: float = math.log(100), pass_mask: bool = True):
    """A train_step written with one of the usual slips: zero_grad "first" (right), "never" or
    "after_backward"; the clamp's upper bound; whether positive_mask reaches the loss."""
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
            model.logit_scale.clamp_(0, clamp_max)
        return loss.item()

    return step


def _step_mutants():
    return {"忘了 optimizer.zero_grad()：梯度一步步累加": _step_variant(zero_grad="never"),
            "zero_grad 放在 backward 和 step 之间：梯度被清掉": _step_variant(zero_grad="after_backward"),
            "截断到 100 而不是 ln(100)": _step_variant(clamp_max=100.0),
            "没有把 positive_mask 传给损失": _step_variant(pass_mask=False)}


register(Exercise(
    id="06.2", title="一步训练：前向 → 损失 → 反向 → 更新 → 截断温度", points=3,
    hint="顺序是 optimizer.zero_grad() → model(images, tokens) → loss_fn(图特征, 文特征, logit_scale, positive_mask) "
         "→ loss.backward() → optimizer.step() → 在 torch.no_grad() 里 model.logit_scale.clamp_(0, math.log(100))；"
         "logit_scale 参数存的是 ln(缩放)，所以上限是 ln(100) ≈ 4.6052，不是 100。返回 loss.item()。",
    reference=_step_reference, cases=_step_cases, mutants=_step_mutants))


# ----------------------------------------------------------------------------- 06.3 hello, rank
def _hello_reference(dataset_len: int = 10, batch_size: int = 2, seed: int = 0) -> dict:
    from cnclip_edu.train.hello import hello_rank

    return hello_rank(dataset_len, batch_size, seed)


def _hello_cases():
    from cnclip_edu.train.hello import run_forked

    return [Case("2 个进程，10 个样本，batch 2", lambda f: run_forked(f, 2, dataset_len=10, batch_size=2)),
            Case("3 个进程，10 个样本，batch 2（除不尽：DistributedSampler 补齐）",
                 lambda f: run_forked(f, 3, dataset_len=10, batch_size=2)),
            Case("2 个进程，7 个样本，batch 4，seed=5", lambda f: run_forked(f, 2, dataset_len=7, batch_size=4, seed=5))]


def _hello_variant(use_sampler: bool = True, seed_per_rank: bool = False, all_reduce: bool = True):
    """hello_rank with one of the usual slips: no DistributedSampler (every rank reads everything),
    a different seed on every rank (the permutations differ, shards overlap), no all_reduce."""
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    def hello(dataset_len=10, batch_size=2, seed=0):
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        data = list(range(dataset_len))
        if use_sampler:
            sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True,
                                         seed=seed + rank if seed_per_rank else seed)
            sampler.set_epoch(0)
            loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
        else:
            loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
        batches = [b.tolist() for b in loader]
        local = sum(sum(b) for b in batches)
        total = torch.tensor(local)
        if all_reduce:
            dist.all_reduce(total)
        dist.destroy_process_group()
        return {"rank": rank, "world_size": world, "batches": batches, "local_sum": local, "global_sum": int(total)}

    return hello


def _hello_mutants():
    return {"没有 DistributedSampler：每个进程都读全部数据": _hello_variant(use_sampler=False),
            "忘了 all_reduce：global_sum 只是本进程的和": _hello_variant(all_reduce=False),
            "每个进程用不同的 seed：各自的排列不同，分片会重叠": _hello_variant(seed_per_rank=True)}


register(Exercise(
    id="06.3", title="你好，rank：init_process_group + DistributedSampler + all_reduce", points=3,
    hint="dist.init_process_group(\"gloo\") 之后用 dist.get_rank() / dist.get_world_size()；"
         "DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)——所有进程用同一个 seed，"
         "排列才相同、分片才不重叠；DataLoader(data, batch_size=batch_size, sampler=sampler)；"
         "dist.all_reduce(t) 是就地 (in place) 求和，之后每个进程的 t 都是总和；最后 dist.destroy_process_group()。",
    reference=_hello_reference, cases=_hello_cases, mutants=_hello_mutants))


# ----------------------------------------------------------------------------- 06.4 steps per epoch
def _steps_reference(n_pairs: int, batch_size: int, nproc: int) -> int:
    from cnclip_edu.train.sampler import ResumableDistributedSampler

    return ResumableDistributedSampler(n_pairs, batch_size, rank=0, world_size=nproc).num_batches


def _steps_cases():
    return [Case("58133 对，每进程 32，2 个进程", lambda f: f(58133, 32, 2)),
            Case("640 对，每进程 32，2 个进程（正好整除）", lambda f: f(640, 32, 2)),
            Case("1000 对，每进程 128，8 个进程（不到一个全局 batch）", lambda f: f(1000, 128, 8)),
            Case("100 对，每进程 7，3 个进程", lambda f: f(100, 7, 3))]


def _steps_mutants():
    return {"向下取整：丢掉了最后不满的一批": lambda n, b, w: n // (b * w),
            "忘了乘进程数：按每进程 batch 算": lambda n, b, w: math.ceil(n / b),
            "四舍五入": lambda n, b, w: round(n / (b * w))}


register(Exercise(
    id="06.4", title="一个 epoch 有几步", points=1,
    hint="一步处理一个全局 batch = batch_size × nproc 对；最后不满的一批由 DistributedSampler 补齐，也算一步，"
         "所以是向上取整 math.ceil(n_pairs / (batch_size * nproc))。",
    reference=_steps_reference, cases=_steps_cases, mutants=_steps_mutants))
