"""The two logs of a run: cn_clip's text lines (stdout + `out.log`), so scripts that parse cn_clip logs
keep working, and `metrics.jsonl` (one JSON object per logged step), which the launcher's live plot
and the notebooks read without a regex.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cnclip_edu.fileio import atomic_write


def setup_logging(run_dir: Path, rank: int) -> logging.Logger:
    """cn_clip's line format on stdout (all ranks; rank > 0 warnings only) and in out.log (rank 0)."""
    fmt = logging.Formatter(f"%(asctime)s | %(levelname)s | Rank {rank} | %(message)s", "%Y-%m-%d,%H:%M:%S")
    log = logging.getLogger("cnclip_edu.train")
    for h in list(log.handlers):  # a second run in the same process (tests, notebooks)
        log.removeHandler(h)
        h.close()
    log.propagate = False
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if rank == 0:
        handlers.append(logging.FileHandler(run_dir / "out.log", encoding="utf-8"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


class MetricsLog:
    """Append-only JSONL (rank 0). On resume, lines beyond the resumed step are dropped first, so a
    run killed after its last checkpoint leaves no duplicate steps in the curves."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: int = 0):
        self.path, self.enabled = Path(path), enabled
        if enabled and self.path.exists():
            kept = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= keep_until_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
            atomic_write(self.path, "".join(k + "\n" for k in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def epoch_number(data_epoch: int, data_batch: int) -> int:
    """The 1-based epoch that the last completed step belongs to, as every log line shows it.

    cn_clip counts epochs from 1 in its logs ("Train Epoch: 1", "epoch 1 @ 150 steps"), while the
    position in the data is 0-based: (epoch e, next batch b). Mid-epoch (b > 0) the step just done
    is in epoch e + 1; at b == 0 the epoch e (1-based) has just been finished.
    """
    return data_epoch + (data_batch > 0)


def log_train_line(log: logging.Logger, r: dict, max_steps: int, steps_per_epoch: int, global_batch: int) -> None:
    """cn_clip's training log line."""
    in_epoch = (r["step"] - 1) % steps_per_epoch + 1
    log.info(f"Global Steps: {r['step']}/{max_steps} | "
             f"Train Epoch: {(r['step'] - 1) // steps_per_epoch + 1} [{in_epoch * global_batch}/"
             f"{steps_per_epoch * global_batch} ({100.0 * in_epoch / steps_per_epoch:.0f}%)] | "
             f"Loss: {r['loss']:.6f} | Image2Text Acc: {r['i2t_acc'] * 100:.2f} | "
             f"Text2Image Acc: {r['t2i_acc'] * 100:.2f} | Data Time: {r['data_time']:.3f}s | "
             f"Batch Time: {r['batch_time']:.3f}s | LR: {r['lr']:5f} | logit_scale: {r['logit_scale']:.3f} | "
             f"Global Batch Size: {global_batch}")
