"""The DDP training worker of notebook 06: the trainer's distributed skeleton, small enough to check.

    torchrun --standalone --nproc_per_node=2 -m cnclip_edu.train.ddp_demo --out runs/ddp   # the library's worker
    torchrun ... -m cnclip_edu.train.ddp_demo --worker my_clip/ex06_5.py --out runs/ddp    # a student's worker

Every process that torchrun starts runs `train_worker`: join the process group (gloo on CPU, NCCL
with one GPU per process), wrap a tiny CLIP in DistributedDataParallel, read its shard of a small
fixed data set through DistributedSampler (calling `set_epoch` every epoch), train a few steps with
the cross-rank contrastive loss, save the model on rank 0 only, wait at a barrier, and read the
checkpoint back on every rank. What it writes can be checked without trusting it:

- the parameters of all ranks are identical (DDP averaged the same gradients on every rank);
- they equal, up to float summation order (about 1e-6 here), one process trained on the whole global batch
  (`batch_size x world_size`): the shards of one step together are exactly that batch, and
  `ClipLoss(rank, world_size)` gathers every rank's features so each rank sees all negatives;
- only rank 0 saved; every rank read back what rank 0 saved (the barrier made it wait);
- every epoch read each sample exactly once, and epoch 2 in another order than epoch 1.

The optimiser is SGD with momentum, whose update is linear in the gradient: AdamW divides by the
root of the squared gradient, which turns the float noise of a near-zero gradient into a full step
(1e-4 apart instead of 1e-6 with its default eps). The data set size must be a multiple of the world size: torch's DistributedSampler then adds no
padding, so the shards of the last, smaller step still form the same batch as one process reads.
`main` runs a worker (ours or one loaded from a file) under torchrun and stores what it returns per
rank in `<out>/ranks/`, which `summarize` reads, with the wall-clock start and end of the worker call
(`worker_time`): the time before it is what starting the processes cost.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .hello import load_function

CHECKPOINT = "model.pt"     # what rank 0 writes into out_dir
RANKS_DIR = "ranks"         # where `main` stores each rank's return value

DEMO_CAPTIONS = ("一个红色的圆形", "蓝色的正方形", "绿色的三角形", "黄色的五角星", "紫色的十字", "黑色的菱形",
                 "左边是一个红色的圆形，右边是一个蓝色的正方形", "图中有两个图形：粉色的圆和橙色的菱形")


def tiny_clip_config() -> dict:
    """The course towers, narrower and shallower: a CLIP that trains a step in milliseconds."""
    from cnclip_edu.model.clip import create_model

    config = create_model("ViT-Course@RBT-Course", device="meta").config.to_dict()
    config.update(vision_layers=1, vision_width=64, embed_dim=32, text_hidden_size=32,
                  text_num_hidden_layers=1, text_intermediate_size=64)
    return config


def tiny_clip(seed: int = 0) -> torch.nn.Module:
    """A freshly initialised tiny CLIP, the same for the same seed (in train mode)."""
    from cnclip_edu.model.clip import create_model

    torch.manual_seed(seed)
    return create_model(tiny_clip_config()).train()


@functools.lru_cache(maxsize=8)
def _demo_tensors(n: int, seed: int, resolution: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    from cnclip_edu.tokenizer import tokenize

    g = torch.Generator().manual_seed(10_000 + seed)
    images = torch.randn(n, 3, resolution, resolution, generator=g)                    # (n, 3, R, R)
    picks = torch.randint(len(DEMO_CAPTIONS), (n,), generator=g).tolist()
    tokens = tokenize([DEMO_CAPTIONS[i] for i in picks], context_length=context_length)  # (n, L)
    return images, tokens


class DemoPairs(Dataset):
    """`n` fixed (index, image (3, R, R), tokens (L,)) triples: seeded random pixels and a caption from
    a short list. The index comes first so that a worker can record which samples it read. (Cached:
    processes forked after a first call share it instead of loading the vocabulary again.)"""

    def __init__(self, n: int = 24, seed: int = 0, resolution: int = 32, context_length: int = 16):
        self.images, self.tokens = _demo_tensors(n, seed, resolution, context_length)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return i, self.images[i], self.tokens[i]


def train_worker(out_dir: str, epochs: int = 2, batch_size: int = 4, lr: float = 0.1, seed: int = 0,
                 n_pairs: int = 24, device: str = "cpu") -> dict[str, Any]:
    """What every process runs; -> {"seen": [[sample index, ...] per step], "params": this rank's
    trained state_dict, "loaded": the checkpoint read back from out_dir after the barrier}."""
    use_cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo")  # rendezvous: RANK, WORLD_SIZE, MASTER_* from env
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ["LOCAL_RANK"])                # this machine's process number = its GPU
    if use_cuda:
        torch.cuda.set_device(local_rank)                     # NCCL: every process on its own GPU
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")

    # DDP broadcasts rank 0's weights at construction and averages gradients during backward
    model = DistributedDataParallel(tiny_clip(seed).to(dev), device_ids=[local_rank] if use_cuda else None)
    data = DemoPairs(n_pairs, seed)
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)  # lr of the global batch: not x W
    from cnclip_edu.loss import ClipLoss

    loss_fn = ClipLoss(rank=rank, world_size=world_size)      # gathers all ranks' features: W*B negatives
    seen = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)                              # a new permutation every epoch
        for idx, images, tokens in loader:                    # (B,), (B, 3, R, R), (B, L)
            optimizer.zero_grad()
            image_f, text_f, logit_scale = model(images.to(dev), tokens.to(dev))
            loss_fn(image_f, text_f, logit_scale).backward()  # DDP all-reduces the gradients here
            optimizer.step()
            seen.append(idx.tolist())

    path = os.path.join(out_dir, CHECKPOINT)
    if rank == 0:                                             # one writer: the ranks hold the same weights
        torch.save(model.module.state_dict(), path)           # .module: the model inside the DDP wrapper
    dist.barrier()                                            # nobody reads before rank 0 has written
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    params = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
    dist.destroy_process_group()
    return {"seen": seen, "params": params, "loaded": loaded}


def load_worker(path: str | os.PathLike, name: str = "train_worker") -> Callable[..., dict]:
    """The function `name` defined in a Python file (a student's saved notebook cell)."""
    return load_function(path, name)


def _flat(state: dict) -> torch.Tensor:
    return torch.cat([v.detach().float().reshape(-1).cpu() for _, v in sorted(state.items())])


def _unwrapped(state: dict) -> dict:
    """Keys without DDP's `module.` prefix (a checkpoint saved from the wrapper, as cn_clip does)."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def max_param_diff(a: dict, b: dict) -> float:
    """Largest absolute difference between two state_dicts (inf if their keys or shapes differ)."""
    a, b = _unwrapped(a), _unwrapped(b)
    if sorted(a) != sorted(b) or any(a[k].shape != b[k].shape for k in a):
        return float("inf")
    return float((_flat(a) - _flat(b)).abs().max())


def _check_return(result: Any) -> None:
    if not isinstance(result, dict) or not {"seen", "params", "loaded"} <= set(result):
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise ValueError(f"train_worker must return a dict with 'seen', 'params' and 'loaded'; got {got}")


def epoch_orders(seen: list[list[int]], epochs: int) -> list[list[int]] | None:
    """One rank's sample indices per epoch, or None if its steps do not split evenly into epochs."""
    if epochs < 1 or len(seen) % epochs:
        return None
    per = len(seen) // epochs
    return [[i for batch in seen[e * per:(e + 1) * per] for i in batch] for e in range(epochs)]


def summarize(results: list[dict], single: dict | None, n_pairs: int, epochs: int, saved_by: list[int] | None = None,
              tol: float = 1e-4) -> dict[str, Any]:
    """What a run's per-rank returns show, as plain data (Chinese keys, as the notebook prints them).

    results: each rank's return value, by rank; single: the return of a one-process run on the
    global batch (None: not compared); saved_by: the ranks that called torch.save, if recorded."""
    for r in results:
        _check_return(r)
    rank0 = results[0]["params"]
    orders = [epoch_orders(r["seen"], epochs) for r in results]
    even = all(o is not None for o in orders) and len({len(r["seen"]) for r in results}) == 1
    cover = even and all(sorted(i for o in orders for i in o[e]) == list(range(n_pairs)) for e in range(epochs))
    out = {
        "各进程训练后的参数相同": all(max_param_diff(rank0, r["params"]) <= 1e-6 for r in results[1:]),
        "每个 epoch 恰好读完一遍数据（不重不漏）": bool(cover),
        "各 epoch 的读取顺序互不相同": bool(even) and len({tuple(o) for o in orders[0]}) == epochs,
        "每个进程都读回了 rank 0 保存的参数": all(max_param_diff(rank0, r["loaded"]) == 0 for r in results),
    }
    if single is not None:
        out["与单进程在全局 batch 上训练的参数一致"] = max_param_diff(rank0, single["params"]) <= tol
    if saved_by is not None:
        out["调用 torch.save 的进程"] = sorted(saved_by)
    return out


def run_single(n_pairs: int = 24, batch_size: int = 8, epochs: int = 2, lr: float = 0.1, seed: int = 0,
               worker: Callable[..., dict] | None = None) -> dict:
    """The library's worker (or `worker`) in one forked process, world size 1, on the global batch
    `batch_size`: what a DDP run of the same seed must equal. No torchrun start-up: a second or two."""
    import tempfile

    import torch._dynamo  # noqa: F401  DDP imports it: once here, not in every forked process (seconds)

    from .hello import run_forked

    DemoPairs(n_pairs, seed)  # the data set, built before the fork and shared
    with tempfile.TemporaryDirectory() as d:
        return run_forked(worker or train_worker, 1, timeout_s=120, out_dir=d, epochs=epochs, batch_size=batch_size,
                          lr=lr, seed=seed, n_pairs=n_pairs)[0]


def read_ranks(out_dir: str | os.PathLike) -> list[dict]:
    """The per-rank returns that `main` stored, by rank."""
    files = sorted(Path(out_dir, RANKS_DIR).glob("rank*.pt"), key=lambda p: int(p.stem[4:]))
    return [torch.load(f, map_location="cpu", weights_only=True) for f in files]


def worker_error(out_dir: str | os.PathLike) -> str | None:
    """The first rank's exception as one line ("NotImplementedError: 练习 06.5"), if a rank raised."""
    files = sorted(Path(out_dir, RANKS_DIR).glob("error_rank*.txt"))
    return files[0].read_text(encoding="utf-8") if files else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnclip_edu.train.ddp_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder the worker writes model.pt into")
    p.add_argument("--worker", default=None, help="a Python file defining train_worker (default: the library's)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4, help="per process")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-pairs", type=int, default=24)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    out = Path(a.out)
    (out / RANKS_DIR).mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    try:
        fn = load_worker(a.worker) if a.worker else train_worker
        started = time.time()  # the process is up, torch imported: what is left is the worker's own time
        result = fn(str(out), epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed, n_pairs=a.n_pairs,
                    device=a.device)
    except Exception as exc:  # one line for the notebook: torchrun's own report buries the worker's traceback
        (out / RANKS_DIR / f"error_rank{rank}.txt").write_text(f"{type(exc).__name__}: {exc}", encoding="utf-8")
        raise
    # worker_time: wall-clock (start, end) of train_worker, to split a launch's time into start-up and work
    torch.save({**{k: result[k] for k in ("seen", "params", "loaded")}, "worker_time": (started, time.time())},
               out / RANKS_DIR / f"rank{rank}.pt")
    print(f"rank {rank}: {len(result['seen'])} steps, done", flush=True)
    return 0


if __name__ == "__main__":
    if "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
        # a torchrun worker, as in cnclip_edu.train: torchrun does not always stop its workers when it is
        # killed (seen: both workers left running, reparented to init), so each also dies with torchrun
        import signal

        from cnclip_edu.data.pool import die_with_parent

        die_with_parent(signal.SIGTERM)
    sys.exit(main())
