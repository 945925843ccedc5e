"""Training checkpoints: what to save so that a killed run continues as if nothing happened.

A checkpoint is a cn_clip-style dict (cn_clip's own `main.py` can resume its `state_dict`,
`epoch` and `step`), extended with what an exact restart needs:

    {"format": "cnclip_edu.train/1", "name", "epoch", "step",
     "state_dict": {"module.visual....": tensor, ...},   # DDP-style keys, like cn_clip's
     "optimizer", "scaler", "schedule",                   # AdamW + GradScaler + cosine schedule
     "data_offset": {"epoch": e, "batch": b},             # where the next batch comes from
     "rng_states": [per-rank {"python", "numpy", "torch", "cuda"}],
     "model_config": {...}, "args": {...}, "world_size": n}

Everything is tensors, numbers, strings, lists and dicts, so `torch.load(weights_only=True)`
reads it without unpickling code. Files are written atomically (`cnclip_edu.fileio`: temporary
name in the same folder, fsync, then `os.replace`): a SIGKILL during the write leaves the previous
checkpoint intact, never a truncated one, and the next run removes the temporary file.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnclip_edu.fileio import atomic_write
from cnclip_edu.model.checkpoint import CheckpointError, torch_load

FORMAT = "cnclip_edu.train/1"
LATEST = "epoch_latest.pt"


# ----------------------------------------------------------------------------- RNG states
def capture_rng_state() -> dict[str, Any]:
    """This process's python / numpy / torch (+ CUDA) RNG states, as weights_only-safe values."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state((nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"],
                         nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- state dict keys
def to_ddp_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`visual.x` -> `module.visual.x` (cn_clip saves its DistributedDataParallel's state_dict)."""
    return {(k if k.startswith("module.") else "module." + k): v for k, v in state_dict.items()}


def from_ddp_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip `module.` (DDP) and `_orig_mod.` (torch.compile) prefixes."""
    out = {}
    for k, v in state_dict.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


# ----------------------------------------------------------------------------- files
def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save through `fileio.atomic_write`: temporary file, fsync, rename over `path`."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def make_checkpoint(*, name: str, model_state: dict[str, torch.Tensor], optimizer: dict | None,
                    scaler: dict | None, schedule: dict | None, step: int, data_epoch: int, data_batch: int,
                    rng_states: list[dict], model_config: dict, args: dict, world_size: int) -> dict:
    """Assemble the checkpoint dict described in the module docstring."""
    return {
        "format": FORMAT, "name": name,
        "epoch": int(data_epoch), "step": int(step),
        "state_dict": to_ddp_keys({k: v.detach().cpu() for k, v in model_state.items()}),
        "optimizer": optimizer, "scaler": scaler, "schedule": schedule,
        "data_offset": {"epoch": int(data_epoch), "batch": int(data_batch)},
        "rng_states": rng_states, "model_config": model_config, "args": args, "world_size": int(world_size),
    }


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint with `weights_only=True`; CheckpointError for unreadable or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = torch_load(path, mmap=False)  # read into memory: the optimizer state is updated in place
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    return ckpt


def is_training_checkpoint(ckpt: dict) -> bool:
    """True for our own resumable checkpoints (vs. an official cn_clip `.pt` = weights only)."""
    return ckpt.get("format") == FORMAT


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """`<checkpoint_dir>/epoch_latest.pt` if it exists (automatic resume of the same run)."""
    p = Path(checkpoint_dir) / LATEST
    return p if p.is_file() else None


def plain_args(args: Any) -> dict:
    """argparse Namespace -> dict of str/int/float/bool/None (weights_only-safe)."""
    out = {}
    for k, v in vars(args).items():
        if v is None or isinstance(v, (str, int, float, bool)):
            out[k] = v
        elif isinstance(v, (list, tuple)):
            out[k] = [x if isinstance(x, (str, int, float, bool)) else str(x) for x in v]
        else:
            out[k] = str(v)
    return out
