"""Where a step of the course training goes: per-phase times of notebook 06's two-process run.

    python bench/bench_train_step.py phases --steps 60            # per-phase breakdown (2 gloo ranks)
    python bench/bench_train_step.py phases --steps 60 --profile  # + torch.profiler's top ops on rank 0
    python bench/bench_train_step.py e2e --steps 120 --rounds 2 --rev HEAD~1 --rev HEAD   # A/B/A/B

`phases` launches 2 ranks under torchrun exactly as notebook 06 does (course recipe, gloo, CPU,
OMP_NUM_THREADS=1 per rank as `run_torchrun` sets it), builds the run with `trainer.build`, and then
replays the body of `loop.train` step by step with a clock around each piece: fetching the batch
(LMDB read, decode, transform, tokenise), the known-positive mask (its all-gathers and id look-ups),
forward, loss (with the feature all-gather), backward (with DDP's gradient all-reduce), the
`.item()`s, the NaN check (an all-reduce), the optimizer step, the log line. A validation and a
checkpoint save are timed once at the end. Medians per phase, per rank.

`e2e` runs the real trainer (`run_torchrun`, nothing replayed) of each `--rev` (a git revision,
checked out into a temporary worktree; `.` = this working tree) alternately, `--rounds` times, and
reports the median step time from metrics.jsonl, the whole call's wall time and the last losses, so
that a change can be shown to keep the numbers bit for bit.
Writes section `train-step` of docs/benchmarks.md only with --write.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- worker (one rank)
def worker(a: argparse.Namespace) -> None:
    sys.path.insert(0, os.environ.get("BENCH_LIB", str(ROOT)))
    import torch

    from cnclip_edu.course.recipe import course_train_args
    from cnclip_edu.train import loop as L
    from cnclip_edu.train.data import WithIndex, known_positive_mask, make_loader, to_device, trim_padding
    from cnclip_edu.train.logs import setup_logging
    from cnclip_edu.train.trainer import build, parse_args, setup_device

    args = parse_args(course_train_args(a.data, a.logs, "phases", a.steps) + ["--device", "cpu"])
    info = setup_device(args)
    run_dir = Path(args.logs) / args.name
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    log = setup_logging(run_dir, info.rank)
    r, s = build(args, info, run_dir / "checkpoints", run_dir, log)
    times: dict[str, list[float]] = {}

    def clock(name: str, t0: float) -> float:
        t1 = time.perf_counter()
        times.setdefault(name, []).append(t1 - t0)
        return t1

    r.sampler.set_epoch(s.epoch, s.batch_offset)
    batches = iter(make_loader(WithIndex(r.train_set), r.sampler, args.num_workers, args.seed, s.epoch))
    L.train_mode(r)
    prof = None
    if a.profile and info.rank == 0:
        from torch.profiler import ProfilerActivity, profile

        prof = profile(activities=[ProfilerActivity.CPU])
    losses = []
    while s.step < r.max_steps:
        if prof is not None and s.step == a.warm:
            prof.__enter__()
        t_step = t = time.perf_counter()
        micro = [next(batches) for _ in range(args.accum_freq)]
        t = clock("fetch batch (LMDB, decode, transform, tokenise)", t)
        lr = r.schedule(r.optimizer, s.step)
        micro = [to_device(b, r.device) for b in micro]
        mask = known_positive_mask(micro, r.train_set) if args.known_positives else None
        t = clock("known-positive mask (3 all-gathers, id look-ups)", t)
        r.optimizer.zero_grad(set_to_none=True)
        images, tokens = micro[0][0], trim_padding(micro[0][1])
        t = clock("zero_grad, trim padding", t)
        img_f, txt_f, scale = r.fwd(images, tokens)
        t = clock("forward (DDP)", t)
        loss, metrics = r.loss_fn(img_f, txt_f, scale, mask, return_metrics=True)
        t = clock("loss (feature all-gather)", t)
        r.scaler.scale(loss).backward()
        t = clock("backward (+ DDP all-reduce)", t)
        loss_v, acc = loss.item(), {k: v.item() for k, v in metrics.items()}
        t = clock(".item()s", t)
        L.check_finite(loss_v, s.step + 1, r.ckpt_dir, r.info)
        t = clock("NaN check (all-reduce)", t)
        r.scaler.step(r.optimizer)
        r.scaler.update()
        t = clock("optimizer step", t)
        L.clamp_logit_scale(r.model)
        s.advance(args.accum_freq, r.steps_per_epoch)
        if s.step % args.log_interval == 0:
            L.log_step(r, s, loss_v, acc, lr, 0.0, 0.0, 0.0)
        t = clock("clamp, log", t)
        clock("whole step", t_step)
        losses.append(loss_v)
    if prof is not None:
        prof.__exit__(None, None, None)
    t = time.perf_counter()
    L.validate(r, s)
    t = clock("validation (once)", t)
    L.save(r, s)
    clock("checkpoint save (once)", t)
    out = {"rank": info.rank, "warm": a.warm, "losses": losses,
           "phases": {k: v[a.warm:] if len(v) > a.warm else v for k, v in times.items()}}
    if prof is not None:
        out["profile"] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    Path(a.out, f"rank{info.rank}.json").write_text(json.dumps(out))
    torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------- driver
def _toy(work: Path) -> Path:
    from cnclip_edu.data.toy import ensure_toy_data

    return ensure_toy_data(work)


def _lib_for(rev: str, keep: list) -> str:
    """A folder whose `cnclip_edu` is revision `rev` ('.' = this working tree)."""
    if rev == ".":
        return str(ROOT)
    if Path(rev).is_dir():  # a checkout of the revision to compare with
        return str(Path(rev).resolve())
    tmp = tempfile.TemporaryDirectory(prefix="bench-rev-")
    keep.append(tmp)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", tmp.name, rev], check=True,
                   capture_output=True)
    keep.append(lambda: subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", tmp.name],
                                       capture_output=True))
    return tmp.name


def phases(a: argparse.Namespace) -> None:
    work = Path(a.work_dir)
    data = _toy(work)
    keep: list = []
    lib = _lib_for(a.rev[0] if a.rev else ".", keep)
    try:
        with tempfile.TemporaryDirectory() as out:
            logs = Path(out) / "logs"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--",
                   str(Path(__file__).resolve()), "worker", "--data", str(data), "--logs", str(logs),
                   "--steps", str(a.steps), "--warm", str(a.warm), "--out", out] + (["--profile"] if a.profile else [])
            env = {**os.environ, "OMP_NUM_THREADS": a.threads, "PYTHONPATH": lib, "BENCH_LIB": lib}
            t0 = time.time()
            subprocess.run(cmd, check=True, env=env, capture_output=not a.verbose)
            wall = time.time() - t0
            ranks = [json.loads(Path(out, f"rank{i}.json").read_text()) for i in range(2)]
    finally:
        for k in reversed(keep):
            k() if callable(k) else k.cleanup()
    print(f"rev {a.rev[0] if a.rev else '.'}: {a.steps} steps ({a.warm} warm-up steps not counted), "
          f"OMP_NUM_THREADS={a.threads}, load {os.getloadavg()[0]:.1f}, wall {wall:.1f} s")
    print(f"{'phase':50s} {'rank0 ms':>9s} {'rank1 ms':>9s}")
    for name in ranks[0]["phases"]:
        med = [1000 * statistics.median(r["phases"][name]) for r in ranks]
        print(f"{name:50s} {med[0]:9.2f} {med[1]:9.2f}")
    print("last losses rank0:", [round(x, 6) for x in ranks[0]["losses"][-3:]])
    if a.profile:
        print(ranks[0]["profile"])


def e2e(a: argparse.Namespace) -> None:
    from cnclip_edu.course.recipe import course_train_args

    work = Path(a.work_dir)
    data = _toy(work)
    keep: list = []
    revs = a.rev or ["."]
    libs = {rev: _lib_for(rev, keep) for rev in revs}
    rows = []
    try:
        for rnd in range(a.rounds):
            for rev in revs:
                with tempfile.TemporaryDirectory() as out:
                    args = course_train_args(data, Path(out), "e2e", a.steps) + ["--device", "cpu"]
                    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "--", "cnclip_edu.train"] + args
                    env = {**os.environ, "OMP_NUM_THREADS": a.threads, "PYTHONPATH": libs[rev], "PYTHONUNBUFFERED": "1"}
                    load = os.getloadavg()[0]
                    t0 = time.time()
                    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=out)
                    wall = time.time() - t0
                    recs = [json.loads(x) for x in Path(out, "e2e", "metrics.jsonl").read_text().splitlines()]
                train = [x for x in recs if x["type"] == "train"]
                valid = [x for x in recs if x["type"] == "valid"]
                row = {"round": rnd, "rev": rev, "load": round(load, 1), "wall_s": round(wall, 1),
                       "train_s": round(train[-1]["elapsed_s"], 1),
                       "median_step_ms": round(1000 * statistics.median(x["batch_time"] for x in train), 1),
                       "median_data_ms": round(1000 * statistics.median(x["data_time"] for x in train), 1),
                       "last_loss": train[-1]["loss"], "valid_loss": valid[-1]["loss"] if valid else None,
                       "t2i_r1": valid[-1]["t2i_r1"] if valid else None}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for k in reversed(keep):
            k() if callable(k) else k.cleanup()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


# ----------------------------------------------------------------------------- notebook 11
def mllm(a: argparse.Namespace) -> None:
    """Notebook 11's stages (its default recipe, fewer steps), the body of `mllm.train.train_stage`
    replayed with a clock around each piece, in this process (the notebook trains in its kernel)."""
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = a.threads
    lib = _lib_for(a.rev[0] if a.rev else ".", keep := [])
    sys.path.insert(0, lib)
    import torch

    if a.threads:
        torch.set_num_threads(int(a.threads))
    import cnclip_edu as cc
    from cnclip_edu.mllm import recipe
    from cnclip_edu.mllm.batches import collate, encode_samples, model_device
    from cnclip_edu.mllm.train import length_batches, lr_at, next_token_loss, set_trainable
    from cnclip_edu.mllm.vlm import VLMConfig

    steps = tuple(int(x) for x in a.steps.split(","))
    torch.manual_seed(0)
    clip, preprocess = cc.load("course", device="cpu")
    clip.eval()
    cfg = recipe.RecipeConfig(seed=0, steps=steps, batch_size=64, n_train_canvases=3000, n_test_per_type=100,
                              n_heldout_per_combo=25, n_multi_round=150, vlm=VLMConfig(select_layer=-4))
    world = recipe.make_world(cfg)
    model, bank = recipe.build_model(cfg, world, clip.visual, preprocess)
    data = {"0": world.text_chats, "1": world.caption_chats, "2": world.sft_chats}
    print(f"rev {a.rev[0] if a.rev else '.'}: torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    for stage in recipe.stages(cfg):
        times: dict[str, list[float]] = {}

        def clock(name: str, t0: float) -> float:
            t1 = time.perf_counter()
            times.setdefault(name, []).append(t1 - t0)
            return t1

        set_trainable(model, stage.train)
        vit_trains = "vit" in stage.train
        if stage.with_image and not vit_trains and bank.features is None:
            bank.cache_features(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=stage.lr, betas=(0.9, 0.98), weight_decay=stage.weight_decay,
                                foreach=a.foreach or None)
        encoded = encode_samples(data[stage.name[0]], bank, model.vocab, model.tokens_per_tile, stage.with_image,
                                 stage.loss_on)
        batches = length_batches(encoded, stage.batch_size, stage.steps, stage.bucket, stage.seed)
        model.train()
        for step, chunk in enumerate(batches):
            t_step = t = time.perf_counter()
            b = collate([encoded[i] for i in chunk]).to(model_device(model))
            feats = bank.feats(model, b.images, grad=vit_trains) if stage.with_image else None
            t = clock("collate, image features", t)
            logits = model(b.ids, b.valid, feats)
            t = clock("forward", t)
            loss = next_token_loss(logits, b.labels)
            t = clock("loss", t)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, stage)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            t = clock("backward", t)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            t = clock("clip_grad_norm_", t)
            opt.step()
            t = clock("AdamW step", t)
            loss.item()
            t = clock(".item()", t)
            clock("whole step", t_step)
        model.eval()
        warm = min(3, stage.steps - 1)
        print(f"stage {stage.name}: {stage.steps} steps, median over steps {warm + 1}..")
        for name, v in times.items():
            print(f"  {name:28s} {1000 * statistics.median(v[warm:]):8.2f} ms")
    for k in reversed(keep):
        k() if callable(k) else k.cleanup()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--data", required=True)
    w.add_argument("--logs", required=True)
    w.add_argument("--out", required=True)
    w.add_argument("--steps", type=int, default=60)
    w.add_argument("--warm", type=int, default=10)
    w.add_argument("--profile", action="store_true")
    for name in ("phases", "e2e"):
        p = sub.add_parser(name)
        p.add_argument("--steps", type=int, default=60 if name == "phases" else 120)
        p.add_argument("--work-dir", default="/tmp/bench-train-step", help="the toy world lives here")
        p.add_argument("--rev", action="append", help="git revision(s) of cnclip_edu to run ('.' = working tree)")
        p.add_argument("--threads", default="1", help="OMP_NUM_THREADS per rank (run_torchrun: cores // 2)")
        p.add_argument("--verbose", action="store_true")
    ph = sub.choices["phases"]
    ph.add_argument("--warm", type=int, default=10)
    ph.add_argument("--profile", action="store_true")
    ee = sub.choices["e2e"]
    ee.add_argument("--rounds", type=int, default=2)
    ee.add_argument("--json", default=None)
    mm = sub.add_parser("mllm")
    mm.add_argument("--steps", default="20,10,30", help="steps of stages 0,1,2")
    mm.add_argument("--rev", action="append")
    mm.add_argument("--threads", default=None, help="torch threads (default: torch's, as the notebook)")
    mm.add_argument("--foreach", action="store_true", help="AdamW foreach=True (train_stage's choice)")
    a = ap.parse_args(argv)
    {"worker": worker, "phases": phases, "e2e": e2e, "mllm": mllm}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
