"""Validation during training: cn_clip's in-batch loss and accuracy (summed over ranks), plus
Recall@1 over the whole validation split when the dataset knows its gold matches (the toy world)."""
from __future__ import annotations

import logging
from typing import Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from cnclip_edu.distributed import DistInfo, all_gather_no_grad
from cnclip_edu.loss import clip_accuracy, contrastive_loss

from .data import batch_ids, to_device


def recall_at_1(image_f: torch.Tensor, image_ids: torch.Tensor, text_f: torch.Tensor, text_ids: torch.Tensor,
                gold: Callable[[int], frozenset[int]]) -> tuple[float, float]:
    """(t2i R@1, i2t R@1) over unique ids, scored by `cnclip_edu.eval.recall.evaluate`; a hit is any
    gold match (toy: any image that fits the caption).

    image_f (N, E) / text_f (N, E) normalised, one row per validation pair (duplicates allowed).
    gold: text_id -> its set of gold image ids.
    """
    from cnclip_edu.eval.recall import evaluate as recall

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
