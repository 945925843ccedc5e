"""Contrastive loss speed: our ClipLoss vs open_clip's ClipLoss (forward + backward, one process).

    .venv/bin/python bench/bench_loss.py            # CPU, N up to 2048, ~30 s on 2 free cores
    .venv/bin/python bench/bench_loss.py --full     # adds N = 8192, 16384 and runs on CUDA when available

Both compute the same (N, N) logits and two cross-entropies, so the ratio should be ~1; the extra
rows show what the known-positives mask (soft targets) and local_loss-style rows cost.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_info, markdown_table, timeit, write_section  # noqa: E402
from cnclip_edu.loss import ClipLoss, positive_mask_from_ids  # noqa: E402


def _open_clip_loss():
    spec = importlib.util.find_spec("open_clip")
    path = Path(spec.origin).parent / "loss.py"  # the loss module alone: the package import takes ~10 s
    mod_spec = importlib.util.spec_from_file_location("_oc_loss", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def _step(loss_fn, img, txt, scale, **kw):
    def run():
        i, t = img.detach().requires_grad_(), txt.detach().requires_grad_()
        loss_fn(i, t, scale, **kw).backward()
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if args.full and torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    oc = _open_clip_loss()
    sizes = [256, 1024, 2048] + ([8192, 16384] if args.full else [])
    for fn in (ClipLoss(), oc.ClipLoss()):  # warm-up (kernels, allocator)
        x = F.normalize(torch.randn(64, 512, device=device), dim=-1).requires_grad_()
        fn(x, x, 14.3).backward()
    rows = []
    for n in sizes:
        g = torch.Generator().manual_seed(0)
        img = F.normalize(torch.randn(n, 512, generator=g), dim=-1).to(device)
        txt = F.normalize(torch.randn(n, 512, generator=g), dim=-1).to(device)
        scale = torch.tensor(14.3, device=device)
        mask = positive_mask_from_ids(torch.randint(0, n // 2, (n,), generator=g)).to(device)  # many duplicates
        fns = {"ours": _step(ClipLoss(), img, txt, scale), "ref": _step(oc.ClipLoss(), img, txt, scale),
               "mask": _step(ClipLoss(), img, txt, scale, positive_mask=mask)}
        times = {k: [] for k in fns}
        for _ in range(5 if n <= 2048 else 3):  # interleaved, so a load spike hits all three alike
            for k, fn in fns.items():
                times[k].append(timeit(fn, repeat=1, warmup=0, sync=sync))
        t_ours, t_ref, t_mask = (statistics.median(times[k]) for k in ("ours", "ref", "mask"))
        rows.append([str(n), f"{t_ours * 1e3:.1f}", f"{t_ref * 1e3:.1f}", f"{t_ref / t_ours:.2f}",
                     f"{t_mask * 1e3:.1f}"])
        print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = "`.venv/bin/python bench/bench_loss.py" + (" --full`" if args.full else "`")
    md = (f"## Contrastive loss (forward + backward, D = 512, {device.type})\n\n"
          f"Command: {cmd}  \nMachine: {machine_info()}; load average {load:.1f} at the end of the run\n\n"
          + markdown_table(["N (batch)", "ClipLoss ms", "open_clip ClipLoss ms", "open_clip / ours",
                            "ClipLoss + positive_mask ms"], rows)
          + "\n\nSame loss value as open_clip (tests/test_loss.py). In one process open_clip multiplies "
            "text @ image.T a second time where we transpose the (N, N) logits, hence the ratio > 1. The mask "
            "column uses soft targets (N/2 distinct captions). The load average above says how busy the machine was.\n")
    write_section(f"loss-{device.type}", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
