"""PyTorch vs ONNX Runtime (and TensorRT on a GPU): latency and throughput of the image and text towers.

    .venv/bin/python bench/bench_onnx.py                      # CPU: course, RN50, ViT-B-16 (random weights)
    .venv/bin/python bench/bench_onnx.py --device cuda        # GPU: PyTorch fp16, ORT CUDA EP fp16, TensorRT fp16
    .venv/bin/python bench/bench_onnx.py --models course --repeat 20

Each model is exported once (dynamic batch) and the SAME file is timed at every batch size.
Latency = median wall time of one call with a batch of B; throughput = B / latency. On CUDA every
call is synchronized, and ONNX Runtime's numbers include the host->device copy of numpy inputs
(that is how OnnxEncoder is used), while TensorRT and PyTorch get inputs already on the GPU.
Writes section `onnx` (CPU) or `onnx-cuda` of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import device_section, git_rev, machine_info, markdown_table, timeit, write_section  # noqa: E402

import cnclip_edu as cc  # noqa: E402
from cnclip_edu.deploy import export as E  # noqa: E402

# Chinese-CLIP's deployment table, ViT-B/16, batch 1, their T4 GPU (their fp16 ONNX / TensorRT).
CN_CLIP_T4 = {"image": (11.12, 4.92, 3.58), "text": (12.47, 3.42, 1.54)}


def _inputs(model, b: int):
    g = torch.Generator().manual_seed(b)
    r = model.image_resolution
    x = torch.randn(b, 3, r, r, generator=g)  # (B, 3, R, R)
    t = cc.tokenize(["一只橘色的猫趴在红色的沙发上"] * b, context_length=model.context_length)  # (B, L)
    return x, t


def bench_model(name: str, batches: list[int], repeat: int, device: str, out_dir: Path, threads: int) -> list[list]:
    torch.manual_seed(0)
    model = cc.create_model(name).eval()
    t0 = time.perf_counter()
    image_onnx, text_onnx = E.export_onnx(model, out_dir / name)
    export_s = time.perf_counter() - t0
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    runners = {}  # label -> (encode_image, encode_text, wants_gpu_input)
    if cuda:
        gpu_model = copy.deepcopy(model).half().to(device).eval()
        runners["PyTorch fp16"] = (gpu_model.encode_image, gpu_model.encode_text, True)
        img16, txt16 = E.to_fp16(image_onnx), E.to_fp16(text_onnx)
        ort = E.OnnxEncoder(img16, txt16, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        if "CUDAExecutionProvider" in ort.active_providers():
            runners["ORT CUDA fp16"] = (ort.encode_image, ort.encode_text, False)
        else:  # ONNX Runtime falls back to the CPU silently: do not time that under a CUDA label
            print("ORT CUDA skipped: this onnxruntime has no working CUDAExecutionProvider (pip install '.[gpu]')")
        from cnclip_edu.deploy import trt as T

        reason = T.unavailable_reason()
        if reason:
            print(f"TensorRT skipped: {reason}")
        else:
            eng = T.TrtEncoder(T.build_engine(img16, max_batch=max(batches)), T.build_engine(txt16, max_batch=max(batches)))
            runners["TensorRT fp16"] = (eng.encode_image, eng.encode_text, True)
    else:
        runners["PyTorch fp32"] = (model.encode_image, model.encode_text, False)
        ort = E.OnnxEncoder(image_onnx, text_onnx, providers=["CPUExecutionProvider"], threads=threads)
        runners["ORT CPU fp32"] = (ort.encode_image, ort.encode_text, False)

    rows = []
    for b in batches:
        x, t = _inputs(model, b)
        with torch.no_grad():
            ref = {"image": model.encode_image(x), "text": model.encode_text(t)}
            for label, (fi, ft, on_gpu) in runners.items():
                for tower, fn, inp in (("image", fi, x), ("text", ft, t)):
                    inp = inp.to(device) if on_gpu else inp
                    out = fn(inp).float().cpu()  # also the warm-up call
                    cos = torch.nn.functional.cosine_similarity(out, ref[tower]).min().item()
                    sec = timeit(lambda: fn(inp), repeat=repeat, warmup=0, sync=sync)
                    rows.append([name, tower, b, label, round(1000 * sec, 2), round(b / sec, 1), f"{cos:.6f}"])
                    print(rows[-1], flush=True)
    print(f"{name}: export {export_s:.1f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["course", "RN50", "ViT-B-16"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per cell (default 10 for course, 2 for the official sizes)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(),
                    help="CPU threads for BOTH PyTorch and ONNX Runtime (1 is steadier on a busy machine)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            repeat = args.repeat or (10 if name == "course" else 2)
            rows += bench_model(name, args.batches, repeat, args.device, Path(tmp), args.threads)
    wall = time.perf_counter() - t0

    cmd = " ".join(["python bench/bench_onnx.py", *argv])
    header = ["model", "tower", "batch", "runner", "latency ms", "items/s", "min cos vs PyTorch fp32"]
    ratios = []
    for name in args.models:
        for tower in ("image", "text"):
            for b in args.batches:
                cell = {r[3]: r[4] for r in rows if r[0] == name and r[1] == tower and r[2] == b}
                base = next(iter(cell.values()))
                ratios.append([name, tower, b] + [f"{base / ms:.2f}x" for ms in list(cell.values())[1:]])
    runner_names = list(dict.fromkeys(r[3] for r in rows))
    md = "\n\n".join([
        "## ONNX export: PyTorch vs ONNX Runtime" + (" vs TensorRT" if args.device != "cpu" else ""),
        f"Command: `{cmd}` (git {git_rev()}, {wall:.0f} s in all). Machine: {machine_info()}. "
        f"PyTorch and ONNX Runtime both ran with {args.threads} CPU thread(s). Load average {load0:.1f} at the "
        f"start, {os.getloadavg()[0]:.1f} at the end.",
        "Random weights at the official shapes (speed does not depend on the values). One exported file per "
        "tower, timed at every batch size (the batch axis is dynamic). Latency is the median of repeated calls; "
        "throughput = batch / latency. `min cos` checks that the runner computes the same features.",
        markdown_table(header, rows),
        f"Speed-up over {runner_names[0]} (latency ratio):",
        markdown_table(["model", "tower", "batch"] + runner_names[1:], ratios),
        "For reference, **Chinese-CLIP's own numbers on their hardware** (NVIDIA T4, ViT-B/16, batch 1, from "
        "their deployment document; not measured here):",
        markdown_table(["tower", "PyTorch ms", "ONNX ms", "TensorRT ms"],
                       [[k, *v] for k, v in CN_CLIP_T4.items()]),
        "Notes: the load average above says how busy the machine was; the ratios within one run are the useful "
        "part. ONNX Runtime gains most where PyTorch's per-op overhead dominates (small models, batch 1). The "
        "text rows hold 16 real tokens of the context length: PyTorch skips the padding (text_unpad.py) while "
        "the exported graph, fixed at the context length, computes every position, so PyTorch wins on text at "
        "batch 32. On a GPU run `--device cuda` (needs `pip install '.[gpu]'`).",
    ])
    print("\n" + md)
    if not args.no_write:
        write_section(device_section("onnx", args.device), md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
