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


# ----------------------------------------------------------------------------- 06.4 hello, rank
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


def _hello_hidden(seed: int):
    import random

    from cnclip_edu.train.hello import run_forked

    rng = random.Random(seed)
    nproc, n, b, s = rng.choice((2, 3)), rng.randrange(5, 23), rng.randrange(1, 5), rng.randrange(0, 1000)
    return [Case("随机的进程数、数据条数、batch 和 seed", lambda f: run_forked(f, nproc, dataset_len=n, batch_size=b, seed=s))]


register(Exercise(
    id="06.4", title="你好，rank：init_process_group + DistributedSampler + all_reduce", points=3,
    hint="先加入进程组，再问清自己是第几个、一共几个；分数据的采样器要知道这两个数，而且所有进程要用同一个 seed——"
         "排列相同，各自取的那一份才不重叠；求总和是一次所有进程都要参加的集合通信，它就地改写你交给它的张量，"
         "之后每个进程手里都是总和；最后退出进程组。",
    reference=_hello_reference, cases=_hello_cases, mutants=_hello_mutants, hidden=_hello_hidden,
    builds=("cnclip_edu.train.hello.hello_rank",)))


# ----------------------------------------------------------------------------- 06.5 the DDP worker
_DDP_LR = 0.1
_SLOW_SAVE_S = 0.8
_memo: dict[tuple, object] = {}


def _ddp_reference(out_dir: str, epochs: int = 2, batch_size: int = 4, lr: float = 0.1, seed: int = 0,
                   n_pairs: int = 24, device: str = "cpu") -> dict:
    from cnclip_edu.train.ddp_demo import train_worker

    return train_worker(out_dir, epochs, batch_size, lr, seed, n_pairs, device)


def _recording(fn):
    """fn wrapped for a forked rank: one CPU thread; torch.save recorded and slowed down (a slow disk:
    a rank that reads the checkpoint without waiting at a barrier finds no file)."""
    import os
    import time

    import torch

    def child(**kwargs):
        torch.set_num_threads(1)
        saves, real = [], torch.save

        def save(obj, f, *args, **kw):
            saves.append(int(os.environ["RANK"]))
            time.sleep(_SLOW_SAVE_S)
            return real(obj, f, *args, **kw)

        torch.save = save
        try:
            result = fn(**kwargs)
        finally:
            torch.save = real
        return {"result": result, "saves": saves}

    return child


def _run_ddp(fn, nproc: int, n_pairs: int, batch_size: int, seed: int, epochs: int) -> tuple[list, list[str]]:
    """fn in `nproc` forked ranks (as torchrun sets them up) -> (each rank's record, files in out_dir)."""
    import os
    import tempfile

    import torch._dynamo  # noqa: F401  DDP imports it: once here, not once per forked rank (seconds)

    from cnclip_edu.train.ddp_demo import DemoPairs
    from cnclip_edu.train.hello import run_forked

    DemoPairs(n_pairs, seed)  # the data set, built once before the fork and shared
    with tempfile.TemporaryDirectory() as d:
        runs = run_forked(_recording(fn), nproc, timeout_s=120, out_dir=d, epochs=epochs, batch_size=batch_size,
                          lr=_DDP_LR, seed=seed, n_pairs=n_pairs)
        files = sorted(os.listdir(d))
    return runs, files


def _ddp_case(f, nproc: int, n_pairs: int, batch_size: int, seed: int, epochs: int = 2) -> dict:
    """Run f as `nproc` ranks and the library's worker as one process on the global batch; -> what the run shows."""
    from cnclip_edu.train.ddp_demo import run_single, summarize

    key = (nproc, n_pairs, batch_size, seed, epochs)
    single_key = ("single", n_pairs, batch_size * nproc, seed, epochs)
    if single_key not in _memo:
        _memo[single_key] = run_single(n_pairs, batch_size * nproc, epochs, _DDP_LR, seed)
    if f is _ddp_reference and key in _memo:
        return _memo[key]  # the library's worker is deterministic: run once per input
    runs, files = _run_ddp(f, nproc, n_pairs, batch_size, seed, epochs)
    out = summarize([r["result"] for r in runs], _memo[single_key], n_pairs, epochs,
                    saved_by=[rank for r in runs for rank in r["saves"]])
    out["out_dir 里的文件"] = files
    if f is _ddp_reference:
        _memo[key] = out
    return out


