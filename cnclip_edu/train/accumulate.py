"""Gradient accumulation for a contrastive loss, with a feature cache (cn_clip / open_clip `--accum_freq`).

    loss, metrics = accumulated_step(model, [(images_1, tokens_1), (images_2, tokens_2)], loss_fn)
    optimizer.step(); optimizer.zero_grad()

Why not plain accumulation (sum the losses of K small batches)? A contrastive loss is not a sum over
items: every item's loss depends on all the others through the softmax's denominator. K batches of B
give K losses with B-1 negatives each, not one loss with K*B-1. The feature cache gets the big-batch
loss with small-batch memory:

1. no-grad pass: encode every micro-batch, keep only the features (K*B x D numbers, tiny);
2. for each micro-batch j: encode it again *with* grad, splice its features into the cached ones,
   compute the loss of the whole K*B batch and backward. Only micro-batch j's activations are alive.

Summed over j, the feature gradients are exactly those of one big batch: pass j supplies d(L)/d(f_j)
and the cached slices are constants. Two details make it exact rather than approximate:
- logit_scale enters every pass, so its gradient would be counted K times (cn_clip and open_clip do
  this); we scale its gradient by 1/K in each pass.
- dropout (the text tower has some) must draw the same masks in both passes, or the cached features
  are not the ones we differentiate; we replay each micro-batch's RNG state, as activation
  checkpointing does.
BatchNorm layers in train mode (RN50) still update their running statistics twice; freeze them
(cn_clip's --freeze_vision does) if that matters.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from cnclip_edu.loss import ClipLoss, scale_grad

Batch = Sequence[Any]  # (images, tokens): the model is called as model(images, tokens, **model_kwargs)


class _RngState:
    """Snapshot of the CPU and current-CUDA-device generators, to replay a forward pass's randomness."""

    def __init__(self, device: torch.device | None):
        self.cpu = torch.get_rng_state()
        self.cuda_device = device if device is not None and device.type == "cuda" else None
        self.cuda = torch.cuda.get_rng_state(self.cuda_device) if self.cuda_device is not None else None

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda_device is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_device)


def _first_device(batch: Batch) -> torch.device | None:
    return next((x.device for x in batch if isinstance(x, torch.Tensor)), None)


def accumulated_step(model: nn.Module, micro_batches: Sequence[Batch], loss_fn: ClipLoss,
                     positive_mask: torch.Tensor | None = None,
                     backward: Callable[[torch.Tensor], None] | None = None,
                     autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                     model_kwargs: dict | None = None) -> tuple[float, dict[str, float]]:
    """Forward + backward of one optimizer step over K micro-batches, as if they were one batch.

    model: model(images, tokens, **model_kwargs) -> (image_features, text_features, logit_scale),
        features L2-normalised, logit_scale exp()'d (the CLIP forward). May be DDP-wrapped: the
        gradient all-reduce then runs once, on the last micro-batch (`no_sync` for the others).
    micro_batches: K (images, tokens) pairs of equal size B; the big batch is their concatenation
        (under DDP: this rank's part of the global batch, rank-major as ClipLoss gathers it).
    loss_fn: a ClipLoss (its rank/world_size handle the cross-rank gather).
    positive_mask: optional bool mask over the global batch (W*K*B)^2, see ClipLoss.
    backward: how to backprop a loss (default loss.backward(); with AMP:
        `lambda l: scaler.scale(l).backward()`). Gradients are accumulated into .grad: zero them before.
    autocast: context-manager factory wrapped around every forward (e.g. `lambda: torch.autocast("cuda")`).
    Returns (loss of the big batch, {"i2t_acc", "t2i_acc"}) as Python floats.
    """
    if len(micro_batches) == 0:
        raise ValueError("accumulated_step needs at least one micro-batch")
    backward = backward or (lambda loss: loss.backward())
    model_kwargs = model_kwargs or {}
    k = len(micro_batches)
    if k == 1:  # nothing to cache: a plain step
        with autocast():
            img_f, txt_f, logit_scale = model(*micro_batches[0], **model_kwargs)
            loss, metrics = loss_fn(img_f, txt_f, logit_scale, positive_mask, return_metrics=True)
        backward(loss)
        return loss.item(), {name: v.item() for name, v in metrics.items()}

    # 1. no-grad pass: cache every micro-batch's features and the RNG state it started from
    cache_img, cache_txt, rng = [], [], []
    with torch.no_grad(), autocast():
        for batch in micro_batches:
            rng.append(_RngState(_first_device(batch)))
            img_f, txt_f, _ = model(*batch, **model_kwargs)  # (B, D) each
            cache_img.append(img_f)
            cache_txt.append(txt_f)
    sizes = {f.shape[0] for f in cache_img}
    if len(sizes) != 1:
        raise ValueError(f"micro-batches must all have the same size, got {[f.shape[0] for f in cache_img]}")
    rng_after = _RngState(_first_device(micro_batches[-1]))

    # 2. grad pass: one micro-batch at a time against the cached rest
    no_sync = getattr(model, "no_sync", None)  # DDP: all-reduce only once, after the last backward
    for j, batch in enumerate(micro_batches):
        sync_ctx = no_sync() if (no_sync is not None and j < k - 1) else contextlib.nullcontext()
        with sync_ctx:
            rng[j].restore()
            with autocast():
                img_j, txt_j, logit_scale = model(*batch, **model_kwargs)
                img_f = torch.cat(cache_img[:j] + [img_j] + cache_img[j + 1:])  # (K*B, D)
                txt_f = torch.cat(cache_txt[:j] + [txt_j] + cache_txt[j + 1:])
                # every pass differentiates the same L w.r.t. logit_scale: count it once in total
                logit_scale = scale_grad(logit_scale, 1.0 / k)
                if j == k - 1:
                    loss, metrics = loss_fn(img_f, txt_f, logit_scale, positive_mask, return_metrics=True)
                else:
                    loss = loss_fn(img_f, txt_f, logit_scale, positive_mask)
            backward(loss)
    rng_after.restore()
    return loss.item(), {name: v.item() for name, v in metrics.items()}
