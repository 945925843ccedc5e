"""Training throughput: our CLIP + ClipLoss vs cn_clip's CLIP + its loss, same size, batch and precision.

    .venv/bin/python bench/bench_train.py                                  # CPU, course size, batch 128, fp32
    .venv/bin/python bench/bench_train.py --device cuda --model ViT-B-16 --batch-size 128 --precision bf16

One training step = AdamW zero_grad, forward, symmetric InfoNCE loss, backward, optimizer step, on
random images and token rows (fixed across steps). cn_clip's loss is computed as in
cn_clip/training/train.py (logits = scale * img @ txt.T, two cross-entropies / 2). Each side runs in
its own subprocess (clean peak memory: CUDA max_memory_allocated, or the process's peak RSS on CPU),
the two alternating `--rounds` times; we keep each side's best median step time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import device_section, machine_info, markdown_table, timeit, write_section  # noqa: E402


def _inputs(cfg: dict, batch: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    r = cfg["image_resolution"]
    images = torch.randn(batch, 3, r, r, generator=g)
    tokens = torch.zeros(batch, 52, dtype=torch.long)
    lengths = torch.randint(4, 20, (batch,), generator=g)
    for i, n in enumerate(lengths.tolist()):
        tokens[i, 0], tokens[i, 1:n - 1], tokens[i, n - 1] = 101, torch.randint(672, 7000, (n - 2,), generator=g), 102
    return images.to(device), tokens.to(device)


def worker(impl: str, model_name: str, batch: int, precision: str, device: str, steps: int) -> dict:
    """Time `steps` training steps of one implementation in this process."""
    import torch
    import torch.nn.functional as F

    from cnclip_edu.model import create_model
    from cnclip_edu.train.optim import build_optimizer

    torch.manual_seed(0)
    ours = create_model(model_name)
    cfg = ours.config.to_dict()
    if impl == "ours":
        from cnclip_edu.loss import ClipLoss

        model, loss_fn = ours, ClipLoss()

        def compute_loss(images, tokens):
            img_f, txt_f, scale = model(images, tokens)
            return loss_fn(img_f, txt_f, scale)
    else:
        from cn_clip.clip.model import CLIP as CnCLIP

        kw = {k: v for k, v in cfg.items() if k not in ("vision_model", "text_model", "context_length")}
        model = CnCLIP(**kw)
        del ours

        def compute_loss(images, tokens):  # as cn_clip/training/train.py get_loss (one process)
            img_f, txt_f, scale = model(images, tokens)
            logits_per_image = scale * img_f @ txt_f.t()
            logits_per_text = scale * txt_f @ img_f.t()
            labels = torch.arange(len(logits_per_image), device=logits_per_image.device)
            return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
    dev = torch.device(device)
    model.to(dev).train()
    opt = build_optimizer(model, 5e-4, 0.1)
    images, tokens = _inputs(cfg, batch, dev)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = compute_loss(images, tokens)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    sync = torch.cuda.synchronize if dev.type == "cuda" else None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cpu0 = time.process_time()
    sec = timeit(step, repeat=steps, warmup=2, sync=sync)
    cpu_per_step = (time.process_time() - cpu0) / (steps + 2)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"impl": impl, "step_s": sec, "cpu_s": cpu_per_step, "samples_per_s": batch / sec, "peak_mb": peak / 2**20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="course", help="'course' or a released name such as ViT-B-16")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="alternating ours / cn_clip subprocess rounds")
    p.add_argument("--worker", choices=["ours", "cn_clip"], help=argparse.SUPPRESS)
    p.add_argument("--no-write", action="store_true", help="print only, do not update docs/benchmarks.md")
    a = p.parse_args(argv)
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.model, a.batch_size, a.precision, a.device, a.steps)))
        return 0
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("bench_train: --device cuda skipped: no CUDA device on this machine", file=sys.stderr)
            return 0
    best: dict[str, dict] = {}
    for _ in range(a.rounds):
        for impl in ("ours", "cn_clip"):
            cmd = [sys.executable, __file__, "--worker", impl, "--model", a.model, "--batch-size", str(a.batch_size),
                   "--precision", a.precision, "--device", a.device, "--steps", str(a.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode != 0 or not lines:
                print(out.stdout + out.stderr, file=sys.stderr)
                return 1
            r = json.loads(lines[-1][7:])
            if impl not in best or r["step_s"] < best[impl]["step_s"]:
                best[impl] = r
            print(f"{impl:8s} {r['step_s'] * 1000:8.1f} ms/step  {r['samples_per_s']:8.1f} samples/s  "
                  f"cpu {r['cpu_s'] * 1000:7.1f} ms/step  peak {r['peak_mb']:.0f} MB", flush=True)
    o, c = best["ours"], best["cn_clip"]
    rows = [[name, round(r["step_s"] * 1000, 1), round(r["samples_per_s"], 1), round(r["cpu_s"] * 1000, 1),
             round(r["peak_mb"])] for name, r in (("cnclip_edu", o), ("cn_clip 1.6.0", c))]
    mem = "peak CUDA memory MB" if a.device.startswith("cuda") else "peak RSS MB (whole process)"
    md = "\n".join([
        f"Training step (AdamW, forward, InfoNCE, backward, update), model `{a.model}`, batch {a.batch_size}, "
        f"{a.precision}, device `{a.device}`.",
        "",
        f"Command: `.venv/bin/python bench/bench_train.py --model {a.model} --batch-size {a.batch_size} "
        f"--precision {a.precision} --device {a.device} --steps {a.steps} --rounds {a.rounds}` (best median of "
        f"{a.rounds} alternating rounds of {a.steps} steps per implementation)",
        "",
        f"Machine: {machine_info()}",
        "",
        markdown_table(["implementation", "ms / step (median)", "samples / s", "CPU ms / step", mem], rows),
        "",
        f"Speed-up (cn_clip time / ours): **{c['step_s'] / o['step_s']:.2f}x**.",
    ])
    print("\n" + md)
    if not a.no_write:
        write_section(device_section("train", a.device, a.model, a.precision), md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
