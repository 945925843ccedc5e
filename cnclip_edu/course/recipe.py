"""The course checkpoint: the course-size model trained on the default toy world, shipped as package data.

    make toy-checkpoint            # = python -m cnclip_edu.course.recipe --out cnclip_edu/assets/course_model

`COURSE_RECIPE` is the recipe notebook 06 uses by default, so the shipped model and the one a student
trains are the same thing: ViT-Course@RBT-Course (32-px input, 16 patches, width 128), 2 processes
on CPU (gloo) with 32 pairs each (global batch 64), AdamW lr 5e-4, wd 0.1, betas (0.9, 0.98), 5 %
warmup then cosine, known positives (duplicate captions are not negatives). Measured on the toy world:
global batch 64 beat 128 at the same number of samples seen (validation R@1 0.23 vs 0.18 after 23k
samples: more updates, each one cheaper); lr 1e-3 collapsed to constant features; 64-px input learned
far slower per second. The course text tower has no dropout (RBT-Course.json): with dropout 0.1
the same 900 steps gave t2i R@1 0.35 / R@5 0.85, seen-combination zero-shot 0.73, 48-way held-out
0.43 on the toy test split (notebooks 07/08); without it 0.51 / 0.93, 0.98, 0.84 — a model this small,
trained this briefly, needs no regulariser. 800 steps (the default) take 2.7-3.3 minutes on 2 cores
at about 0.18 s/step (fused AdamW, padding trimmed and then skipped inside the text tower: text_unpad.py);
`bench/bench_course.py` measures it.

The weights are stored in fp16 (about 8 MB instead of 16 MB; `cc.load` casts back to fp32), next to
`training.json` with the recipe, the wall time and the final validation metrics, which
`tests/test_train_course_model.py` compares a short retraining against.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

from cnclip_edu.cli import InRange
from cnclip_edu.fileio import atomic_dir

COURSE_RECIPE: dict[str, object] = {
    "vision-model": "ViT-Course", "text-model": "RBT-Course", "batch-size": 32, "valid-batch-size": 128,
    "lr": 5e-4, "wd": 0.1, "beta1": 0.9, "beta2": 0.98, "eps": 1e-6, "max-steps": 800, "warmup-frac": 0.05,
    "num-workers": 0, "log-interval": 10, "save-step-frequency": 120, "context-length": 52, "seed": 123,
}
COURSE_NPROC = 2


def course_train_args(data_dir: str | os.PathLike, logs: str | os.PathLike, name: str = "course",
                      max_steps: int | None = None, known_positives: bool = True, **overrides) -> list[str]:
    """`cnclip-edu train` flags for the course recipe on a toy world (`data_dir` = .../data/toy).

    known_positives: pass --known-positives (the recipe's choice); False trains with plain InfoNCE.
    overrides: recipe values by flag name with underscores (batch_size=16, lr=1e-3, ...).
    """
    r = {**COURSE_RECIPE, **{k.replace("_", "-"): v for k, v in overrides.items()}}
    steps = int(max_steps or r.pop("max-steps"))
    r.pop("max-steps", None)
    warmup = max(1, round(float(r.pop("warmup-frac")) * steps))
    lmdb = Path(data_dir) / "lmdb"
    args = ["--train-data", str(lmdb / "train"), "--val-data", str(lmdb / "valid"), "--logs", str(logs),
            "--name", name, "--max-steps", str(steps), "--warmup", str(warmup),
            "--valid-step-interval", str(max(1, steps // 4))] + (["--known-positives"] if known_positives else [])
    for k, v in r.items():
        args += [f"--{k}", str(v)]
    return args


def build(out: Path, work_dir: Path, max_steps: int | None = None, nproc: int = COURSE_NPROC) -> dict:
    """Train the course model on the default toy world and save it (fp16) into `out`; -> training.json."""
    import torch

    from cnclip_edu.model.checkpoint import load, save
    from cnclip_edu.data.toy import ensure_toy_data
    from cnclip_edu.train.launch import run_torchrun

    data_dir = ensure_toy_data(work_dir)
    run_dir = work_dir / "experiments" / "course_model"
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run, never a resumed one
    args = course_train_args(data_dir, work_dir / "experiments", "course_model", max_steps)
    t0 = time.time()
    res = run_torchrun(args, nproc_per_node=nproc, live_plot=False)
    wall = time.time() - t0
    model, _ = load(str(run_dir / "final"))
    half = copy.deepcopy(model).to(torch.float16)
    valid = [m for m in res.metrics if m.get("type") == "valid"]
    info = {
        "recipe": {**COURSE_RECIPE, **({"max-steps": max_steps} if max_steps else {})}, "nproc_per_node": nproc,
        "train_args": args[4:], "train_wall_s": round(wall, 1), "train_final_loss": res.final_loss,
        "valid": valid[-1] if valid else None, "weights_dtype": "float16",
        "regenerate": "make toy-checkpoint",
    }
    with atomic_dir(out) as tmp:  # the old checkpoint stays until the new one is complete
        save(half, tmp)
        (tmp / "training.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnclip_edu.course.recipe", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "assets" / "course_model"))
    p.add_argument("--work-dir", "--work_dir", default="runs/course_model", help="toy data and the training run")
    p.add_argument("--max-steps", "--max_steps", type=int, default=None, action=InRange, lo=1)
    p.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=COURSE_NPROC, action=InRange, lo=1)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info = build(out, Path(a.work_dir), a.max_steps, a.nproc_per_node)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"course model -> {out} ({size:.1f} MB): {json.dumps(info['valid'], ensure_ascii=False)}; "
          f"{info['train_wall_s']} s of training")
    return 0


if __name__ == "__main__":
    sys.exit(main())
