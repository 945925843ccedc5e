"""A distributed sampler that can start in the middle of an epoch (the "data offset").

Like cn_clip's set-up (DistributedSampler with `shuffle=True, seed=args.seed` over a dataset
padded to a multiple of the global batch), every epoch is one permutation of the padded index
range, seeded by `(seed, epoch)` and therefore identical on every rank and in every restart.
Rank r takes every world_size-th index starting at r, and its DataLoader cuts that list into
batches of `batch_size`.

What cn_clip lacks is a way back into the middle of that order: it resumes at the start of the
checkpoint's epoch. `start_batch` skips the batches this rank has already consumed, so a run
killed at step 1234 continues with exactly the batch it would have seen at step 1235.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableDistributedSampler(Sampler[int]):
    """Shuffled, padded, per-rank indices for one epoch, optionally skipping the first batches.

    dataset_len: number of samples; padded (wrapping around to the beginning, as cn_clip's
        `pad_dataset`) to a multiple of `batch_size * world_size`, so every rank sees the same
        number of full batches.
    """

    def __init__(self, dataset_len: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, shuffle: bool = True):
        if dataset_len <= 0:
            raise ValueError("ResumableDistributedSampler: the dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.dataset_len, self.batch_size = dataset_len, batch_size
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        global_batch = batch_size * world_size
        self.num_batches = math.ceil(dataset_len / global_batch)  # per epoch, same on every rank
        self.padded_len = self.num_batches * global_batch
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's permutation; skip its first `start_batch` batches (resume)."""
        if not 0 <= start_batch <= self.num_batches:
            raise ValueError(f"start_batch {start_batch} outside [0, {self.num_batches}]")
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_indices(self) -> list[int]:
        """This rank's full index list for the current epoch (before skipping)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.padded_len, generator=g)
        else:
            order = torch.arange(self.padded_len)
        order = order % self.dataset_len  # padding wraps to the beginning
        return order[self.rank::self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        return iter(indices[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.num_batches - self.start_batch) * self.batch_size
