"""Training in stages, as Mini-InternVL: what each stage trains, on what, with which loss.

    0. text only: the decoder learns the language on captions and Q&A text, the scene often written in
       words where the image will go (our stand-in for InternLM2-Chat-1.8B, which arrives pretrained);
       the recipe puts only the replies in the loss, as a chat model is tuned (`RecipeConfig.text_loss_on`);
    1. alignment: decoder frozen, the projector (optionally the ViT too) learns to turn tile features
       into "words" the frozen decoder already reads, on image -> caption, loss on the reply only;
    2. instruction tuning: projector + decoder (optionally ViT) on questions, multi-round chats and
       captions, loss on the replies only.

`train_stage` is one plain loop: set what trains, then per step: sample a batch, forward, masked
next-token loss, backward, clip, AdamW step with warmup + cosine learning rate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .batches import ImageBank, collate, encode_samples, model_device
from .chat import IGNORE_INDEX
from .world import Sample

PARTS = ("vit", "projector", "decoder")


@dataclass
class Stage:
    name: str
    steps: int
    train: tuple[str, ...]          # which of PARTS learn; the rest is frozen
    lr: float = 1e-3
    batch_size: int = 64
    with_image: bool = True         # False: the text-only stage 0
    loss_on: str = "answers"        # "all" for language-model pre-training
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    vit_lr_scale: float = 0.1       # a pretrained ViT moves with a smaller learning rate
    seed: int = 0
    bucket: int = 8                 # batches drawn together and cut by length (less padding); 1 = plain shuffle
    # How the reply tokens of a batch are averaged (InternVL 2.5, section 4.3): "token" (every token alike: a
    # 24-token caption outweighs a 2-token answer 12 to 1), "sample" (every chat alike) or "square" (a chat of
    # x reply tokens weighs 1/sqrt(x) per token, between the two).
    loss_weighting: str = "token"


@dataclass
class StageResult:
    name: str
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    trainable: int = 0


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position t predicts token t+1; positions whose next label is IGNORE_INDEX add nothing."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


LOSS_POWER = {"token": 0.0, "square": 0.5, "sample": 1.0}


def weighted_next_token_loss(logits: torch.Tensor, labels: torch.Tensor, weighting: str = "token") -> torch.Tensor:
    """`next_token_loss` with each chat's reply tokens weighted by (its number of reply tokens) ** -p,
    p = LOSS_POWER[weighting]; "token" is `next_token_loss` itself."""
    if weighting not in LOSS_POWER:
        raise ValueError(f"loss_weighting must be one of {sorted(LOSS_POWER)}, got {weighting!r}")
    target = labels[:, 1:]                                                # (B, L-1)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), target, ignore_index=IGNORE_INDEX, reduction="none")
    mask = (target != IGNORE_INDEX).float()                               # (B, L-1)
    w = mask * mask.sum(1, keepdim=True).clamp(min=1) ** -LOSS_POWER[weighting]
    return (ce * w).sum() / w.sum().clamp(min=1e-12)


def set_trainable(model, parts: tuple[str, ...]) -> int:
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    modules = {"vit": [model.vision], "projector": [model.projector, getattr(model, "tile_pos", None)],
               "decoder": [model.decoder]}
    for name, mods in modules.items():
        for mod in mods:
            for p in (mod.parameters() if mod is not None else ()):
                p.requires_grad_(name in parts)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lr_at(step: int, stage: Stage) -> float:
    warm = max(1, round(stage.warmup_frac * stage.steps))
    if step < warm:
        return stage.lr * (step + 1) / warm
    t = (step - warm) / max(1, stage.steps - warm)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))  # cosine down to 10 %


def length_batches(encoded: list, batch_size: int, steps: int, bucket: int = 8, seed: int = 0) -> list[list[int]]:
    """`steps` batches of sample indices: epoch after epoch of a shuffled order; every `bucket`
    consecutive batches are pooled, sorted by length and cut again, so that a batch holds chats of
    similar length and pads little (padding is compute spent on nothing). The batches' order is
    shuffled again, so that short and long chats alternate over the run."""
    gen = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        order += torch.randperm(len(encoded), generator=gen).tolist()
    out = []
    pool = bucket * batch_size
    for s in range(0, steps * batch_size, pool):
        group = sorted(order[s: min(s + pool, steps * batch_size)], key=lambda i: len(encoded[i][0]))
        chunks = [group[k: k + batch_size] for k in range(0, len(group), batch_size)]
        out += [chunks[k] for k in torch.randperm(len(chunks), generator=gen).tolist()]
    return out


def train_stage(model, samples: list[Sample], bank: ImageBank | None, stage: Stage, hooks=None,
                step_fn=None) -> StageResult:
    """Train `model` for `stage.steps` steps on `samples` (random batches, epoch after epoch).
    `hooks.after_step(step, loss)`, if given, runs after every update (progress, probes, tests).
    `step_fn(model, opt, batch, feats, lr) -> loss`, if given, replaces the loop's own update (notebook 11's
    exercise 11.8 trains the stages with the student's step); it sets one learning rate for every group, so
    it is refused where the ViT trains (its group's smaller rate) or the loss is not weighted per token."""
    vit_trains = "vit" in stage.train
    if step_fn is not None and (vit_trains or stage.loss_weighting != "token"):
        raise ValueError(f"stage {stage.name!r}: step_fn does only the plain update (one learning rate, the loss "
                         f"per token); this stage trains {stage.train} with loss_weighting={stage.loss_weighting!r}")
    res = StageResult(stage.name, trainable=set_trainable(model, stage.train))
    if stage.with_image and not vit_trains and bank.features is None:
        bank.cache_features(model)  # the ViT is frozen: its features never change in this stage
    params = [p for p in model.parameters() if p.requires_grad]
    vit_ids = {id(p) for p in model.vision.parameters()}
    groups = [{"params": [p for p in params if id(p) not in vit_ids], "scale": 1.0},
              {"params": [p for p in params if id(p) in vit_ids], "scale": stage.vit_lr_scale}]
    # foreach: one multi-tensor kernel per update op instead of a Python loop over the parameters; on CPU
    # torch picks the loop by default, and the two give the same numbers bit for bit (bench/bench_train_step.py)
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=stage.lr, betas=(0.9, 0.98),
                            weight_decay=stage.weight_decay, foreach=True)
    encoded = encode_samples(samples, bank, model.vocab, model.tokens_per_tile, stage.with_image, stage.loss_on,
                             model.cfg.image_first)
    batches = length_batches(encoded, stage.batch_size, stage.steps, stage.bucket, stage.seed)
    device = model_device(model)
    model.train()
    t0 = time.perf_counter()
    for step, chunk in enumerate(batches):
        b = collate([encoded[i] for i in chunk]).to(device)
        # forward: image features (cached, or through the ViT when it trains), then the masked loss
        feats = bank.feats(model, b.images, grad=vit_trains) if stage.with_image else None
        if step_fn is not None:
            res.losses.append(float(step_fn(model, opt, b, feats, lr_at(step, stage))))
        else:
            logits = model(b.ids, b.valid, feats)
            loss = (next_token_loss(logits, b.labels) if stage.loss_weighting == "token"
                    else weighted_next_token_loss(logits, b.labels, stage.loss_weighting))
            # backward and update, with the learning rate of this step
            for g in opt.param_groups:
                g["lr"] = lr_at(step, stage) * g["scale"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            res.losses.append(loss.item())
        if hooks is not None:
            hooks.after_step(step, res.losses[-1])
    res.wall_s = time.perf_counter() - t0
    if vit_trains and bank is not None:
        bank.features = None  # the ViT changed: cached features are stale
    model.eval()
    return res
