"""The pieces of the training loop that `train.py` strings together: data loading, known positives,
the non-finite guard, validation (loss, in-batch accuracy, Recall@1) and the two logs.

The log line is cn_clip's (`cn_clip/training/train.py`), so scripts that parse cn_clip logs keep
working; every logged line is also one JSON object in `metrics.jsonl`, which the launcher's live
plot and the notebooks read (no regex needed).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from .distributed import DistInfo, all_gather_no_grad
from .loss import clip_accuracy, contrastive_loss, positive_mask_from_ids


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf: training stops, the last checkpoint on disk is the last good one."""


# ----------------------------------------------------------------------------- data
def make_loader(dataset: Dataset, sampler, num_workers: int, seed: int, epoch: int) -> DataLoader:
    """A DataLoader whose randomness depends only on (seed, epoch), never on the global RNG.

    Without an explicit generator, creating the iterator draws the workers' base seed from the
    global torch RNG, so a run resumed mid-epoch would consume that RNG differently.
    """
    g = torch.Generator().manual_seed(seed * 7919 + epoch)
    return DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler, num_workers=num_workers,
                      generator=g, pin_memory=torch.cuda.is_available(), drop_last=False)


def to_device(batch: Any, device: torch.device) -> list:
    """(images, tokens, ...) -> the same with tensors on `device`."""
    return [x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x for x in batch]


