"""Exercise 06.4 of notebook 06 (training under torchrun): hello, rank: init_process_group +
DistributedSampler + all_reduce.

Compared with the library's `train.hello.hello_rank`, run in forked ranks (`train.hello.run_forked`) on
data sets a batch or the number of ranks does not divide. The mutants: no DistributedSampler, a seed per
rank (shards overlap), no all_reduce.
"""
from __future__ import annotations

from .core import Case, Exercise, register


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
