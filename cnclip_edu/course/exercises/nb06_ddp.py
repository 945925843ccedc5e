"""Exercise 06.5 of notebook 06 (training under torchrun): the DDP worker, process group +
DistributedSampler + DDP + saving on rank 0 only.

The answer runs in forked ranks (one CPU thread each, torch.save recorded and slowed down like a slow
disk), the library's `train.ddp_demo.train_worker` as one process on the global batch; what the run shows is
compared (`train.ddp_demo.summarize`). The mutants: no DDP wrapper, no set_epoch, every rank saving, no
barrier, ClipLoss without rank / world_size, a learning rate scaled by the number of ranks, the DDP wrapper's
`module.`-prefixed state_dict saved instead of the model's own (what each rank saved is recorded).

Requirement 1 (each rank on its own GPU) is checked on a CPU machine too, by a probe: the answer runs in one
forked process that torchrun would have started as rank 5 of 8, the second process of its node
(LOCAL_RANK 1), with device="cuda"; `init_process_group` and `torch.cuda.set_device` are recording stand-ins
(no process group is made, nothing touches a GPU) and the run stops once both were called. Mutants: a worker
that ignores the device (gloo, no set_device), one that picks the GPU by RANK, one with nccl but no set_device.
"""
from __future__ import annotations

from .core import Case, Exercise, register


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
        saves, prefixed, real = [], [], torch.save

        def save(obj, f, *args, **kw):
            saves.append(int(os.environ["RANK"]))
            prefixed.append(isinstance(obj, dict) and any(str(k).startswith("module.") for k in obj))
            time.sleep(_SLOW_SAVE_S)
            return real(obj, f, *args, **kw)

        torch.save = save
        try:
            result = fn(**kwargs)
        finally:
            torch.save = real
        return {"result": result, "saves": saves, "prefixed": prefixed}

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
    out["存下的参数名带 module. 前缀（DDP 包装层的）"] = any(p for r in runs for p in r.get("prefixed", []))
    out["返回的 params 的参数名带 module. 前缀"] = any(str(k).startswith("module.") for r in runs
                                                for k in r["result"].get("params", {}))
    if f is _ddp_reference:
        _memo[key] = out
    return out


class _ProbeDone(Exception):
    """Raised by the probe's stand-ins once the backend and the GPU were chosen: the rest is not run."""


def _probe_child(f, rank: int, local_rank: int, world_size: int, gpus: int):
    """f in a process set up as torchrun's rank `rank` (LOCAL_RANK `local_rank`) on a machine with `gpus` GPUs,
    with device="cuda": -> which backend it asked for and which GPU it selected, before touching either."""
    import os
    import tempfile

    import torch
    import torch.distributed as dist

    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(gpus)})
    seen: dict = {}

    def done_if_both():
        if "backend" in seen and "set_device" in seen:
            raise _ProbeDone()

    def init_process_group(backend=None, *args, **kwargs):
        seen["backend"] = None if backend is None else str(backend).lower()
        done_if_both()

    def set_device(d):
        if isinstance(d, torch.device):
            d = d.index
        elif isinstance(d, str):
            d = torch.device(d).index
        seen["set_device"] = None if d is None else int(d)
        done_if_both()

    dist.init_process_group = init_process_group        # this forked process only: the parent keeps the real ones
    dist.get_rank = lambda *a, **k: rank
    dist.get_world_size = lambda *a, **k: world_size
    dist.is_initialized = lambda: "backend" in seen
    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: gpus
    torch.cuda.set_device = set_device
    error = None
    with tempfile.TemporaryDirectory() as d:
        try:
            f(out_dir=d, epochs=1, batch_size=4, lr=_DDP_LR, seed=0, n_pairs=8, device="cuda")
        except _ProbeDone:
            pass
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. a model moved to the GPU before set_device
            error = type(exc).__name__
    backend = seen.get("backend")
    return {"后端 (backend)": "nccl" if backend and "nccl" in backend else backend,
            "torch.cuda.set_device 选的 GPU": seen.get("set_device"),
            "选好后端和 GPU 之前出的错（例如先把模型放上了 GPU）": error if len(seen) < 2 else None}


def _device_case(f, rank: int, local_rank: int, world_size: int, gpus: int) -> dict:
    """The probe of requirement 1, in one forked process (the stand-ins must not leak into the caller)."""
    from cnclip_edu.train.hello import run_forked

    def child():
        return _probe_child(f, rank, local_rank, world_size, gpus)

    return run_forked(child, 1, timeout_s=60)[0]


def _ddp_cases():
    return [Case("2 个进程，20 对（最后一步每进程只有 2 对），每进程 batch 4，2 个 epoch",
                 lambda f: _ddp_case(f, 2, 20, 4, seed=0)),
            Case("要求 1：device=\"cuda\"，torchrun 的第 5 号进程（共 8 个）、本机第 1 个（LOCAL_RANK=1）："
                 "选了哪个后端、哪块 GPU（代用的 init_process_group / set_device 只记录，不碰 GPU）",
                 lambda f: _device_case(f, rank=5, local_rank=1, world_size=8, gpus=4))]


