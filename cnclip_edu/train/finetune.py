"""The start of a finetune, in one place: trained weights in (weights only), a tower frozen, and an
optimizer over only what still trains.

The trainer does the same three things spread over `resume.load_weights_only`, `--freeze-vision` and
`optim.build_optimizer`; notebook 06 has the student write this function (exercise 06.8) and checks
it against what the trainer's `--resume <model> --freeze-vision` run changed. Why each part:

- `module.` keys: a checkpoint written by a DDP run stores `model.module`'s parameters under
  `module.<name>`; a plain model's names have no prefix, so the prefix must go before loading.
- strict loading: with `strict=False` a key mismatch (a forgotten prefix, another architecture)
  loads *nothing* for those keys and says nothing — the finetune would quietly start from random
  weights. Strict loading raises instead, naming the missing and unexpected keys.
- frozen parameters stay out of the optimizer: AdamW skips a parameter whose `.grad` is None, but it
  would still hold (and, with weight decay, touch) state for it once a gradient ever appeared; the
  trainer's optimizer is built after freezing for the same reason.
"""
from __future__ import annotations

import torch
from torch import nn

from .optim import build_optimizer
from .state import from_ddp_keys


def prepare_finetune(model: nn.Module, state_dict: dict[str, torch.Tensor], lr: float, weight_decay: float,
                     freeze_vision: bool = True) -> tuple[torch.optim.Optimizer, dict[str, int]]:
    """Load `state_dict` (keys may carry DDP's `module.`) strictly into `model`, freeze `model.visual` if
    asked, and build AdamW over the parameters that still need gradients (matrices decayed; norm gains,
    biases and `logit_scale` not). -> (optimizer, {"loaded": tensors loaded, "trainable": numbers that
    train, "frozen": numbers frozen})."""
    sd = from_ddp_keys(state_dict)
    model.load_state_dict(sd, strict=True)  # raises on a missing or an unexpected key
    if freeze_vision:
        model.visual.requires_grad_(False)
    optimizer = build_optimizer(model, lr, weight_decay)  # only parameters with requires_grad
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return optimizer, {"loaded": len(sd), "trainable": trainable, "frozen": frozen}