def _ddp_cases():
    return [Case("2 个进程，20 对（最后一步每进程只有 2 对），每进程 batch 4，2 个 epoch",
                 lambda f: _ddp_case(f, 2, 20, 4, seed=0))]


def _ddp_hidden(seed: int):
    import random

    rng = random.Random(seed)
    two = (rng.choice((16, 22, 24)), rng.randrange(1, 10_000))
    three = (rng.choice((18, 21, 24)), rng.choice((2, 3)), rng.randrange(1, 10_000))
    return [Case("2 个进程，另一个随机种子和数据量", lambda f: _ddp_case(f, 2, two[0], 4, seed=two[1])),
            Case("3 个进程", lambda f: _ddp_case(f, 3, three[0], three[1], seed=three[2]))]


def _ddp_variant(wrap: bool = True, set_epoch: bool = True, rank0_only: bool = True, barrier: bool = True,
                 gather: bool = True, lr_times_world: bool = False):
    """The worker with one of the usual slips."""
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from cnclip_edu.loss import ClipLoss
    from cnclip_edu.train.ddp_demo import DemoPairs, tiny_clip

    def worker(out_dir, epochs=2, batch_size=4, lr=0.1, seed=0, n_pairs=24, device="cpu"):
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        model = tiny_clip(seed)
        if wrap:
            model = DistributedDataParallel(model)
        data = DemoPairs(n_pairs, seed)
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr * (world if lr_times_world else 1), momentum=0.9)
        loss_fn = ClipLoss(rank=rank, world_size=world) if gather else ClipLoss()
        seen = []
        for epoch in range(epochs):
            if set_epoch:
                sampler.set_epoch(epoch)
            for idx, images, tokens in loader:
                optimizer.zero_grad()
                loss_fn(*model(images, tokens)).backward()
                optimizer.step()
                seen.append(idx.tolist())
        inner = model.module if wrap else model
        path = os.path.join(out_dir, "model.pt")
        if rank == 0 or not rank0_only:
            torch.save(inner.state_dict(), path)
        if barrier:
            dist.barrier()
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        params = {k: v.detach().clone() for k, v in inner.state_dict().items()}
        dist.destroy_process_group()
        return {"seen": seen, "params": params, "loaded": loaded}

    return worker


def _ddp_mutants():
    return {"没有用 DistributedDataParallel 包装模型：各进程各自更新，参数分道扬镳": _ddp_variant(wrap=False),
            "忘了 sampler.set_epoch(epoch)：每个 epoch 的顺序都一样": _ddp_variant(set_epoch=False),
            "每个进程都保存检查点": _ddp_variant(rank0_only=False),
            "保存之后没有 barrier：别的进程读的时候文件还没写好": _ddp_variant(barrier=False),
            "ClipLoss() 没有给 rank / world_size：每个进程只用自己的负样本": _ddp_variant(gather=False),
            "学习率乘以进程数（线性缩放）：与单进程在同一个全局 batch 上的训练不再相同": _ddp_variant(lr_times_world=True)}


register(Exercise(
    id="06.5", title="DDP 训练进程：进程组 + DistributedSampler + DDP + 只在 rank 0 保存", points=5,
    hint="每个进程：init_process_group（CPU 用 gloo，GPU 用 nccl）；从环境变量 LOCAL_RANK 知道自己是本机第几个进程，"
         "有 GPU 时先 torch.cuda.set_device；模型用 DistributedDataParallel 包起来，它保证各进程的参数始终相同；"
         "DistributedSampler 在每个 epoch 开始时要 set_epoch；损失要知道 rank 和 world_size 才能用上别的进程的负样本；"
         "学习率就是全局 batch 的学习率；只让 rank 0 写检查点，写完所有进程在 barrier 处会合，之后才能读它。",
    reference=_ddp_reference, cases=_ddp_cases, mutants=_ddp_mutants, hidden=_ddp_hidden,
    builds=("cnclip_edu.train.ddp_demo.train_worker",)))


