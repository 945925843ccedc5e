"""Shared by the loss / distributed / accumulation tests: a tiny stand-in for the CLIP model (same
forward contract, so these tests do not depend on the real towers) and open_clip's loss as an oracle."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

IMG_DIM, VOCAB, CTX, EMBED = 12, 30, 5, 8


class TinyClip(nn.Module):
    """model(images, tokens) -> (image_features, text_features, logit_scale): L2-normalised features
    and exp()'d logit scale, like the CLIP forward. `dropout` > 0 exercises RNG replay."""

    def __init__(self, dropout: float = 0.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.visual = nn.Linear(IMG_DIM, EMBED)
        self.token_embedding = nn.Embedding(VOCAB, EMBED)
        self.text_proj = nn.Linear(EMBED, EMBED)
        self.drop = nn.Dropout(dropout)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))  # log(1 / 0.07), as CLIP starts
        with torch.no_grad():
            for p in (self.visual.weight, self.visual.bias, self.token_embedding.weight,
                      self.text_proj.weight, self.text_proj.bias):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, scale_text: float = 1.0):
        img = self.visual(self.drop(images))  # (B, D)
        txt = self.text_proj(self.drop(self.token_embedding(tokens).mean(dim=1))) * scale_text  # (B, D)
        return F.normalize(img, dim=-1), F.normalize(txt, dim=-1), self.logit_scale.exp()


def make_batch(n: int, seed: int = 0, duplicate_pairs: tuple[tuple[int, int], ...] = ()):
    """n (image, tokens) pairs; each (i, j) in duplicate_pairs gives text j the same tokens as text i."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, IMG_DIM, generator=g)
    tokens = torch.randint(0, VOCAB, (n, CTX), generator=g)
    for i, j in duplicate_pairs:
        tokens[j] = tokens[i]
    return images, tokens


def load_open_clip_loss():
    """open_clip's loss.py as a module, without the package __init__ (which imports timm and
    transformers and costs ~10 s): we only need ClipLoss / gather_features, which use torch alone."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        import pytest

        pytest.skip("open_clip_torch is not installed (dev extra): no oracle for the loss")
    path = Path(spec.origin).parent / "loss.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_loss_oracle", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def test_stand_in_honours_the_model_contract():
    model = TinyClip()
    images, tokens = make_batch(4)
    img_f, txt_f, scale = model(images, tokens)
    assert img_f.shape == txt_f.shape == (4, EMBED)
    torch.testing.assert_close(img_f.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(scale, torch.tensor(1 / 0.07), rtol=1e-4, atol=0)
    assert (make_batch(4, duplicate_pairs=((0, 3),))[1][3] == tokens[0]).all()
