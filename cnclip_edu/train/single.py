"""The smallest complete training loop: one process, no logging, no checkpoints (notebook 06, exercise 06.3).

`train` in loop.py is this loop plus DDP, mixed precision, accumulation, validation, checkpoints and
resume. This one keeps only what every loop needs, so that it can be read (and written) in one sitting:
batches taken epoch after epoch until `steps` is reached (a loader is one pass over the data, a
training run is counted in steps), moved to the model's device, the step's learning rate written into
*every* parameter group before the step, then one optimiser step.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from ..loss import ClipLoss, positive_mask_from_ids

StepFn = Callable[..., float]            # (model, optimizer, loss_fn, images, tokens, positive_mask) -> loss
LrFn = Callable[[int, float, int, int], float]   # (step, base_lr, warmup, total_steps) -> lr


def train_loop(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, loss_fn: ClipLoss,
               steps: int, base_lr: float, warmup: int, step_fn: StepFn, lr_fn: LrFn,
               device: str | torch.device = "cpu", known_positives: bool = True) -> list[float]:
    """Train `steps` optimiser steps; -> the loss of every step.

    loader yields (images (B, 3, R, R), tokens (B, L)); when it runs out before `steps`, a new epoch
    starts (iterating the loader again reshuffles it). Step k (0-based) uses lr_fn(k, base_lr, warmup,
    steps) in every parameter group (AdamW's decay / no-decay groups both need it). known_positives:
    identical captions in a batch count as positives (`positive_mask_from_ids`), else plain InfoNCE.
    """
    model.train()
    losses: list[float] = []
    while len(losses) < steps:
        progressed = False
        for images, tokens in loader:               # one epoch
            if len(losses) == steps:
                break
            progressed = True
            images, tokens = images.to(device), tokens.to(device)                # (B, 3, R, R), (B, L)
            mask = positive_mask_from_ids(tokens) if known_positives else None  # (B, B) bool or None
            lr = lr_fn(len(losses), base_lr, warmup, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            losses.append(float(step_fn(model, optimizer, loss_fn, images, tokens, mask)))
        if not progressed:
            raise ValueError("the loader yielded no batch: with drop_last=True it needs at least batch_size samples")
    return losses
