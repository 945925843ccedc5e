"""Precision: which number format the forward pass runs in, and the GradScaler that fp16 needs.

bf16 has fp32's exponent range, so its gradients never underflow and need no scaler; fp16 does
(`amp`/`fp16`: autocast + GradScaler, as cn_clip's `--precision amp`). Default: bf16 on a GPU that
has it, else fp32.
"""
from __future__ import annotations

import argparse
import contextlib
from typing import Callable

import torch


def precision_of(args: argparse.Namespace, device: torch.device) -> str:
    """"fp32" | "bf16" | "fp16" for this run (`--precision amp` is fp16 with a scaler)."""
    if args.precision is not None:
        return "fp16" if args.precision == "amp" else args.precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast_factory(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument factory of the forward pass's autocast context (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only (a disabled scaler is a no-op with the same interface)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
