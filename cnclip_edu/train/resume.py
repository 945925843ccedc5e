"""Where a training run starts from: its own latest checkpoint, a full checkpoint, or pretrained weights.

cn_clip's `--resume` means two things: our own training checkpoint (continue the run exactly:
optimizer, scaler, data position, RNG states) or an official `.pt` (a pretrained start: weights
only, step 0). A rerun of the same command must continue where it stopped, so this run's
`epoch_latest.pt` wins over both. The checkpoint *format* lives in `state.py`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import torch.distributed as dist

from cnclip_edu.model.checkpoint import check_fits, load_weights, read_checkpoint
from cnclip_edu.distributed import DistInfo
from .logs import epoch_number
from .state import (capture_rng_state, from_ddp_keys, is_training_checkpoint, latest_checkpoint,
                          load_checkpoint, restore_rng_state, seed_everything)


def load_weights_only(model: torch.nn.Module, path: str, log: logging.Logger) -> None:
    """Official cn_clip .pt, HF folder or our model folder: weights into `model` (pretrained start)."""
    sd, config = read_checkpoint(path)
    load_weights(model, sd, source=path, config=config)  # strict; names what does not fit
    log.info(f"=> loaded pretrained weights from '{path}' (weights only: fresh optimizer, step 0)")


def resume_source(args: argparse.Namespace, ckpt_dir: Path, log: logging.Logger) -> tuple[dict | None, str | None]:
    """(our training checkpoint to resume fully, or None; its path, else the path of weights to load
    only, or None).

    Priority: an explicit --resume that is our checkpoint; else this run's epoch_latest.pt (a rerun
    of the same command continues, even when --resume names the pretrained start); else --resume
    as weights only (official cn_clip .pt, HF or our model folder).
    """
    explicit = args.resume
    if explicit and Path(explicit).is_file() and explicit.endswith((".pt", ".pth", ".bin")):
        ckpt = load_checkpoint(explicit)
        if is_training_checkpoint(ckpt):
            return ckpt, explicit
    latest = latest_checkpoint(ckpt_dir)
    if latest is not None:
        if explicit:
            log.info(f"=> {latest} exists: continuing this run (--resume {explicit} was its starting point)")
        return load_checkpoint(latest), str(latest)
    if explicit and not Path(explicit).exists():
        raise FileNotFoundError(f"--resume {explicit}: no such file or folder")
    return None, explicit


def restore_training_state(ckpt: dict, path: str, model, optimizer, scaler, args, info: DistInfo,
                           log) -> tuple[int, int, int]:
    """Load the full checkpoint `ckpt` (read from `path`); returns (step, data epoch, data batch) to
    continue from. A checkpoint of another model raises CheckpointError (file, its model, ours)."""
    sd = from_ddp_keys(ckpt["state_dict"])
    check_fits(model, sd, path, ckpt.get("model_config"))  # strict: no resizing when resuming a run
    model.load_state_dict(sd)
    if not args.reset_optimizer and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        log.info("=> optimizer state is restored from the checkpoint")
    if args.reset_data_offset:
        return 0, 0, 0
    step, off = int(ckpt["step"]), ckpt["data_offset"]
    epoch_done = epoch_number(int(off["epoch"]), int(off["batch"]))  # 1-based, as the save line said
    same_layout = ckpt.get("world_size") == info.world_size and ckpt.get("args", {}).get("batch_size") == args.batch_size
    rngs = ckpt.get("rng_states") or []
    if same_layout and len(rngs) == info.world_size:
        restore_rng_state(rngs[info.rank])
    else:
        log.warning("world size or batch size changed since the checkpoint: continuing at the start of its "
                    "epoch with fresh RNG states (--reset-data-offset starts the data from the beginning)")
        seed_everything(args.seed + info.rank + step)
        off = {"epoch": off["epoch"], "batch": 0}
    log.info(f"=> loaded checkpoint (epoch {epoch_done} @ {step} steps; "
             f"the data continues at batch {off['batch']} of epoch {int(off['epoch']) + 1})")
    return step, int(off["epoch"]), int(off["batch"])


def gather_rng_states(info: DistInfo) -> list[dict]:
    state = capture_rng_state()
    if info.world_size == 1:
        return [state]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, state)
    return out
