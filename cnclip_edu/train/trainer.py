"""Contrastive training / finetuning of Chinese-CLIP, one process or under torchrun.

    # one process (CPU or one GPU)
    python -m cnclip_edu.train --train-data runs/course/data/toy/lmdb/train --val-data runs/course/data/toy/lmdb/valid \
        --vision-model ViT-Course --text-model RBT-Course --batch-size 64 --max-steps 300 --lr 5e-4 --wd 0.1 \
        --logs runs/course/experiments --name course
    # several processes: gloo on CPU, nccl on GPU (chosen automatically, --backend overrides). The `--`
    # ends torchrun's own flags: without it, torchrun reads our `--logs` as an ambiguous abbreviation
    # of its `--logs-specs` and refuses to start
    torchrun --standalone --nproc_per_node=8 -m -- cnclip_edu.train --train-data ${DATAPATH}/datasets/MUGE/lmdb/train \
        --vision-model ViT-B-16 --text-model RoBERTa-wwm-ext-base-chinese --resume clip_cn_vit-b-16.pt \
        --reset-data-offset --reset-optimizer --batch-size 128 --lr 5e-5 --wd 0.001 --warmup 100 --max-epochs 3 \
        --logs ${DATAPATH}/experiments --name muge_finetune

Flags are cn_clip's (`cn_clip/training/params.py`; underscore spellings accepted too). Output goes to
`<logs>/<name>/`: `out.log` (cn_clip's log lines), `metrics.jsonl` (one JSON object per log line),
`checkpoints/epoch_latest.pt` (+ `step{N}.pt` / `epoch{N}.pt`) and, at the end, `final/` in our model
format (`cnclip_edu.model.checkpoint.save`). Rerunning the same command resumes from `epoch_latest.pt`.
This file is the set-up and the entry point: the flags are in `params.py`, the loop in `loop.py`
(reading order of the package: params -> trainer -> loop -> data / accumulate / validate / logs / resume).
"""
from __future__ import annotations

import argparse
import contextlib
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
from cnclip_edu.fileio import OutputLocked, output_lock, remove_stale_temporaries
from cnclip_edu.loss import ClipLoss
from cnclip_edu.model.checkpoint import CheckpointError
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
from .state import seed_everything


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


def check_data_size(n: int, path: str, batch: int, world_size: int, accum: int = 1, what: str = "--train-data") -> str | None:
    """Refuse an empty LMDB or one smaller than a contrastive batch; -> a warning for validation.

    The sampler pads an epoch to whole global batches by repeating pairs (cn_clip's `pad_dataset`):
    harmless for a few pairs, but a batch larger than the dataset holds each pair several times,
    as its own negative, and the loss cannot fall below ln(copies per batch).
    """
    per_batch = batch * world_size * accum
    if n == 0:
        raise SystemExit(f"cnclip-edu train: {what} {path} holds no pairs (was every record skipped when it "
                         "was built?); rebuild it with `cnclip-edu build-lmdb`")
    if n >= per_batch:
        return None
    why = (f"{what} {path} holds {n} pairs, fewer than one batch of {per_batch} (batch {batch} x {world_size} "
           f"process(es){f' x accum {accum}' if accum > 1 else ''}): each pair would appear about "
           f"{per_batch / n:.1f} times in every batch")
    if what == "--val-data":
        return why + "; validation loss and accuracy are computed on those repeated pairs"
    raise SystemExit(f"cnclip-edu train: {why}, as its own negative (the loss stays near ln(copies)). "
                     f"Use --batch-size <= {max(1, n // (world_size * accum))}"
                     + (" and fewer processes" if n < world_size * accum else ""))


def build(args: argparse.Namespace, info: DistInfo, ckpt_dir: Path, run_dir: Path,
          log: logging.Logger) -> tuple[TrainRun, TrainState]:
    """Model (fresh, pretrained or resumed), optimiser, loss, data and logs for `loop.train`."""
    device = info.device
    set_kernels(args.deterministic, device)
    # the model: the same initial weights on every rank, then pretrained weights or our checkpoint
    seed_everything(args.seed)
    model = create_model(f"{args.vision_model}@{args.text_model}")
    if args.context_length > model.max_context_length:
        raise SystemExit(f"cnclip-edu train: --context-length must be <= {model.max_context_length} (the positions "
                         f"of the {args.text_model} text tower), got {args.context_length}")
    model.config.context_length = args.context_length
    # the data's size, before any weights are read: an empty or too small LMDB fails in a second
    train_set = LMDBDataset(args.train_data, model.image_resolution, args.context_length, args.use_augment)
    check_data_size(len(train_set), args.train_data, args.batch_size, info.world_size, args.accum_freq)
    val_set = LMDBDataset(args.val_data, model.image_resolution, args.context_length, False) if args.val_data else None
    if val_set is not None and (warning := check_data_size(len(val_set), args.val_data, args.valid_batch_size,
                                                           info.world_size, what="--val-data")):
        log.warning(warning)
    ckpt, source = resume_source(args, ckpt_dir, log)
    if ckpt is None and source:
        load_weights_only(model, source, log)
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
            ckpt, source, model, optimizer, scaler, args, info, log)
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
    sampler = ResumableDistributedSampler(len(train_set), args.batch_size, info.rank, info.world_size, args.seed)
    steps_per_epoch = sampler.num_batches // args.accum_freq  # >= 1: one global batch fits (checked above)
    max_steps = args.max_steps or steps_per_epoch * args.max_epochs
    val_loader = None
    if val_set is not None:
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
    lock = contextlib.ExitStack()
    if info.is_main:  # one training per run folder: a second one into the same folder stops here, naming the first
        try:
            lock.enter_context(output_lock(run_dir, "training run"))
        except OutputLocked as exc:  # torchrun stops the other ranks when this one exits
            print(f"cnclip-edu train: {exc}", file=sys.stderr)
            cleanup()
            return 1
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
    except CheckpointError as exc:  # --resume of another model, or an unreadable / unsafe file: the file says it
        log.error(str(exc))
        return 1
    finally:
        cleanup()
        lock.close()


@record  # under torchrun: a failing rank's traceback appears in torchrun's "Root Cause" summary
def main(argv: list[str] | None = None) -> int:
    """Entry point of `cnclip-edu train` / `python -m cnclip_edu.train`; returns the exit code."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
