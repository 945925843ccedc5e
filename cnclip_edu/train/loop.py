"""The training loop, top to bottom: fetch a batch, set the learning rate, forward and backward,
step, clamp the temperature, then log / validate / save on their intervals.

Everything the loop needs is built once by `trainer.build` into a `TrainRun`; everything that
changes as it goes (step, position in the data, what was last validated or saved) is the
`TrainState`, which is exactly what a checkpoint stores, so a killed run continues where it stopped.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from cnclip_edu.distributed import DistInfo
from cnclip_edu.loss import ClipLoss

from .accumulate import accumulated_step
from .data import WithIndex, known_positive_mask, make_loader, to_device, trim_padding
from .hooks import DebugHooks
from .logs import MetricsLog, epoch_number, log_train_line
from .optim import CosineSchedule
from .resume import gather_rng_states
from .sampler import ResumableDistributedSampler
from .state import LATEST, atomic_torch_save, make_checkpoint, plain_args
from .validate import evaluate


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf: training stops, the last checkpoint on disk is the last good one."""


@dataclass
class TrainRun:
    """What the loop works with, built once by `trainer.build` (model, optimiser, data, logs)."""
    args: argparse.Namespace
    info: DistInfo                  # rank, world size, device
    model: nn.Module                # the CLIP itself (its state_dict is what we save)
    fwd: nn.Module                  # what the forward pass calls: the model, compiled and/or wrapped in DDP
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler    # enabled for fp16 only
    schedule: CosineSchedule
    loss_fn: ClipLoss
    train_set: torch.utils.data.Dataset
    sampler: ResumableDistributedSampler
    val_loader: DataLoader | None
    metrics: MetricsLog
    amp: Callable[[], contextlib.AbstractContextManager]   # autocast factory
    ckpt_dir: Path
    log: logging.Logger
    steps_per_epoch: int
    max_steps: int
    global_batch: int               # batch x ranks x accumulation

    @property
    def device(self) -> torch.device:
        return self.info.device


@dataclass
class TrainState:
    """Where the run is. `epoch` / `batch_offset` locate the next batch in the data (a checkpoint's
    `data_offset`); the `last_*` steps stop a validation or save from running twice at one step."""
    step: int = 0
    epoch: int = 0
    batch_offset: int = 0
    last_valid_step: int = -1
    last_saved_step: int = -1

    def advance(self, accum_freq: int, steps_per_epoch: int) -> None:
        """One optimiser step done: `accum_freq` batches consumed; wrap to the next epoch at its end."""
        self.step += 1
        self.batch_offset += accum_freq
        if self.batch_offset >= steps_per_epoch * accum_freq:
            self.epoch, self.batch_offset = self.epoch + 1, 0

    @property
    def epoch_number(self) -> int:
        """1-based epoch of the last completed step, the number the log lines show (logs.epoch_number)."""
        return epoch_number(self.epoch, self.batch_offset)

    @property
    def at_epoch_start(self) -> bool:
        return self.batch_offset == 0


def train(r: TrainRun, s: TrainState, hooks: DebugHooks = DebugHooks()) -> float:
    """Train until `r.max_steps`; returns the seconds it took."""
    a = r.args
    t_start = time.time()
    while s.step < r.max_steps:
        # an epoch of data, from where the last one (or the killed run) stopped
        r.sampler.set_epoch(s.epoch, s.batch_offset)
        batches = iter(make_loader(WithIndex(r.train_set), r.sampler, a.num_workers, a.seed, s.epoch))
        train_mode(r)
        end = time.time()
        while s.step < r.max_steps:
            # fetch this step's accum_freq micro-batches
            micro = [next(batches) for _ in range(a.accum_freq)]
            data_time = time.time() - end
            # learning rate: linear warmup, then cosine decay
            lr = r.schedule(r.optimizer, s.step)
            # forward and backward over the whole global batch
            loss, acc = train_step(r, s, [to_device(b, r.device) for b in micro], hooks)
            # a NaN must not reach the weights: stop while the last checkpoint is still good
            check_finite(loss, s.step + 1, r.ckpt_dir, r.info)
            r.scaler.step(r.optimizer)
            r.scaler.update()
            # clamp the temperature to 4.6052 = ln(100), as in the CLIP paper and cn_clip
            clamp_logit_scale(r.model)
            s.advance(a.accum_freq, r.steps_per_epoch)
            batch_time, end = time.time() - end, time.time()
            # log, validate and save on their intervals
            if s.step % a.log_interval == 0 or s.step == r.max_steps:
                log_step(r, s, loss, acc, lr, data_time, batch_time, time.time() - t_start)
            if a.valid_step_interval and s.step % a.valid_step_interval == 0:
                validate(r, s)
            if a.save_step_frequency > 0 and s.step % a.save_step_frequency == 0:
                save(r, s, f"step{s.step}.pt" if a.keep_step_checkpoints else None)
            hooks.after_step(s.step, r.log)
            if s.at_epoch_start:  # the epoch is used up: the next one needs a new loader
                break
        # end of an epoch: validate and save on the epoch intervals
        if s.at_epoch_start and s.step > 0:
            if a.valid_epoch_interval and s.epoch % a.valid_epoch_interval == 0:
                validate(r, s)
            if a.save_epoch_frequency > 0 and s.epoch % a.save_epoch_frequency == 0:
                save(r, s, f"epoch{s.epoch}.pt")
    # the end: a last validation and checkpoint (each skipped if this step already has it)
    validate(r, s)
    save(r, s)
    return time.time() - t_start


