"""Wall time of the course training run (notebook 06's default, `make toy-checkpoint`'s recipe).

    .venv/bin/python bench/bench_course.py                          # CPU: 2 gloo processes, as notebook 06
    .venv/bin/python bench/bench_course.py --device cuda --nproc 1  # one GPU (nccl)
    .venv/bin/python bench/bench_course.py --steps 200 --no-write   # a quick look

Trains `COURSE_RECIPE` (ViT-Course@RBT-Course, global batch 64, 800 steps) on the default toy world
under torchrun, exactly as notebook 06 does, and reports: the wall time of the torchrun call
(process start-up, data, 4 validations and checkpoints included), the median step time, the
validation Recall@1 at the end. The notebook tests record this wall time but never bound it: how
fast a shared CI machine runs is not a property of the code, so the number lives here.
Writes section `course` (CPU) or `course-cuda` of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import device_section, git_rev, machine_info, markdown_table, write_section  # noqa: E402
from cnclip_edu.course.recipe import COURSE_RECIPE, course_train_args  # noqa: E402
from cnclip_edu.data.toy import ensure_toy_data  # noqa: E402
from cnclip_edu.train.launch import run_torchrun  # noqa: E402


def run_once(work: Path, device: str, nproc: int, steps: int) -> dict:
    data = ensure_toy_data(work)
    args = course_train_args(data, work / "experiments", f"bench_{device}_{nproc}", steps)
    if device != "cpu":
        args += ["--device", device]
    res = run_torchrun(args, nproc_per_node=nproc, live_plot=False, echo=False)
    train = [m for m in res.metrics if m.get("type") == "train"]
    valid = [m for m in res.metrics if m.get("type") == "valid"]
    return {"wall_s": res.wall_s, "step_ms": 1000 * statistics.median(m["batch_time"] for m in train),
            "train_s": train[-1]["elapsed_s"], "final_loss": res.final_loss,
            "t2i_r1": valid[-1]["t2i_r1"] if valid else float("nan"), "i2t_r1": valid[-1]["i2t_r1"] if valid else float("nan")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (nccl)")
    ap.add_argument("--nproc", type=int, default=None, help="processes (default: 2 on CPU, 1 on CUDA)")
    ap.add_argument("--steps", type=int, default=int(COURSE_RECIPE["max-steps"]))
    ap.add_argument("--work-dir", default=None, help="keep the toy data and runs here (default: a temporary folder)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    argv = sys.argv[1:] if argv is None else list(argv)
    a = ap.parse_args(argv)
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("bench_course: --device cuda skipped: no CUDA device on this machine", file=sys.stderr)
            return 0
    nproc = a.nproc or (2 if a.device == "cpu" else 1)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        r = run_once(Path(a.work_dir or tmp), a.device, nproc, a.steps)
    row = [a.device, nproc, a.steps, round(r["wall_s"], 1), round(r["train_s"], 1), round(r["step_ms"], 1),
           round(r["final_loss"], 4), round(r["t2i_r1"], 3), round(r["i2t_r1"], 3)]
    md = "\n\n".join([
        f"## Course training run (notebook 06's default recipe), {a.device}",
        f"Command: `{' '.join(['python bench/bench_course.py', *argv])}` (git {git_rev()}). Machine: {machine_info()}. "
        f"Load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        markdown_table(["device", "processes", "steps", "wall s (torchrun call)", "s to last step",
                        "median ms / step", "final train loss", "valid t2i R@1", "valid i2t R@1"], [row]),
        "Wall = the whole torchrun call (start-up, toy LMDB reads, validations, checkpoints, final save); the "
        "toy world is generated before the clock starts. Valid R@1 is the in-training check on the valid split "
        "(notebook 07 measures the test split).",
    ])
    print(md)
    if not a.no_write:
        write_section(device_section("course", a.device), md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
