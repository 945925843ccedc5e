"""Hello, rank: the smallest DDP program, to see what torchrun gives each process before the trainer.

    torchrun --standalone --nproc_per_node=2 -m cnclip_edu.train.hello --dataset-len 10 --batch-size 2
    torchrun ... -m cnclip_edu.train.hello --worker my_clip/ex06_4.py ...   # a student's hello_rank

Each worker joins the process group (gloo runs on CPU; NCCL needs one GPU per process), reads its
share of a dataset through `DistributedSampler`, and sums a number over all ranks with `all_reduce`.
These are the three collective ideas of the trainer (trainer.setup_device, sampler.py, the summed
validation metrics), alone and small enough that the output can be checked by hand: the shards are
disjoint and together cover the dataset, so the all-reduced sum of the indices is 0 + 1 + ... + N-1.

`run_forked` runs such a function in N forked processes with the environment torchrun would set
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): a second instead of a torchrun start-up, which is what
the exercise checker of notebook 06 needs to run a student's version a few times.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pickle
import runpy
import socket
import sys
import traceback
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler


def hello_rank(dataset_len: int = 10, batch_size: int = 2, seed: int = 0) -> dict[str, Any]:
    """What every worker runs: join the group, read this rank's shard, all_reduce the index sum."""
    dist.init_process_group("gloo")  # rendezvous at MASTER_ADDR:MASTER_PORT; RANK and WORLD_SIZE from the env
    rank, world_size = dist.get_rank(), dist.get_world_size()
    data = list(range(dataset_len))  # a dataset whose items are their own indices
    # the same seed on every rank -> the same permutation; rank r keeps every world_size-th index
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(0)  # a new permutation per epoch: call it at the start of every epoch
    batches = [b.tolist() for b in DataLoader(data, batch_size=batch_size, sampler=sampler)]
    local_sum = sum(sum(b) for b in batches)
    total = torch.tensor(local_sum)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # in place: afterwards every rank holds the sum
    dist.destroy_process_group()
    return {"rank": rank, "world_size": world_size, "batches": batches, "local_sum": local_sum,
            "global_sum": int(total.item())}


def load_function(path: str | os.PathLike, name: str) -> Callable[..., Any]:
    """The function `name` defined in a Python file (a student's cell saved by %%my_clip)."""
    namespace = runpy.run_path(str(path), run_name="course_worker")
    if name not in namespace:
        raise AttributeError(f"{path} defines no function {name!r}")
    return namespace[name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(fn: Callable, rank: int, world_size: int, port: int, kwargs: dict, queue) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(world_size), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    # a forked child must not enter the OpenMP thread pool its parent already started: GNU OpenMP is not
    # fork-safe, and the child's first parallel op would hang for ever. One thread per rank, as torchrun
    # gives each worker its share of the cores anyway.
    import torch

    torch.set_num_threads(1)
    try:
        # pickled here, by value: the queue's own pickler would send tensors as shared memory that
        # disappears when this process exits
        queue.put((rank, "ok", pickle.dumps(fn(**kwargs))))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises
        queue.put((rank, type(exc).__name__, f"{exc}\n{traceback.format_exc(limit=-3)}"))


def run_forked(fn: Callable[..., Any], nproc: int = 2, timeout_s: float = 60.0, **kwargs) -> list[Any]:
    """fn(**kwargs) in `nproc` forked processes set up as torchrun sets its workers; -> results by rank.

    Raises NotImplementedError if a rank did (an unanswered exercise), RuntimeError naming the rank
    for any other exception, TimeoutError if the ranks do not finish (a collective that not every
    rank joins waits forever).
    """
    if "fork" not in mp.get_all_start_methods():
        raise RuntimeError("run_forked needs the 'fork' start method (Linux, macOS); on Windows use WSL, "
                           "or run the function under torchrun as `python -m cnclip_edu.train.hello` is run")
    ctx = mp.get_context("fork")  # the child inherits fn as it is: no pickling, no second import of torch
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_child, args=(fn, r, nproc, port, kwargs, queue), daemon=True) for r in range(nproc)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    done = False
    try:
        for _ in range(nproc):
            try:
                rank, status, value = queue.get(timeout=timeout_s)
            except Exception:  # queue.Empty
                raise TimeoutError(f"the {nproc} processes did not finish within {timeout_s:.0f} s: does every "
                                   "rank call the same collectives (init_process_group, all_reduce)?") from None
            if status == "NotImplementedError":
                raise NotImplementedError(value)
            if status != "ok":
                raise RuntimeError(f"rank {rank} raised {status}: {value}")
            results[rank] = pickle.loads(value)
        done = True
    finally:
        for p in procs:  # after a failure the other ranks may wait in a collective forever: no grace period
            p.join(timeout=5 if done else 0)
            if p.is_alive():
                p.kill()
                p.join()
    return [results[r] for r in range(nproc)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnclip_edu.train.hello", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset-len", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", default=None, help="a Python file defining hello_rank (default: the library's)")
    a = p.parse_args(argv)
    try:
        fn = load_function(a.worker, "hello_rank") if a.worker else hello_rank
        out = fn(a.dataset_len, a.batch_size, a.seed)
    except Exception as exc:  # one line the notebook can show, after the traceback torchrun prints
        traceback.print_exc()
        print(f"hello_rank 出错 (rank {os.environ.get('RANK', '0')}): {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return 1
    # what the launcher handed this process: torchrun sets LOCAL_RANK and adds no argument
    out.update(argv=sys.argv[1:], LOCAL_RANK=os.environ.get("LOCAL_RANK"))
    # One JSON line per rank, which the notebook parses. One write() call, not print(): the ranks
    # share a pipe, and print writes the text and its newline separately when stdout is unbuffered
    # (PYTHONUNBUFFERED), so two ranks' lines could interleave. A pipe write under 4 KiB is atomic.
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