def _ddp_hidden(seed: int):
    import random

    rng = random.Random(seed)
    two = (rng.choice((16, 22, 24)), rng.randrange(1, 10_000))
    three = (rng.choice((18, 21, 24)), rng.choice((2, 3)), rng.randrange(1, 10_000))
    gpus = rng.choice((2, 4, 8))
    node, local = rng.randrange(1, 4), rng.randrange(1, gpus)
    return [Case("2 个进程，另一个随机种子和数据量", lambda f: _ddp_case(f, 2, two[0], 4, seed=two[1])),
            Case("3 个进程", lambda f: _ddp_case(f, 3, three[0], three[1], seed=three[2])),
            Case("要求 1：device=\"cuda\"，另一台机器上的另一个进程",
                 lambda f: _device_case(f, rank=node * gpus + local, local_rank=local, world_size=(node + 1) * gpus,
                                        gpus=gpus))]


def _ddp_variant(wrap: bool = True, set_epoch: bool = True, rank0_only: bool = True, barrier: bool = True,
                 gather: bool = True, lr_times_world: bool = False, save_wrapper: bool = False,
                 gpu: str = "local_rank"):
    """The worker with one of the usual slips. gpu: "local_rank" (right), "ignore" (gloo and the CPU whatever
    `device` says), "rank" (the GPU picked by the global RANK), "no_set_device" (nccl, but every process on
    the default GPU 0)."""
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from cnclip_edu.loss import ClipLoss
    from cnclip_edu.train.ddp_demo import DemoPairs, tiny_clip

    def worker(out_dir, epochs=2, batch_size=4, lr=0.1, seed=0, n_pairs=24, device="cpu"):
        use_cuda = device.startswith("cuda") and gpu != "ignore"
        dist.init_process_group("nccl" if use_cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = rank if gpu == "rank" else int(os.environ["LOCAL_RANK"])
        if use_cuda and gpu != "no_set_device":
            torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        model = tiny_clip(seed).to(dev)
        if wrap:
            model = DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None)
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
                loss_fn(*model(images.to(dev), tokens.to(dev))).backward()
                optimizer.step()
                seen.append(idx.tolist())
        inner = model.module if wrap else model
        path = os.path.join(out_dir, "model.pt")
        if rank == 0 or not rank0_only:
            torch.save((model if save_wrapper else inner).state_dict(), path)
        if barrier:
            dist.barrier()
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        params = {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}
        dist.destroy_process_group()
        return {"seen": seen, "params": params, "loaded": loaded}

    return worker


def _ddp_mutants():
    return {"没有用 DistributedDataParallel 包装模型：各进程各自更新，参数分道扬镳": _ddp_variant(wrap=False),
            "忘了 sampler.set_epoch(epoch)：每个 epoch 的顺序都一样": _ddp_variant(set_epoch=False),
            "每个进程都保存检查点": _ddp_variant(rank0_only=False),
            "保存之后没有屏障 (barrier)：别的进程读的时候文件还没写好": _ddp_variant(barrier=False),
            "ClipLoss() 没有给 rank / world_size：每个进程只用自己的负样本": _ddp_variant(gather=False),
            "学习率乘以进程数（线性缩放）：与单进程在同一个全局 batch 上的训练不再相同": _ddp_variant(lr_times_world=True),
            "存了 DDP 包装层的 state_dict：参数名带 module.": _ddp_variant(save_wrapper=True),
            "不管 device：GPU 上也用 gloo、不选 GPU（所有进程挤在 CPU 或 0 号卡上）": _ddp_variant(gpu="ignore"),
            "按全局 RANK 选 GPU：第二台机器上的进程去找不存在的第 5 块卡": _ddp_variant(gpu="rank"),
            "用了 nccl，却没有 torch.cuda.set_device(LOCAL_RANK)：所有进程挤到 0 号卡上": _ddp_variant(gpu="no_set_device")}


register(Exercise(
    id="06.5", title="DDP 训练进程：进程组 + DistributedSampler + DDP + 只在 rank 0 保存", points=5,
    hint="每个进程：init_process_group（CPU 用 gloo，GPU 用 nccl）；从环境变量 LOCAL_RANK 知道自己是本机第几个进程，"
         "有 GPU 时先 torch.cuda.set_device；模型用 DistributedDataParallel 包起来，它保证各进程的参数始终相同；"
         "DistributedSampler 在每个 epoch 开始时要 set_epoch；损失要知道 rank 和 world_size 才能用上别的进程的负样本；"
         "学习率就是全局 batch 的学习率；只让 rank 0 写检查点，写完所有进程在屏障 (barrier) 前等齐，之后才能读它。",
    reference=_ddp_reference, cases=_ddp_cases, mutants=_ddp_mutants, hidden=_ddp_hidden,
    builds=("cnclip_edu.train.ddp_demo.train_worker",)))
