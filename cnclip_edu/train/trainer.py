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
format (`cnclip_edu.model.checkpoint.save`). Rerunning the same command resumes from `epoch_latest.pt`.
This file is the set-up and the entry point: the flags are in `params.py`, the loop in `loop.py`
(reading order of the package: params -> trainer -> loop -> data / accumulate / validate / logs / resume).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from cnclip_edu.data.dataset import LMDBDataset
from cnclip_edu.distributed import DistInfo, cleanup, init_distributed, world_info_from_env
from cnclip_edu.loss import ClipLoss
from cnclip_edu.model.checkpoint import save as save_model
from cnclip_edu.model.clip import create_model

from .data import WithIndex, make_loader
from .hooks import DebugHooks
from .logs import MetricsLog, setup_logging
from .loop import NonFiniteLossError, TrainRun, TrainState, train
from .optim import CosineSchedule, build_optimizer
from .params import build_parser, parse_args  # noqa: F401  (build_parser: for --help in docs and tests)
from .precision import autocast_factory, grad_scaler, precision_of
from .resume import load_weights_only, restore_training_state, resume_source
from .sampler import ResumableDistributedSampler
from .state import remove_stale_temporaries, seed_everything


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


def set_kernels(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels (a resumed run equals an uninterrupted one) or the fast ones on GPU."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True


def build(args: argparse.Namespace, info: DistInfo, ckpt_dir: Path, run_dir: Path,
          log: logging.Logger) -> tuple[TrainRun, TrainState]:
    """Model (fresh, pretrained or resumed), optimiser, loss, data and logs for `loop.train`."""
    device = info.device
    set_kernels(args.deterministic, device)
    # the model: the same initial weights on every rank, then pretrained weights or our checkpoint
    seed_everything(args.seed)
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
    # optimiser and precision; a full checkpoint restores them with the position in the data
    precision = precision_of(args, device)
    optimizer = build_optimizer(model, args.lr, args.wd, (args.beta1, args.beta2), args.eps)
    scaler = grad_scaler(device, precision)
    state = TrainState()
    if ckpt is not None:
        state.step, state.epoch, state.batch_offset = restore_training_state(
            ckpt, model, optimizer, scaler, args, info, log)
    else:
        seed_everything(args.seed + info.rank)  # different dropout masks per rank
    del ckpt
    fwd = torch.compile(model) if args.compile else model
    if info.distributed:
        fwd = torch.nn.parallel.DistributedDataParallel(
            fwd, device_ids=[device.index] if device.type == "cuda" else None, static_graph=args.grad_checkpointing,
            gradient_as_bucket_view=True)
    loss_fn = ClipLoss(args.local_loss, args.gather_with_grad or args.local_loss, info.rank, info.world_size)
    # data: each rank reads its own share of every global batch
    train_set = LMDBDataset(args.train_data, model.image_resolution, args.context_length, args.use_augment)
    sampler = ResumableDistributedSampler(len(train_set), args.batch_size, info.rank, info.world_size, args.seed)
    steps_per_epoch = sampler.num_batches // args.accum_freq
    if steps_per_epoch == 0:
        raise SystemExit(f"{args.train_data}: {len(train_set)} samples are fewer than one step "
                         f"(batch {args.batch_size} x {info.world_size} ranks x accum {args.accum_freq})")
    max_steps = args.max_steps or steps_per_epoch * args.max_epochs
    val_loader = None
    if args.val_data:
        val_set = LMDBDataset(args.val_data, model.image_resolution, args.context_length, False)
        val_loader = make_loader(WithIndex(val_set), ResumableDistributedSampler(
            len(val_set), args.valid_batch_size, info.rank, info.world_size, args.seed), args.valid_num_workers, args.seed, 0)
    run = TrainRun(
        args=args, info=info, model=model, fwd=fwd, optimizer=optimizer, scaler=scaler,
        schedule=CosineSchedule(args.lr, args.warmup, max_steps), loss_fn=loss_fn, train_set=train_set,
        sampler=sampler, val_loader=val_loader,
        metrics=MetricsLog(run_dir / "metrics.jsonl", enabled=info.is_main, keep_until_step=state.step),
        amp=autocast_factory(device, precision), ckpt_dir=ckpt_dir, log=log, steps_per_epoch=steps_per_epoch,
        max_steps=max_steps, global_batch=args.batch_size * info.world_size * args.accum_freq)
    log.info(f"model {model.config.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
             f"{info.world_size} process(es), backend {info.backend or '-'}, device {device}, precision {precision}")
    log.info(f"{len(train_set)} training pairs, {steps_per_epoch} steps per epoch, max_steps {max_steps}, "
             f"global batch {run.global_batch}")
    return run, state


def run(args: argparse.Namespace) -> int:
    """Join the process group, set up, train, save the final model; -> exit code (3: non-finite loss)."""
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
        train_run, state = build(args, info, ckpt_dir, run_dir, log)
        seconds = train(train_run, state, DebugHooks.from_env())
        if info.is_main:
            save_model(train_run.model, run_dir / "final")
            log.info(f"Saved the final model to {run_dir / 'final'} ({seconds:.1f} s of training)")
        return 0
    except NonFiniteLossError as exc:
        log.error(str(exc))
        return 3
    finally:
        cleanup()


@record  # under torchrun: a failing rank's traceback appears in torchrun's "Root Cause" summary
def main(argv: list[str] | None = None) -> int:
    """Entry point of `cnclip-edu train` / `python -m cnclip_edu.train`; returns the exit code."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