# ----------------------------------------------------------------------------- 06.6 the start of a finetune
_FT_LR, _FT_WD = 1e-2, 0.5  # large enough that a missing or extra weight decay shows after one step


def _ft_reference(model, state_dict, lr, weight_decay, freeze_vision=True):
    from cnclip_edu.train.finetune import prepare_finetune

    return prepare_finetune(model, state_dict, lr, weight_decay, freeze_vision)


def _ft_batch(model, seed: int):
    import torch

    from cnclip_edu import tokenize

    g = torch.Generator().manual_seed(100 + seed)
    images = torch.randn(6, 3, model.image_resolution, model.image_resolution, generator=g)  # (B, 3, R, R)
    tokens = tokenize(["一个红色的圆形", "蓝色的正方形", "绿色的三角形", "黄色的五角星", "紫色的十字", "一个黑色的圆形"],
                      context_length=16)  # (B, L)
    return images, tokens


def _ft_case(f, freeze: bool = True, source_seed: int = 1, target_seed: int = 0, ddp_keys: bool = True) -> dict:
    """f on a fresh tiny CLIP (seed `target_seed`) with another tiny CLIP's weights (seed `source_seed`, keys as a DDP
    checkpoint stores them), then one step of its optimizer -> what the student's set-up did."""
    import torch

    from cnclip_edu.loss import ClipLoss
    from cnclip_edu.train.ddp_demo import tiny_clip
    from cnclip_edu.train.state import to_ddp_keys

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        source = {k: v.clone() for k, v in tiny_clip(source_seed).state_dict().items()}
        model = tiny_clip(target_seed)
        optimizer, report = f(model, to_ddp_keys(source) if ddp_keys else dict(source), _FT_LR, _FT_WD,
                              freeze_vision=freeze)
        params = dict(model.named_parameters())
        loaded_diff = max((v - source[k]).abs().max().item() for k, v in model.state_dict().items())
        in_opt = {id(p) for group in optimizer.param_groups for p in group["params"]}
        trainable = {id(p) for p in params.values() if p.requires_grad}
        frozen_names = [n for n, p in params.items() if not p.requires_grad]
        visual_before = {n: p.detach().clone() for n, p in params.items() if n.startswith("visual.")}
        images, tokens = _ft_batch(model, target_seed)
        optimizer.zero_grad()
        ClipLoss()(*model(images, tokens)).backward()
        optimizer.step()
        visual_moved = max((params[n] - v).abs().max().item() for n, v in visual_before.items())
        return {"报告 (loaded, trainable, frozen)": [int(report[k]) for k in ("loaded", "trainable", "frozen")],
                "加载后与来源权重的最大差": loaded_diff,
                "requires_grad=False 的参数张量数": len(frozen_names),
                "冻结的都在视觉塔里": all(n.startswith("visual.") for n in frozen_names),
                "优化器里的参数恰好是需要梯度的那些": in_opt == trainable,
                "一步之后视觉塔移动的最大量": visual_moved,
                "一步之后的 logit_scale": params["logit_scale"].item(),
                "一步之后的 text_projection": params["text_projection"].detach().clone(),
                "一步之后的 bert.embeddings.LayerNorm.weight": params["bert.embeddings.LayerNorm.weight"].detach().clone()}
    finally:
        torch.set_num_threads(threads)


def _ft_strict_case(f, drop: str | None = "logit_scale", extra: str | None = None) -> dict:
    """f given a state dict with one key missing (or one too many): a strict load must raise."""
    from cnclip_edu.train.ddp_demo import tiny_clip
    from cnclip_edu.train.state import to_ddp_keys

    sd = to_ddp_keys(tiny_clip(1).state_dict())
    if drop:
        sd.pop("module." + drop)
    if extra:
        sd["module." + extra] = sd["module.logit_scale"].clone()
    try:
        f(tiny_clip(0), sd, _FT_LR, _FT_WD, freeze_vision=True)
    except NotImplementedError:
        raise  # the exercise's stub: not attempted
    except Exception:  # noqa: BLE001  any error will do: strict loading refuses the file
        return {"报错": True}
    return {"报错": False}


