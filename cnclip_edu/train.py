"""Contrastive training / finetuning of Chinese-CLIP, one process or under torchrun.

    # one process (CPU or one GPU)
    python -m cnclip_edu.train --train-data runs/course/data/toy/lmdb/train --val-data runs/course/data/toy/lmdb/valid \
        --vision-model ViT-Course --text-model RBT-Course --batch-size 64 --max-steps 300 --lr 5e-4 --wd 0.1 \
        --logs runs/course/experiments --name course
    # several processes: gloo on CPU, nccl on GPU (chosen automatically, --backend overrides)
    torchrun --standalone --nproc_per_node=8 -m cnclip_edu.train --train-data ${DATAPATH}/datasets/MUGE/lmdb/train \
        --vision-model ViT-B-16 --text-model RoBERTa-wwm-ext-base-chinese --resume clip_cn_vit-b-16.pt \
        --reset-data-offset --reset-optimizer --batch-size 128 --lr 5e-5 --wd 0.001 --warmup 100 --max-epochs 3

Flags are cn_clip's (`cn_clip/training/params.py`; underscore spellings accepted too). Output goes to
`<logs>/<name>/`: `out.log` (cn_clip's log lines), `metrics.jsonl` (one JSON object per log line),
`checkpoints/epoch_latest.pt` (+ `step{N}.pt` / `epoch{N}.pt`) and, at the end, `final/` in our model
format (`cnclip_edu.checkpoint.save`). Rerunning the same command resumes from `epoch_latest.pt`.
This file is the command line and the set-up; the step, validation and logging are in `train_loop.py`.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from .accumulate import accumulated_step
from .checkpoint import save as save_model
from .data.dataset import LMDBDataset
from .distributed import DistInfo, cleanup, init_distributed, world_info_from_env
from .loss import ClipLoss
from .model import create_model
from .optim import CosineSchedule, build_optimizer
from .sampler import ResumableDistributedSampler
from .train_loop import (MetricsLog, NonFiniteLossError, WithIndex, autocast_factory, check_finite, evaluate,
                         known_positive_mask, log_train_line, make_loader, to_device,
                         trim_padding)
from .train_resume import gather_rng_states, load_weights_only, restore_training_state, resume_source
from .train_state import LATEST, atomic_torch_save, make_checkpoint, plain_args, remove_stale_temporaries, seed_everything

# cn_clip's per-backbone AdamW defaults (params.get_default_params); course sizes use the ViT ones.
_VIT_DEFAULTS = {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6}
_DEFAULTS = {"RN50": {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1.0e-8},
             "ViT-L-14": {"lr": 4.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6},
             "ViT-L-14-336": {"lr": 4.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6}}


def _flag(parser: argparse.ArgumentParser, name: str, **kw) -> None:
    """Add `--a-b` together with cn_clip's / argparse's underscore spelling `--a_b`."""
    names = [name] + (["--" + name[2:].replace("-", "_")] if "-" in name[2:] else [])
    parser.add_argument(*names, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnclip-edu train", description=__doc__.split("\n\n")[0])
    f = lambda *a, **k: _flag(p, *a, **k)  # noqa: E731
    # data
    f("--train-data", required=True, help="LMDB folder of the training split (with imgs/ and pairs/)")
    f("--val-data", default=None, help="LMDB folder of the validation split; None disables validation")
    f("--num-workers", type=int, default=2, help="DataLoader workers for training")
    f("--valid-num-workers", type=int, default=0)
    f("--batch-size", type=int, default=64, help="batch size per process")
    f("--valid-batch-size", type=int, default=64, help="validation batch size per process")
    f("--context-length", type=int, default=52, help="max text length incl. [CLS]/[SEP]")
    f("--use-augment", action="store_true", help="random augmentation of training images")
    # model
    f("--vision-model", default="ViT-B-16", help="ViT-B-16, ViT-L-14, ..., RN50, or the course size ViT-Course")
    f("--text-model", default="RoBERTa-wwm-ext-base-chinese", help="RoBERTa-wwm-ext-base-chinese, ..., RBT-Course")
    f("--resume", default=None, help="our checkpoint (full resume) or an official cn_clip .pt / model folder "
      "(weights only); default: <logs>/<name>/checkpoints/epoch_latest.pt if it exists")
    f("--reset-optimizer", action="store_true", help="on resume, start with a fresh optimizer")
    f("--reset-data-offset", action="store_true", help="on resume, start at step 0 of epoch 0")
    f("--freeze-vision", action="store_true", help="train the text tower only")
    f("--mask-ratio", type=float, default=0.0, help="FLIP: drop this fraction of image patches (ViT)")
    f("--grad-checkpointing", action="store_true", help="recompute activations in backward (less memory)")
    # optimisation
    f("--lr", type=float, default=None)
    f("--beta1", type=float, default=None)
    f("--beta2", type=float, default=None)
    f("--eps", type=float, default=None)
    f("--wd", type=float, default=0.2, help="weight decay (not on norms, biases, logit_scale)")
    f("--warmup", type=int, default=500, help="linear warmup steps")
    f("--max-steps", type=int, default=None, help="steps to train (wins over --max-epochs)")
    f("--max-epochs", type=int, default=32)
    f("--accum-freq", type=int, default=1, help="contrastive gradient accumulation over this many batches")
    f("--gather-with-grad", action="store_true", help="all-gather features with full gradient")
    f("--local-loss", action="store_true", help="loss rows for this rank's items only (O(B*N), not O(N*N))")
    f("--known-positives", action="store_true",
      help="identical captions / same image in a batch are positives, not negatives")
    f("--precision", choices=["amp", "fp16", "bf16", "fp32"], default=None,
      help="fp16/amp: fp16 autocast + GradScaler; bf16: bf16 autocast; default bf16 on CUDA, fp32 on CPU")
    f("--compile", action="store_true", help="torch.compile the model")
    # logging / checkpoints
    f("--logs", default="./logs/", help="output root; the run writes to <logs>/<name>/")
    f("--name", default="train_clip")
    f("--log-interval", type=int, default=10, help="log every N steps")
    f("--valid-step-interval", type=int, default=None, help="validate every N steps")
    f("--valid-epoch-interval", type=int, default=1, help="validate every N epochs")
    f("--save-step-frequency", type=int, default=-1, help="checkpoint every N steps (step{N}.pt + latest)")
    f("--save-epoch-frequency", type=int, default=1, help="checkpoint every N epochs (epoch{N}.pt + latest)")
    f("--keep-step-checkpoints", action="store_true", help="keep step{N}.pt files (default: latest only)")
    # system
    f("--seed", type=int, default=123)
    f("--backend", default=None, help="torch.distributed backend; default nccl with CUDA, else gloo")
    f("--device", default=None, help="cpu / cuda; default cuda:LOCAL_RANK when CUDA is available")
    f("--dist-timeout", type=float, default=120.0, help="seconds before a collective gives up (rank failure)")
    f("--deterministic", action="store_true", help="deterministic kernels: a resumed run equals an uninterrupted one")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for k, v in _DEFAULTS.get(args.vision_model, _VIT_DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    checks = [(args.batch_size > 0, "--batch-size must be > 0"), (args.accum_freq >= 1, "--accum-freq must be >= 1"),
              (0.0 <= args.mask_ratio < 1.0, "--mask-ratio must be in [0, 1)"), (args.warmup >= 0, "--warmup must be >= 0"),
              (args.max_steps is None or args.max_steps > 0, "--max-steps must be > 0"),
              (args.max_epochs is None or args.max_epochs > 0, "--max-epochs must be > 0")]
    for ok, msg in checks:
        if not ok:
            raise SystemExit(f"cnclip-edu train: {msg}")
    return args



# ----------------------------------------------------------------------------- set-up
def setup_device(args: argparse.Namespace) -> DistInfo:
    """Join torchrun's process group (if any) with a bounded timeout; pick this rank's device."""
    _, _, world_size = world_info_from_env()
    want_cpu = args.device is not None and args.device.startswith("cpu")
    backend = args.backend or ("gloo" if want_cpu or not torch.cuda.is_available() else "nccl")
    if world_size > 1 and not dist.is_initialized():
        # a rank that dies makes the others fail after `dist_timeout` s instead of hanging forever
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=args.dist_timeout))
    info = init_distributed(backend)
    if args.device is not None:
        info.device = torch.device(args.device if args.device != "cuda" else f"cuda:{info.local_rank}")
    return info


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


def precision_of(args: argparse.Namespace, device: torch.device) -> str:
    if args.precision is not None:
        return "fp16" if args.precision == "amp" else args.precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def _debug_step(name: str) -> int | None:
    """Test hooks (CNCLIP_DEBUG_*): failures are injected at a given 1-based step number."""
    raw = os.environ.get(name)
    return int(raw) if raw else None


# ----------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> int:
    info = setup_device(args)
    run_dir = Path(args.logs) / args.name
    ckpt_dir = run_dir / "checkpoints"
    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(ckpt_dir)
    if info.distributed:
        dist.barrier()
    log = setup_logging(run_dir, info.rank)
    try:
        return _train(args, info, run_dir, ckpt_dir, log)
    except NonFiniteLossError as exc:
        log.error(str(exc))
        return 3
    finally:
        cleanup()


def _train(args, info: DistInfo, run_dir: Path, ckpt_dir: Path, log: logging.Logger) -> int:
    device = info.device
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
    seed_everything(args.seed)  # same initial weights on every rank
    model = create_model(f"{args.vision_model}@{args.text_model}")
    model.config.context_length = args.context_length
    ckpt, weights_path = resume_source(args, ckpt_dir, log)
    if ckpt is None and weights_path:
        load_weights_only(model, weights_path, log)
    model.to(device)
    if args.freeze_vision:
        model.visual.requires_grad_(False)
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    precision = precision_of(args, device)
    optimizer = build_optimizer(model, args.lr, args.wd, (args.beta1, args.beta2), args.eps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step, epoch, batch_offset = 0, 0, 0
    if ckpt is not None:
        step, epoch, batch_offset = restore_training_state(ckpt, model, optimizer, scaler, args, info, log)
    else:
        seed_everything(args.seed + info.rank)  # different dropout masks per rank
    del ckpt

    fwd = torch.compile(model) if args.compile else model
    if info.distributed:
        fwd = torch.nn.parallel.DistributedDataParallel(
            fwd, device_ids=[device.index] if device.type == "cuda" else None, static_graph=args.grad_checkpointing,
            gradient_as_bucket_view=True)
    loss_fn = ClipLoss(args.local_loss, args.gather_with_grad or args.local_loss, info.rank, info.world_size)

    train_set = LMDBDataset(args.train_data, model.image_resolution, args.context_length, args.use_augment)
    train_indexed = WithIndex(train_set)
    sampler = ResumableDistributedSampler(len(train_set), args.batch_size, info.rank, info.world_size, args.seed)
    steps_per_epoch = sampler.num_batches // args.accum_freq
    if steps_per_epoch == 0:
        raise SystemExit(f"{args.train_data}: {len(train_set)} samples are fewer than one step "
                         f"(batch {args.batch_size} x {info.world_size} ranks x accum {args.accum_freq})")
    max_steps = args.max_steps or steps_per_epoch * args.max_epochs
    schedule = CosineSchedule(args.lr, args.warmup, max_steps)
    val_loader = None
    if args.val_data:
        val_set = LMDBDataset(args.val_data, model.image_resolution, args.context_length, False)
        val_loader = make_loader(WithIndex(val_set), ResumableDistributedSampler(
            len(val_set), args.valid_batch_size, info.rank, info.world_size, args.seed), args.valid_num_workers, args.seed, 0)
    metrics = MetricsLog(run_dir / "metrics.jsonl", enabled=info.is_main, keep_until_step=step)
    amp = autocast_factory(device, precision)
    global_batch = args.batch_size * info.world_size * args.accum_freq
    log.info(f"model {model.config.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
             f"{info.world_size} process(es), backend {info.backend or '-'}, device {device}, precision {precision}")
    log.info(f"{len(train_set)} training pairs, {steps_per_epoch} steps per epoch, max_steps {max_steps}, "
             f"global batch {global_batch}")

    done = {"valid": -1, "latest": -1}  # step of the last validation / epoch_latest.pt

    def save(extra_name: str | None = None) -> None:
        """epoch_latest.pt (+ `extra_name`, e.g. step100.pt); every rank calls it (RNG gather)."""
        if extra_name is None and done["latest"] == step:
            return
        rngs = gather_rng_states(info)
        done["latest"] = step
        if not info.is_main:
            return
        state = make_checkpoint(
            name=args.name, model_state=model.state_dict(), optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict() if scaler.is_enabled() else None, schedule=schedule.state_dict(),
            step=step, data_epoch=epoch, data_batch=batch_offset, rng_states=rngs,
            model_config=model.config.to_dict(), args=plain_args(args), world_size=info.world_size)
        for name in ([extra_name] if extra_name else []) + [LATEST]:
            t0 = time.time()
            atomic_torch_save(state, ckpt_dir / name)
            log.info(f"Saved checkpoint {ckpt_dir / name} (epoch {epoch} @ {step} steps) "
                     f"(writing took {time.time() - t0:.3f} seconds)")

    def validate() -> None:
        if val_loader is not None and done["valid"] != step:
            done["valid"] = step
            res = evaluate(model, val_loader, device, amp, info, log, epoch + (batch_offset > 0), step)
            metrics.write({"type": "valid", "step": step, "epoch": epoch, **res})
        train_mode()

    def train_mode() -> None:
        model.train()
        if args.freeze_vision:
            model.visual.eval()  # frozen BatchNorm statistics (RN50), as cn_clip

    kill_after, nan_at = _debug_step("CNCLIP_DEBUG_KILL_AFTER_STEP"), _debug_step("CNCLIP_DEBUG_NONFINITE_AT_STEP")
    fail_at, fail_rank = _debug_step("CNCLIP_DEBUG_FAIL_AT_STEP"), _debug_step("CNCLIP_DEBUG_FAIL_RANK") or 0
    model_kwargs = {"mask_ratio": args.mask_ratio} if args.mask_ratio > 0 else {}
    t_start = time.time()
    while step < max_steps:
        sampler.set_epoch(epoch, batch_offset)
        loader = make_loader(train_indexed, sampler, args.num_workers, args.seed, epoch)
        train_mode()
        batches = iter(loader)
        end = time.time()
        while step < max_steps:
            micro = [next(batches) for _ in range(args.accum_freq)]
            data_time = time.time() - end
            lr = schedule(optimizer, step)
            micro = [to_device(b, device) for b in micro]
            mask = known_positive_mask(micro, train_set) if args.known_positives else None
            optimizer.zero_grad(set_to_none=True)
            if fail_at == step + 1 and fail_rank == info.rank:
                raise RuntimeError(f"CNCLIP_DEBUG_FAIL_AT_STEP={fail_at}: simulated failure on rank {info.rank}")
            backward = (lambda l: scaler.scale(l * float("nan") if nan_at == step + 1 else l).backward())
            loss, acc = accumulated_step(fwd, [(b[0], trim_padding(b[1])) for b in micro], loss_fn, mask, backward, amp, model_kwargs)
            if nan_at == step + 1:
                loss = float("nan")
            check_finite(loss, step + 1, ckpt_dir, info)
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))  # as cn_clip (4.6052 = ln 100)
            step += 1
            batch_offset += args.accum_freq
            if batch_offset >= steps_per_epoch * args.accum_freq:
                epoch, batch_offset = epoch + 1, 0
            batch_time, end = time.time() - end, time.time()
            if step % args.log_interval == 0 or step == max_steps:
                rec = {"type": "train", "step": step, "epoch": epoch, "loss": loss, "i2t_acc": acc["i2t_acc"],
                       "t2i_acc": acc["t2i_acc"], "lr": lr, "logit_scale": model.logit_scale.item(),
                       "data_time": data_time, "batch_time": batch_time,
                       "samples_per_s": global_batch / max(batch_time, 1e-9), "elapsed_s": time.time() - t_start}
                log_train_line(log, rec, max_steps, steps_per_epoch, global_batch)
                metrics.write(rec)
            if args.valid_step_interval and step % args.valid_step_interval == 0:
                validate()
            if args.save_step_frequency > 0 and step % args.save_step_frequency == 0:
                save(f"step{step}.pt" if args.keep_step_checkpoints else None)
            if kill_after == step:
                log.warning(f"CNCLIP_DEBUG_KILL_AFTER_STEP={kill_after}: SIGKILL")
                os.kill(os.getpid(), signal.SIGKILL)
            if batch_offset == 0:  # an epoch just finished
                break
        if batch_offset == 0 and step > 0:  # end of an epoch
            if args.valid_epoch_interval and epoch % args.valid_epoch_interval == 0:
                validate()
            if args.save_epoch_frequency > 0 and epoch % args.save_epoch_frequency == 0:
                save(f"epoch{epoch}.pt")
    validate()
    save()
    if info.is_main:
        save_model(model, run_dir / "final")
        log.info(f"Saved the final model to {run_dir / 'final'} ({time.time() - t_start:.1f} s of training)")
    return 0


@record  # under torchrun: a failing rank's traceback appears in torchrun's "Root Cause" summary
def main(argv: list[str] | None = None) -> int:
    """Entry point of `cnclip-edu train` / `python -m cnclip_edu.train`; returns the exit code."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
