"""Checkpoint save and resume for a hand-written loop (notebook 06, exercises 06.6 and 06.7).

What a killed run needs to continue *exactly* as if nothing had happened, and nothing more:

    {"model": inner model's state_dict (plain names, no DDP `module.` prefix),
     "optimizer": optimizer.state_dict()   (AdamW's moments and step counts: without them the next
                                            step is a first step again, with a different size),
     "step": optimiser steps done           (= index of the next step: the schedule's lr and the
                                            stopping point both come from it),
     "rng_state": torch.get_rng_state()     (random batch draws / augmentation after the resume
                                            repeat those of the uninterrupted run)}

The file is written atomically (`state.atomic_torch_save`: a temporary name in the same folder,
fsync, `os.replace`): a kill while `torch.save` is writing leaves the previous checkpoint whole.

The training script's checkpoint (`state.make_checkpoint`) holds the same things plus what a
multi-process run needs (every rank's RNG state, the data position of a resumable sampler, the
GradScaler) and stores cn_clip's `module.`-prefixed keys so that cn_clip can resume it; this one is
the single-process core, with the plain names that `model.load_state_dict` expects.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .state import atomic_torch_save


def _inner(model: nn.Module) -> nn.Module:
    """The model itself: a DistributedDataParallel (or anything with `.module`) is unwrapped."""
    return getattr(model, "module", model)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> Path:
    """Write the checkpoint after `step` optimiser steps, atomically; -> `path`."""
    state = {"model": {k: v.detach().cpu() for k, v in _inner(model).state_dict().items()},
             "optimizer": optimizer.state_dict(),
             "step": int(step),
             "rng_state": torch.get_rng_state()}
    return atomic_torch_save(state, path)


def resume_from(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load `path` into `model` (strictly; a wrapped model's inner one) and `optimizer`, restore torch's
    RNG; -> the number of steps done, which is the index of the step to run next."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)   # plain data only: no code unpickled
    _inner(model).load_state_dict(ckpt["model"])                       # strict: a wrong key raises
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["rng_state"])
    return int(ckpt["step"])
