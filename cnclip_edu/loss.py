"""The CLIP contrastive loss (symmetric InfoNCE), single-process or across ranks.

    loss_fn = ClipLoss(gather_with_grad=True, rank=info.rank, world_size=info.world_size)
    img_f, txt_f, logit_scale = model(images, tokens)   # L2-normalised features, logit_scale already exp()'d
    loss, metrics = loss_fn(img_f, txt_f, logit_scale, return_metrics=True)   # metrics: i2t_acc, t2i_acc

For a batch of N pairs, logits[i, j] = logit_scale * <image_i, text_j>. Each image must pick its own
text among the N texts (cross-entropy over a row) and each text its own image (over a column); the
loss is the mean of the two. The other N-1 items of the batch are the negatives, so a bigger batch
(more ranks, gradient accumulation) means more negatives.

Gradient scale under DDP. DDP *averages* parameter gradients over the W ranks. Every mode below is
arranged so that the gradient reaching this rank's features is W x d(L)/d(features), where L is the
mean loss over the global batch: after DDP's average, parameter gradients equal those of one process
on the concatenated batch, exactly (tests/test_distributed_loss.py checks each mode with 2 ranks).

- default: gather the other ranks' features as constants, put the local features (with their
  gradient) in their slice, compute the full (W*B, W*B) loss on every rank. Only the local slice
  gets gradient, so we multiply it by W. cn_clip and open_clip gather the same way but leave the W
  out: the same loss values, gradients 1/W too small (which a learning-rate change silently absorbs).
- gather_with_grad: the gather is differentiable and its backward sums over ranks, which already
  yields W x dL/df.
- local_loss + gather_with_grad (open_clip's memory saver): each rank computes only its B rows
  against all W*B columns, labels offset by rank*B; the mean of the ranks' losses is L.
- local_loss without gather_with_grad is refused: the gradient that the other ranks' rows send to
  this rank's features (as their negatives) would be lost, so no scaling can make it exact.

Known positives. Duplicate captions in a batch ("一只猫" twice) are false negatives: the loss pushes
apart two pairs that match. `positive_mask[i, j] = True` when image i matches text j turns the
one-hot target into a distribution spread evenly over all positives (multi-positive InfoNCE, reported
as a KL divergence so that a perfect model scores 0 here too). `positive_mask_from_ids` (text ids,
token rows, caption strings) and `positive_mask_from_matches` (gold image-id lists) build the mask.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnclip_edu.distributed import all_gather_no_grad, all_gather_with_grad


# ----------------------------------------------------------------------------- building blocks
class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`x` unchanged, but its gradient is multiplied by `scale` (1 -> no-op)."""
    return x if scale == 1 else _ScaleGrad.apply(x, scale)


def replace_local_chunk(gathered: torch.Tensor, local: torch.Tensor, rank: int, world_size: int,
                        grad_scale: float = 1.0) -> torch.Tensor:
    """Put this rank's own features (with their autograd history) into its slice of a gathered,
    gradient-free (W*B, D) tensor. The other slices stay constants: their gradients belong to the
    ranks that own them (and reach them there, because every rank computes the same full loss)."""
    chunks = list(gathered.chunk(world_size, dim=0))
    if chunks[rank].shape != local.shape:
        raise ValueError(f"rank {rank}: local features {tuple(local.shape)} do not match their slice "
                         f"{tuple(chunks[rank].shape)} of the gathered {tuple(gathered.shape)}; every "
                         f"rank needs the same batch size (use drop_last=True)")
    chunks[rank] = scale_grad(local, grad_scale)
    return torch.cat(chunks, dim=0)


def soft_targets(positive_mask: torch.Tensor) -> torch.Tensor:
    """Rows of a boolean mask -> probability rows spread evenly over the True entries."""
    m = positive_mask.float()
    return m / m.sum(dim=1, keepdim=True)