def clamp_logit_scale(model: nn.Module) -> None:
    """Keep log(1/temperature) in [0, 4.6052 = ln(100)], as in the CLIP paper and cn_clip: a scale
    above 100 makes the softmax so sharp that a few hard negatives take over and training turns
    unstable. In place and outside autograd (a leaf that requires grad cannot be changed otherwise)."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))


def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: ClipLoss, images: torch.Tensor,
               tokens: torch.Tensor, positive_mask: torch.Tensor | None = None) -> float:
    """One optimiser step on one batch in one process (fp32, no accumulation, no DDP): zero the
    gradients, forward, loss, backward, step, clamp. `train` does the same per step, plus the
    schedule, mixed precision, accumulation and the NaN check; notebook 06 writes this by hand.

    images (B, 3, R, R), tokens (B, L); positive_mask (B, B) bool or None; -> the loss as a float.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, _ = accumulated_step(model, [(images, tokens)], loss_fn, positive_mask)  # one batch: a plain step
    optimizer.step()
    clamp_logit_scale(model)
    return loss


def train_step(r: TrainRun, s: TrainState, micro: list[list], hooks: DebugHooks) -> tuple[float, dict]:
    """Zero the gradients, then forward + backward over the micro-batches (their features cached, so K
    micro-batches give the gradient of one K-times larger batch); -> (loss, in-batch accuracies)."""
    mask = known_positive_mask(micro, r.train_set) if r.args.known_positives else None
    r.optimizer.zero_grad(set_to_none=True)
    hooks.before_step(s.step + 1, r.info.rank)
    poison = hooks.poisons(s.step + 1)

    def backward(loss: torch.Tensor) -> None:
        r.scaler.scale(loss * float("nan") if poison else loss).backward()

    batches = [(b[0], trim_padding(b[1])) for b in micro]  # (images, tokens without all-padding columns)
    model_kwargs = {"mask_ratio": r.args.mask_ratio} if r.args.mask_ratio > 0 else {}
    loss, acc = accumulated_step(r.fwd, batches, r.loss_fn, mask, backward, r.amp, model_kwargs)
    return (float("nan") if poison else loss), acc


def check_finite(loss: float, step: int, ckpt_dir: Path, info: DistInfo) -> None:
    """Raise NonFiniteLossError on every rank if the loss is NaN/inf on any rank."""
    bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0])
    if info.distributed:
        bad = bad.to(info.device)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() > 0:
        latest = ckpt_dir / LATEST
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"non-finite loss ({loss}) at step {step}: stopping before the optimizer step; {kept}. "
            "Lower --lr, use --precision bf16/fp32, or check the data of this step.")


def train_mode(r: TrainRun) -> None:
    r.model.train()
    if r.args.freeze_vision:
        r.model.visual.eval()  # frozen BatchNorm statistics (RN50), as cn_clip


def log_step(r: TrainRun, s: TrainState, loss: float, acc: dict, lr: float, data_time: float,
             batch_time: float, elapsed_s: float) -> None:
    """One training record: cn_clip's log line and a metrics.jsonl line."""
    rec = {"type": "train", "step": s.step, "epoch": s.epoch_number, "loss": loss, "i2t_acc": acc["i2t_acc"],
           "t2i_acc": acc["t2i_acc"], "lr": lr, "logit_scale": r.model.logit_scale.item(),
           "data_time": data_time, "batch_time": batch_time,
           "samples_per_s": r.global_batch / max(batch_time, 1e-9), "elapsed_s": elapsed_s,
           # what the loss above is, so that a plot can say so: over the global batch, with or without
           # known positives (multi-positive KL) -- not the same quantity as the validation loss
           "global_batch": r.global_batch, "known_positives": bool(r.args.known_positives)}
    log_train_line(r.log, rec, r.max_steps, r.steps_per_epoch, r.global_batch)
    r.metrics.write(rec)


def validate(r: TrainRun, s: TrainState) -> None:
    """Validate once per step (a step that hits two intervals validates once); back to train mode."""
    if r.val_loader is not None and s.last_valid_step != s.step:
        s.last_valid_step = s.step
        res = evaluate(r.model, r.val_loader, r.device, r.amp, r.info, r.log, s.epoch_number, s.step)
        # the validation loss is plain InfoNCE within batches of this size per rank (cn_clip's)
        r.metrics.write({"type": "valid", "step": s.step, "epoch": s.epoch_number,
                         "batch_size": r.args.valid_batch_size, **res})
    train_mode(r)


def save(r: TrainRun, s: TrainState, extra_name: str | None = None) -> None:
    """Write epoch_latest.pt (+ `extra_name`, e.g. step100.pt). Every rank calls it: the RNG states of
    all ranks are gathered into the checkpoint, so a resumed run draws the same random numbers."""
    if extra_name is None and s.last_saved_step == s.step:
        return
    rngs = gather_rng_states(r.info)
    s.last_saved_step = s.step
    if not r.info.is_main:
        return
    state = make_checkpoint(
        name=r.args.name, model_state=r.model.state_dict(), optimizer=r.optimizer.state_dict(),
        scaler=r.scaler.state_dict() if r.scaler.is_enabled() else None, schedule=r.schedule.state_dict(),
        step=s.step, data_epoch=s.epoch, data_batch=s.batch_offset, rng_states=rngs,
        model_config=r.model.config.to_dict(), args=plain_args(r.args), world_size=r.info.world_size)
    for name in ([extra_name] if extra_name else []) + [LATEST]:
        t0 = time.time()
        atomic_torch_save(state, r.ckpt_dir / name)
        r.log.info(f"Saved checkpoint {r.ckpt_dir / name} (epoch {s.epoch_number} @ {s.step} steps) "
                   f"(writing took {time.time() - t0:.3f} seconds)")
