"""Distributed set-up and the feature all-gather that contrastive learning needs.

    torchrun --nproc_per_node=2 -m -- cnclip_edu.train ...  # torchrun sets LOCAL_RANK / RANK / WORLD_SIZE

    info = init_distributed()          # DistInfo(rank, local_rank, world_size, backend, device)
    all_f = all_gather_with_grad(f)    # (W*B, D): every rank's features, gradients flow back
    cleanup()

Why a gather at all: the contrastive loss gets its negatives from the batch, so with W processes of B
items each we want W*B candidates, not B. `all_gather_no_grad` moves values only (cheap, the other
ranks' slices are constants here); `all_gather_with_grad` is an autograd Function whose backward sums
the incoming gradient over all ranks and hands each rank its own slice, so that a loss computed on
rank j also trains the encoder that produced rank i's features.

Ranks come from the environment only (what torchrun sets). The old `torch.distributed.launch` also
passes the local rank on the command line (`--local-rank=N` since PyTorch 2.0, `--local_rank=N`
before), which a script that does not declare that flag rejects: cn_clip's scripts on PyTorch 2.x
(OFA-Sys/Chinese-CLIP#74; its answer is to launch with torchrun). Notebook 06 shows both launchers.
Without torchrun (WORLD_SIZE unset or 1) everything here is a cheap no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str | None = None  # None when not distributed
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def world_info_from_env() -> tuple[int, int, int]:
    """(local_rank, rank, world_size) as torchrun sets them; (0, 0, 1) for a plain process."""
    local_rank = _env_int("LOCAL_RANK", 0)
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE={world_size} must be >= 1")
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    if local_rank < 0:
        raise ValueError(f"LOCAL_RANK={local_rank} must be >= 0")
    return local_rank, rank, world_size


def _is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun prepared (env:// rendezvous) and pick this rank's device.

    backend: None -> "nccl" when CUDA is available, else "gloo"; any torch backend name overrides.
    A single process (WORLD_SIZE 1) creates no process group: the returned DistInfo still carries
    the device to use (cuda:LOCAL_RANK if CUDA is available, else cpu).
    """
    local_rank, rank, world_size = world_info_from_env()
    cuda = torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA "
                               f"device(s) are visible: use --nproc_per_node <= the GPU count")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size == 1:
        return DistInfo(rank, local_rank, 1, None, device)
    if backend is None:
        backend = "nccl" if cuda else "gloo"
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed support")
    if not _is_initialized():
        for var in ("MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise RuntimeError(f"WORLD_SIZE={world_size} but {var} is not set: start with torchrun "
                                   f"(it sets MASTER_ADDR/MASTER_PORT), or export them yourself")
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    return DistInfo(rank, local_rank, world_size, dist.get_backend(), device)


def get_rank() -> int:
    return dist.get_rank() if _is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if _is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the one that logs and writes checkpoints."""
    return get_rank() == 0


def barrier() -> None:
    if _is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (safe to call when there is none)."""
    if _is_initialized():
        dist.destroy_process_group()


def all_gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` along dim 0, as constants: (B, ...) -> (W*B, ...).

    All ranks must pass the same shape (a DistributedSampler with drop_last guarantees it).
    """
    if get_world_size() == 1:
        return x.detach()
    x = x.detach().contiguous()
    parts = [torch.empty_like(x) for _ in range(get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts, dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: all-gather along dim 0. Backward: sum each rank's gradient of the gathered tensor
    (every rank's loss depends on every slice), then keep this rank's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.world_size, ctx.batch = get_rank(), get_world_size(), x.shape[0]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(ctx.world_size)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)  # (W*B, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()  # all_reduce is in place; autograd's buffer is not ours
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.batch
        return grad[start:start + ctx.batch]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's `x` along dim 0, (B, ...) -> (W*B, ...), differentiably: the gradient
    reaching this rank's `x` is the SUM over ranks of their gradients for this rank's slice."""
    if get_world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)