def trim_padding(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """(B, L) -> (B, L') without the trailing columns that are padding in every row.

    The text tower masks padding out of attention and reads only [CLS], so the features are the
    same; the work is not. Toy captions fill 38 of 52 positions at most in a typical batch, so
    this saves a quarter of the text tower's compute. Keeps at least [CLS].
    """
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return tokens[:, :length]


class WithIndex(Dataset):
    """`dataset[i] + (i,)`: batches carry their record indices, from which the dataset's `ids()`
    gives image / text ids (known positives, Recall@1) without changing the dataset itself."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


def batch_ids(batch: list, dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(image_ids (B,), text_ids (B,)) of a WithIndex batch, if the dataset can name its records."""
    if len(batch) < 3 or not hasattr(dataset, "ids"):
        return None
    image_ids, text_ids = dataset.ids(batch[-1].tolist())
    return image_ids.to(batch[-1].device), text_ids.to(batch[-1].device)


def known_positive_mask(micro_batches: list[list], dataset: Dataset) -> torch.Tensor:
    """(W*K*B, W*K*B) bool over the global batch: image i matches text j when the two captions are
    identical, or when image i is one of text j's gold images (the dataset's `positive_mask`).

    Rank-major order, as ClipLoss gathers features: this rank's K micro-batches, concatenated.
    """
    tokens = torch.cat([b[1] for b in micro_batches])  # (K*B, L)
    mask = positive_mask_from_ids(all_gather_no_grad(tokens))  # (N, N)
    ids = [batch_ids(b, dataset) for b in micro_batches]
    if all(x is not None for x in ids) and hasattr(dataset, "positive_mask"):
        image_ids = all_gather_no_grad(torch.cat([x[0] for x in ids])).cpu()
        text_ids = all_gather_no_grad(torch.cat([x[1] for x in ids])).cpu()
        mask |= dataset.positive_mask(image_ids.tolist(), text_ids.tolist()).to(mask.device)
    return mask


def autocast_factory(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def check_finite(loss: float, step: int, ckpt_dir: Path, info: DistInfo) -> None:
    """Raise NonFiniteLossError on every rank if the loss is NaN/inf on any rank."""
    bad = torch.tensor([0.0 if math.isfinite(loss) else 1.0])
    if info.distributed:
        bad = bad.to(info.device)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    if bad.item() > 0:
        latest = ckpt_dir / "epoch_latest.pt"
        kept = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"non-finite loss ({loss}) at step {step}: stopping before the optimizer step; {kept}. "
            "Lower --lr, use --precision bf16/fp32, or check the data of this step.")


# ----------------------------------------------------------------------------- logs
class MetricsLog:
    """Append-only JSONL (rank 0). On resume, lines beyond the resumed step are dropped first, so a
    run killed after its last checkpoint leaves no duplicate steps in the curves."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: int = 0):
        self.path, self.enabled = Path(path), enabled
        if enabled and self.path.exists():
            kept = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= keep_until_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".metrics", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write("".join(k + "\n" for k in kept))
            os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def log_train_line(log: logging.Logger, r: dict, max_steps: int, steps_per_epoch: int, global_batch: int) -> None:
    """cn_clip's training log line."""
    in_epoch = (r["step"] - 1) % steps_per_epoch + 1
    log.info(f"Global Steps: {r['step']}/{max_steps} | "
             f"Train Epoch: {(r['step'] - 1) // steps_per_epoch + 1} [{in_epoch * global_batch}/"
             f"{steps_per_epoch * global_batch} ({100.0 * in_epoch / steps_per_epoch:.0f}%)] | "
             f"Loss: {r['loss']:.6f} | Image2Text Acc: {r['i2t_acc'] * 100:.2f} | "
             f"Text2Image Acc: {r['t2i_acc'] * 100:.2f} | Data Time: {r['data_time']:.3f}s | "
             f"Batch Time: {r['batch_time']:.3f}s | LR: {r['lr']:5f} | logit_scale: {r['logit_scale']:.3f} | "
             f"Global Batch Size: {global_batch}")


# ----------------------------------------------------------------------------- validation
def recall_at_1(image_f: torch.Tensor, image_ids: torch.Tensor, text_f: torch.Tensor, text_ids: torch.Tensor,
                gold: Callable[[int], frozenset[int]]) -> tuple[float, float]:
    """(t2i R@1, i2t R@1) over unique ids, scored by `cnclip_edu.eval.recall.evaluate`; a hit is any
    gold match (toy: any image that fits the caption).

    image_f (N, E) / text_f (N, E) normalised, one row per validation pair (duplicates allowed).
    gold: text_id -> its set of gold image ids.
    """
    from .eval.recall import evaluate as recall

    def unique(ids: torch.Tensor, f: torch.Tensor) -> tuple[list[int], torch.Tensor]:
        first: dict[int, int] = {}
        for i, k in enumerate(ids.tolist()):
            first.setdefault(k, i)
        return list(first), f[list(first.values())]

    img_ids, img_f = unique(image_ids, image_f)
    txt_ids, txt_f = unique(text_ids, text_f)
    sim = txt_f.float() @ img_f.float().T  # (T, I)
    gold_t2i = {t: sorted(gold(t)) for t in txt_ids}
    gold_i2t: dict[int, list[int]] = {i: [] for i in img_ids}
    for t, images in gold_t2i.items():
        for i in images:
            if i in gold_i2t:
                gold_i2t[i].append(t)
    pred_t2i = {t: [img_ids[j]] for t, j in zip(txt_ids, sim.argmax(dim=1).tolist())}
    pred_i2t = {i: [txt_ids[j]] for i, j in zip(img_ids, sim.argmax(dim=0).tolist())}
    return (recall(gold_t2i, pred_t2i, ks=(1,))["r1"],
            recall({i: g for i, g in gold_i2t.items()}, pred_i2t, ks=(1,))["r1"])


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, device: torch.device, autocast, info: DistInfo,
             log: logging.Logger, epoch: int, step: int) -> dict[str, float]:
    """cn_clip's validation (in-batch loss and accuracy, summed over ranks) plus Recall@1."""
    model.eval()
    dataset = getattr(loader.dataset, "dataset", loader.dataset)  # unwrap WithIndex
    loss_sum = torch.zeros(4, device=device)  # loss * n, i2t hits, t2i hits, n
    feats: list[tuple] = []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast():
            img_f, txt_f, scale = model(batch[0], batch[1])
        img_f, txt_f = img_f.float(), txt_f.float()
        logits = scale.float() * img_f @ txt_f.T
        n = len(img_f)
        acc = clip_accuracy(logits, logits.T)
        loss_sum += torch.stack([contrastive_loss(logits, logits.T) * n, acc["i2t_acc"] * n, acc["t2i_acc"] * n,
                                 torch.tensor(float(n), device=device)])
        feats.append((img_f, txt_f, batch_ids(batch, dataset)))
    if info.distributed:
        dist.all_reduce(loss_sum)
    total = loss_sum[3].item()
    res = {"loss": loss_sum[0].item() / total, "i2t_acc": loss_sum[1].item() / total,
           "t2i_acc": loss_sum[2].item() / total}
    gold = getattr(dataset, "gold_image_ids", None)
    if feats and feats[0][2] is not None and callable(gold):
        cat = [torch.cat([f[0] for f in feats]), torch.cat([f[1] for f in feats]),
               torch.cat([f[2][0] for f in feats]), torch.cat([f[2][1] for f in feats])]
        img_f, txt_f, img_ids, txt_ids = (all_gather_no_grad(x).cpu() for x in cat)
        res["t2i_r1"], res["i2t_r1"] = recall_at_1(img_f, img_ids, txt_f, txt_ids, gold)
    extra = "".join(f" | {name}: {res[k] * 100:.2f}" for k, name in
                    [("t2i_r1", "Text2Image R@1"), ("i2t_r1", "Image2Text R@1")] if k in res)
    log.info(f"Validation Result (epoch {epoch} @ {step} steps) | Valid Loss: {res['loss']:.6f} | "
             f"Image2Text Acc: {res['i2t_acc'] * 100:.2f} | Text2Image Acc: {res['t2i_acc'] * 100:.2f} | "
             f"logit_scale: {getattr(model, 'module', model).logit_scale.item():.3f} | "
             f"Valid Batch Size: {loader.batch_size}{extra}")
    return res