def multi_positive_ce(logits: torch.Tensor, positive_mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(targets || softmax(logits)), targets = `soft_targets(positive_mask)`.

    KL = cross-entropy - entropy(targets), and the entropy of an even spread over k positives is
    log k, a constant: same gradient as the soft cross-entropy, but 0 at the optimum (as the one-hot
    loss is) and exactly the plain cross-entropy when every row has one positive.
    """
    n_pos = positive_mask.sum(dim=1).float()  # (R,)
    return F.cross_entropy(logits, soft_targets(positive_mask).to(logits.dtype)) - n_pos.log().mean()


def contrastive_loss(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor,
                     labels: torch.Tensor | None = None,
                     row_masks: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """(CE(logits_per_image, targets) + CE(logits_per_text, targets')) / 2.

    logits_per_image: (R, N), rows = images, columns = texts; logits_per_text: (R, N), rows = texts.
    labels: (R,) column of each row's own partner (default arange(R)): one-hot targets.
    row_masks: (mask_i2t, mask_t2i), each (R, N) bool, the positives of each row: soft targets
        spread evenly over them, see `multi_positive_ce` (labels are then ignored).
    """
    if row_masks is not None:
        mask_i2t, mask_t2i = row_masks
        return (multi_positive_ce(logits_per_image, mask_i2t) + multi_positive_ce(logits_per_text, mask_t2i)) / 2
    if labels is None:
        labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


@torch.no_grad()
def clip_accuracy(logits_per_image: torch.Tensor, logits_per_text: torch.Tensor,
                  labels: torch.Tensor | None = None,
                  positive_mask: tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None = None
                  ) -> dict[str, torch.Tensor]:
    """In-batch retrieval accuracy: share of rows whose arg-max column is a correct partner.

    labels (R,) as in `contrastive_loss`; or positive_mask: an (N, N) image->text mask for square
    logits, or a (mask_i2t, mask_t2i) pair of row masks (a hit on any positive counts). Returns {"i2t_acc", "t2i_acc"} (0-d tensors).
    """
    pred_i2t = logits_per_image.argmax(dim=1)  # (R,)
    pred_t2i = logits_per_text.argmax(dim=1)
    if positive_mask is not None:
        if isinstance(positive_mask, torch.Tensor):
            positive_mask = (positive_mask, positive_mask.T)
        m_i2t, m_t2i = (m.to(logits_per_image.device) for m in positive_mask)
        rows = torch.arange(len(pred_i2t), device=pred_i2t.device)
        hit_i2t, hit_t2i = m_i2t[rows, pred_i2t], m_t2i[rows, pred_t2i]
    else:
        if labels is None:
            labels = torch.arange(len(pred_i2t), device=pred_i2t.device)
        hit_i2t, hit_t2i = pred_i2t == labels, pred_t2i == labels
    return {"i2t_acc": hit_i2t.float().mean(), "t2i_acc": hit_t2i.float().mean()}


# ----------------------------------------------------------------------------- positive masks
def positive_mask_from_ids(ids: torch.Tensor | Sequence[Hashable]) -> torch.Tensor:
    """(N, N) bool: True where items i and j carry the same caption.

    ids: (N,) text ids, (N, L) token rows (identical rows = identical captions), or a list of
    hashables such as the caption strings. For one image per caption, image i matches text j
    exactly when caption i == caption j, so the mask is symmetric and its diagonal is True.
    """
    if isinstance(ids, torch.Tensor):
        if ids.dim() not in (1, 2):
            raise ValueError(f"ids must be (N,) ids or (N, L) token rows, got shape {tuple(ids.shape)}")
        # one code per distinct row (not an (N, N, L) comparison: N = 32k, L = 52 would need 53 GB)
        codes = torch.unique(ids.reshape(ids.shape[0], -1), dim=0, return_inverse=True)[1]  # (N,)
    else:
        index: dict[Hashable, int] = {}
        codes = torch.tensor([index.setdefault(k, len(index)) for k in ids], dtype=torch.long)
    return codes[:, None] == codes[None, :]  # (N, N)


positive_mask_from_tokens = positive_mask_from_ids  # same rule, named for (N, L) token rows


def positive_mask_from_matches(image_ids: Sequence[Hashable] | torch.Tensor,
                               matching_image_ids: Sequence[Sequence[Hashable]]) -> torch.Tensor:
    """(N, N) bool: mask[i, j] = True when image i is one of text j's gold images.

    image_ids: the image id of each pair; matching_image_ids: for each pair, every image id its text
    matches (the `image_ids` list of a cn_clip `*_texts.jsonl` line, or the toy world's gold matches).
    The diagonal is forced True: each pair's own image always counts.
    """
    if isinstance(image_ids, torch.Tensor):
        image_ids = image_ids.tolist()
    n = len(image_ids)
    if len(matching_image_ids) != n:
        raise ValueError(f"{n} image ids but {len(matching_image_ids)} match lists")
    code: dict[Hashable, int] = {}  # image id -> row of `fits`; ids outside the batch are skipped
    for i_id in image_ids:
        code.setdefault(i_id, len(code))
    fits = torch.zeros(len(code), n, dtype=torch.bool)  # fits[c, j]: image code c is a gold image of text j
    for j, gold in enumerate(matching_image_ids):
        gold = gold.tolist() if isinstance(gold, torch.Tensor) else gold
        fits[[code[g] for g in gold if g in code], j] = True
    mask = fits[torch.tensor([code[i_id] for i_id in image_ids], dtype=torch.long)]  # (N, N)
    mask.fill_diagonal_(True)
    return mask


# ----------------------------------------------------------------------------- the loss
class ClipLoss(nn.Module):
    """Symmetric InfoNCE over image–text logits, with cross-rank negatives under DDP.

    local_loss: each rank scores only its own B rows against all W*B columns (memory O(B*W*B)
        instead of O((W*B)^2)); needs gather_with_grad when world_size > 1.
    gather_with_grad: differentiable all-gather (backward sums gradients over ranks).
    rank, world_size: this process in the group (distributed.init_distributed gives them).
    """

    def __init__(self, local_loss: bool = False, gather_with_grad: bool = False,
                 rank: int = 0, world_size: int = 1):
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
        if local_loss and world_size > 1 and not gather_with_grad:
            raise ValueError("ClipLoss(local_loss=True) needs gather_with_grad=True when world_size > 1: "
                             "without it the gradient that other ranks' rows send to this rank's features "
                             "is dropped, and the result no longer equals the single-process gradient")
        self.local_loss, self.gather_with_grad = local_loss, gather_with_grad
        self.rank, self.world_size = rank, world_size

    def gather(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) local -> (W*B, D) global, with gradient reaching the local part (scaled, see module doc)."""
        if self.world_size == 1:
            return features
        if self.gather_with_grad:
            return all_gather_with_grad(features)
        gathered = all_gather_no_grad(features)  # (W*B, D), constants
        if self.local_loss:  # unreachable (refused in __init__); kept for clarity
            return gathered
        return replace_local_chunk(gathered, features, self.rank, self.world_size, grad_scale=self.world_size)

    def get_logits(self, image_features: torch.Tensor, text_features: torch.Tensor,
                   logit_scale: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits_per_image, logits_per_text): (W*B, W*B) each, or (B, W*B) under local_loss."""
        all_img, all_txt = self.gather(image_features), self.gather(text_features)  # (W*B, D)
        if self.local_loss:
            return logit_scale * image_features @ all_txt.T, logit_scale * text_features @ all_img.T
        logits_per_image = logit_scale * all_img @ all_txt.T  # (N, N)
        return logits_per_image, logits_per_image.T

    def _check(self, image_features: torch.Tensor, text_features: torch.Tensor) -> None:
        if image_features.dim() != 2 or image_features.shape != text_features.shape:
            raise ValueError(f"image_features {tuple(image_features.shape)} and text_features "
                             f"{tuple(text_features.shape)} must both be (B, D)")
        if image_features.shape[0] == 0:
            raise ValueError("empty batch: ClipLoss needs at least one image–text pair")

    def _row_masks(self, positive_mask: torch.Tensor, n_global: int, batch: int,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if positive_mask.shape != (n_global, n_global):
            raise ValueError(f"positive_mask must be (global batch, global batch) = ({n_global}, {n_global}) "
                             f"(world_size {self.world_size} x batch {batch}), got {tuple(positive_mask.shape)}")
        if positive_mask.dtype != torch.bool:
            raise ValueError(f"positive_mask must be a bool tensor, got {positive_mask.dtype}")
        mask = positive_mask.to(device) | torch.eye(n_global, dtype=torch.bool, device=device)
        if self.local_loss:
            rows = slice(self.rank * batch, (self.rank + 1) * batch)
            return mask[rows], mask[:, rows].T  # (B, N) image->text rows, (B, N) text->image rows
        return mask, mask.T

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor,
                logit_scale: torch.Tensor | float, positive_mask: torch.Tensor | None = None,
                return_metrics: bool = False):
        """Loss (0-d tensor); with return_metrics, (loss, {"i2t_acc", "t2i_acc"}) from the same logits.

        image_features, text_features: (B, D) L2-normalised, this rank's batch.
        logit_scale: already exp()'d (a 0-d/1-element tensor, or a float).
        positive_mask: optional (W*B, W*B) bool over the global batch (rank-major order),
            mask[i, j] = image i matches text j; its diagonal is always treated as True.
        """
        self._check(image_features, text_features)
        if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() > 1:
            logit_scale = logit_scale.mean()  # nn.DataParallel returns one copy per replica
        batch = image_features.shape[0]
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        labels = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
        if self.local_loss:
            labels = labels + self.rank * batch
        masks = None
        if positive_mask is not None:
            masks = self._row_masks(positive_mask, logits_per_image.shape[1], batch, logits_per_image.device)
        loss = contrastive_loss(logits_per_image, logits_per_text, labels, masks)
        if not return_metrics:
            return loss
        return loss, clip_accuracy(logits_per_image, logits_per_text, labels, masks)
