"""Images and chats as tensors: the tile bank (pixels, cached ViT features) and the padded batches.

Training batches are right-padded (padding after the reply never influences earlier tokens under
a causal mask); generation prompts are left-padded, so that every row's next token is predicted
at the same column. A frozen ViT gives the same features every epoch, so the bank computes them
once (`cache_features`); a ViT that trains has to see pixels at every step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .chat import IGNORE_INDEX, assistant_labels, encode_chat, render_chat
from .world import Sample


def model_device(model) -> torch.device:
    """Where the model's parameters live (CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


class ImageBank:
    """The tiles of a list of images (uint8, `dynamic_preprocess` order) and, once cached, their features."""

    def __init__(self, images: Sequence[Image.Image], tiler, transform):
        """tiler: image -> list of tile images (e.g. `MiniVLM.tiles`); transform: the ViT's (mean/std)."""
        tiles = [tiler(img) for img in images]
        self.n_tiles = [len(t) for t in tiles]
        self.offsets = np.concatenate([[0], np.cumsum(self.n_tiles)])
        self.uint8 = torch.from_numpy(np.stack([np.asarray(t.convert("RGB")) for ts in tiles for t in ts]))  # (N, R, R, 3)
        self.mean, self.std = transform.mean, transform.std  # (3, 1, 1) each
        self.features: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.n_tiles)

    def _rows(self, images: Sequence[int]) -> torch.Tensor:
        return torch.cat([torch.arange(self.offsets[i], self.offsets[i + 1]) for i in images])

    def pixels(self, images: Sequence[int]) -> torch.Tensor:
        """Normalised tiles of these images, concatenated: (T, 3, R, R), as the course ViT expects."""
        x = self.uint8[self._rows(images)].permute(0, 3, 1, 2).float().div(255)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def cache_features(self, model, batch_size: int = 1024) -> None:
        """Run the (frozen) ViT + pixel unshuffle once over every tile."""
        was = model.training
        model.eval()
        out = []
        dev = model_device(model)
        for s in range(0, len(self.uint8), batch_size):
            rows = torch.arange(s, min(s + batch_size, len(self.uint8)))
            x = (self.uint8[rows].permute(0, 3, 1, 2).float().div(255) - self.mean) / self.std
            out.append(model.tile_features(x.to(dev)))
        self.features = torch.cat(out)  # (N, n, 4D)
        model.train(was)

    def feats(self, model, images: Sequence[int], grad: bool = False) -> torch.Tensor:
        """(T, n, 4D) for these images: from the cache, or through the ViT (with grad if it trains)."""
        if not images:
            return None
        if self.features is not None and not grad:
            return self.features[self._rows(images)]
        with torch.set_grad_enabled(grad):
            return model.tile_features(self.pixels(images).to(model_device(model)))


@dataclass
class Batch:
    ids: torch.Tensor          # (B, L) compact ids
    valid: torch.Tensor        # (B, L) bool
    labels: torch.Tensor       # (B, L), IGNORE_INDEX where no loss
    images: list[int]          # bank indices of the images in the batch, in order

    def to(self, device) -> "Batch":
        return Batch(self.ids.to(device), self.valid.to(device), self.labels.to(device), self.images)


def encode_sample(turns, n_image_tokens: int, vocab, loss_on: str = "answers",
                  image_text: str | None = None, image_first: bool = True) -> tuple[list[int], list[int]]:
    """Compact ids and labels of one chat. loss_on: "answers" (SFT) or "all" (language-model pre-training)."""
    tok_ids = encode_chat(render_chat(turns, n_image_tokens, image_text, image_first))
    ids = vocab.to_compact(tok_ids)
    if loss_on == "all":
        return ids, list(ids)
    if loss_on != "answers":
        raise ValueError(f"loss_on must be 'answers' or 'all', got {loss_on!r}")
    labels = [vocab.index[t] if t != IGNORE_INDEX else IGNORE_INDEX for t in assistant_labels(tok_ids)]
    return ids, labels


def _pad(rows: list[list[int]], value: int, left: bool) -> torch.Tensor:
    L = max(len(r) for r in rows)
    return torch.tensor([([value] * (L - len(r)) + r) if left else (r + [value] * (L - len(r))) for r in rows])


def encode_samples(samples: Sequence[Sample], bank: ImageBank | None, vocab, tokens_per_tile: int,
                   with_image: bool = True, loss_on: str = "answers",
                   image_first: bool = True) -> list[tuple[list[int], list[int], int | None]]:
    """(ids, labels, bank index or None) of each chat: tokenised once, batched many times."""
    out = []
    for s in samples:
        n_img = bank.n_tiles[s.canvas] * tokens_per_tile if with_image else 0
        # without an image, a text-only chat may describe the scene in words where the image would be
        ids, labels = encode_sample(s.turns, n_img, vocab, loss_on, None if with_image else s.meta.get("context"),
                                    image_first)
        out.append((ids, labels, s.canvas if n_img else None))
    return out


def collate(encoded: Sequence[tuple[list[int], list[int], int | None]]) -> Batch:
    """Right-padded batch of encoded chats, padded to its own longest row."""
    ids = [e[0] for e in encoded]
    return Batch(_pad(ids, 0, left=False), _pad([[1] * len(i) for i in ids], 0, left=False).bool(),
                 _pad([e[1] for e in encoded], IGNORE_INDEX, left=False), [e[2] for e in encoded if e[2] is not None])


def train_batch(samples: Sequence[Sample], bank: ImageBank | None, vocab, tokens_per_tile: int,
                with_image: bool = True, loss_on: str = "answers", image_first: bool = True) -> Batch:
    return collate(encode_samples(samples, bank, vocab, tokens_per_tile, with_image, loss_on, image_first))


def prompt_batch(prompts: Sequence[tuple[int | None, list]], bank: ImageBank | None, vocab,
                 tokens_per_tile: int, image_first: bool = True) -> Batch:
    """Left-padded generation prompts. Each prompt: (bank index or None for no image, turns whose
    last answer is None)."""
    ids, images = [], []
    for img, turns in prompts:
        n_img = bank.n_tiles[img] * tokens_per_tile if img is not None else 0
        ids.append(vocab.to_compact(encode_chat(render_chat(turns, n_img, image_first=image_first))))
        if n_img:
            images.append(img)
    return Batch(_pad(ids, 0, left=True), _pad([[1] * len(i) for i in ids], 0, left=True).bool(),
                 torch.empty(0), images)
