"""Feeding the training loop: loaders whose order depends only on (seed, epoch), batches that carry
their record indices, padding columns trimmed, and the mask of known positives.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cnclip_edu.distributed import all_gather_no_grad
from cnclip_edu.loss import positive_mask_from_ids


def make_loader(dataset: Dataset, sampler, num_workers: int, seed: int, epoch: int) -> DataLoader:
    """A DataLoader whose randomness depends only on (seed, epoch), never on the global RNG.

    Without an explicit generator, creating the iterator draws the workers' base seed from the
    global torch RNG, so a run resumed mid-epoch would consume that RNG differently.
    """
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    return DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, num_workers=num_workers,
                      generator=g, pin_memory=torch.cuda.is_available(), drop_last=False)


def to_device(batch: Any, device: torch.device) -> list:
    """(images, tokens, ...) -> the same with tensors on `device`."""
    return [x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x for x in batch]


def trim_padding(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """(B, L) -> (B, L') without the trailing columns that are padding in every row.

    The text tower masks padding out of attention and reads only [CLS], so the features are the
    same; the work is not. Toy captions fill 38 of 52 positions at most in a typical batch, so
    this saves a quarter of the text tower's compute. Keeps at least [CLS].
    """
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return tokens[:, :length]


class WithIndex(Dataset):
    """`dataset[i] + (i,)`: batches carry their record indices, from which the dataset's `ids()`
    gives image / text ids (known positives, Recall@1) without changing the dataset itself."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


def batch_ids(batch: list, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(image_ids (B,), text_ids (B,)) of a WithIndex batch, if the dataset can name its records."""
    if len(batch) < 3 or not hasattr(dataset, "ids"):
        return None
    image_ids, text_ids = dataset.ids(batch[-1].tolist())
    return image_ids.to(batch[-1].device), text_ids.to(batch[-1].device)


def known_positive_mask(micro_batches: list[list], dataset: Dataset) -> torch.Tensor:
    """(W*K*B, W*K*B) bool over the global batch: image i matches text j when the two captions are
    identical, or when image i is one of text j's gold images (the dataset's `positive_mask`).

    Rank-major order, as ClipLoss gathers features: this rank's K micro-batches, concatenated.
    """
    tokens = torch.cat([b[1] for b in micro_batches])  # (K*B, L)
    ids = [batch_ids(b, dataset) for b in micro_batches] if hasattr(dataset, "positive_mask") else [None]
    if any(x is None for x in ids):
        return positive_mask_from_ids(all_gather_no_grad(tokens))  # (N, N): identical captions only
    # one all-gather instead of three (each is a wait for the slowest rank): token rows and both ids side by side
    image_ids, text_ids = torch.cat([x[0] for x in ids]), torch.cat([x[1] for x in ids])  # (K*B,) each
    packed = all_gather_no_grad(torch.cat([tokens.long(), image_ids[:, None].to(tokens.device),
                                           text_ids[:, None].to(tokens.device)], dim=1))  # (N, L + 2)
    mask = positive_mask_from_ids(packed[:, :-2])  # (N, N)
    gathered = packed[:, -2:].cpu()
    mask |= dataset.positive_mask(gathered[:, 0].tolist(), gathered[:, 1].tolist()).to(mask.device)
    return mask
