"""Chapter 06: contrastive training, one process or under torchrun (`python -m cnclip_edu.train`).

Reading order:
    params.py      the flags (cn_clip's names)
    trainer.py     set-up: process group, model, optimiser, data -> `loop.train` -> the final model
    loop.py        the training loop, its `TrainRun` / `TrainState`, save and validate
    data.py        loaders, record indices, padding trim, known positives; sampler.py: resumable sharding
    accumulate.py  gradient accumulation with a feature cache (= one big batch)
    optim.py       AdamW parameter groups and the warmup + cosine schedule; precision.py: fp32/bf16/fp16
    validate.py    validation loss, accuracy and Recall@1; logs.py: out.log and metrics.jsonl
    state.py       the checkpoint format and RNG states; resume.py: where a run starts from
    hooks.py       failure injection for the tests; launch.py: torchrun from a notebook
    hello.py       the smallest DDP program (process group, DistributedSampler, all_reduce), notebook 06
    ddp_demo.py    notebook 06's DDP worker (DDP, set_epoch, rank-0 save + barrier) and what checks it
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # `from cnclip_edu.train import main` without importing torch for `cnclip_edu.train.launch` users
    if name in ("main", "parse_args", "build_parser", "run"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'cnclip_edu.train' has no attribute {name!r}")