def _ft_cases():
    return [Case("小号 CLIP，另一个小号 CLIP 的权重（键带 module.），冻结视觉塔，再走一步", lambda f: _ft_case(f)),
            Case("同上，freeze_vision=False", lambda f: _ft_case(f, freeze=False)),
            Case("权重里少了 logit_scale：严格加载应当报错", lambda f: _ft_strict_case(f)),
            Case("权重里多了一个模型没有的键：严格加载应当报错",
                 lambda f: _ft_strict_case(f, drop=None, extra="visual.not_a_parameter"))]


def _ft_hidden(seed: int):
    import random

    rng = random.Random(seed)
    src, dst = rng.randrange(1, 10_000), rng.randrange(10_001, 20_000)
    dropped = rng.choice(("text_projection", "visual.proj", "bert.embeddings.word_embeddings.weight"))
    return [Case("另一对随机初始化，冻结视觉塔，再走一步", lambda f: _ft_case(f, source_seed=src, target_seed=dst)),
            Case("键不带 module. 前缀（普通 state_dict），不冻结",
                 lambda f: _ft_case(f, freeze=False, source_seed=src, target_seed=dst, ddp_keys=False)),
            Case("权重里少了一个键", lambda f: _ft_strict_case(f, drop=dropped))]


def _ft_variant(strip: bool = True, strict: bool = True, freeze: str = "before_optimizer", decay: str = "split"):
    """prepare_finetune with one of the usual slips: keys not stripped; strict=False; the tower frozen after
    the optimizer was built ("after_optimizer") or not at all ("never"); weight decay on every parameter
    ("all") or on none ("none")."""
    import torch

    def prepare(model, state_dict, lr, weight_decay, freeze_vision=True):
        sd = {(k[len("module."):] if strip and k.startswith("module.") else k): v for k, v in state_dict.items()}
        model.load_state_dict(sd, strict=strict)

        def build():
            decayed, plain = [], []
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue
                wants = {"split": p.ndim >= 2 and "logit_scale" not in name, "all": True, "none": False}[decay]
                (decayed if wants else plain).append(p)
            return torch.optim.AdamW([{"params": plain, "weight_decay": 0.0},
                                      {"params": decayed, "weight_decay": weight_decay}],
                                     lr=lr, betas=(0.9, 0.98), eps=1e-6)

        if freeze == "after_optimizer":
            optimizer = build()
        if freeze_vision and freeze != "never":
            model.visual.requires_grad_(False)
        if freeze != "after_optimizer":
            optimizer = build()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        return optimizer, {"loaded": len(sd), "trainable": trainable, "frozen": frozen}

    return prepare


def _ft_mutants():
    return {"没有去掉 module. 前缀（严格加载报错）": _ft_variant(strip=False),
            "没有去掉 module. 前缀，又用了 strict=False：一个权重也没加载，也不报错": _ft_variant(strip=False, strict=False),
            "strict=False：少了键或多了键都不报错": _ft_variant(strict=False),
            "先建优化器、后冻结：优化器里还有冻结的参数": _ft_variant(freeze="after_optimizer"),
            "忘了冻结视觉塔": _ft_variant(freeze="never"),
            "对所有参数都做权重衰减（包括 LayerNorm 增益和 logit_scale）": _ft_variant(decay="all"),
            "完全没有权重衰减": _ft_variant(decay="none")}


register(Exercise(
    id="06.6", title="微调的起点：只加载权重 + 冻结视觉塔 + 只优化还要训练的参数", points=4,
    hint="DDP 存下的键比模型自己的参数名多一个前缀；加载要严格，对不上的键必须报错而不是被悄悄跳过；"
         "冻结一个塔就是让它的参数不再需要梯度，而优化器只应该拿到还需要梯度的参数——想想冻结和建优化器谁先谁后；"
         "权重衰减只给矩阵，一维的增益、偏置和 logit_scale 不衰减（与第 3 部分 build_optimizer 的规则相同）。",
    reference=_ft_reference, cases=_ft_cases, mutants=_ft_mutants, hidden=_ft_hidden,
    builds=("cnclip_edu.train.finetune.prepare_finetune", "cnclip_edu.train.state.from_ddp_keys",
            "cnclip_edu.train.optim.param_groups", "cnclip_edu.train.resume.load_weights_only")))
