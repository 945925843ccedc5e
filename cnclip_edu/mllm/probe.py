"""Which ViT layer should the projector read? A linear probe on single-shape tiles answers it.

InternVL takes the last block's patch tokens (`select_layer=-1`), LLaVA the second to last (-2).
For our tiny course ViT neither is a given: it was trained only through [CLS] on captions, so its
last block may mix colour and shape into features that name the *combinations it saw* rather than
the shape alone. The probe measures exactly what the chapter's held-out test needs:

    rows = shape_probe(clip.visual, preprocess, layers=(-1, -2, -3, -4))
    # per layer: shape accuracy of a linear classifier on that layer's tile tokens,
    # trained on seen (colour, shape) combinations, tested on seen and on held-out ones

A layer whose held-out accuracy is far below its seen accuracy entangles colour and shape: a
language model reading it cannot name the shape of a red star it never saw.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnclip_edu.data.toy import SHAPES

from .projector import PatchFeatures, tile_tokens
from .world import Canvas, Item, WorldConfig, render_canvas


@dataclass
class ProbeRow:
    layer: int
    seen_acc: float       # fresh tiles of combinations the probe was trained on
    heldout_acc: float    # tiles of the held-out combinations (never in the probe's training set)


def single_shape_tiles(rng: random.Random, combos: list[tuple[str, str]], n: int, wc: WorldConfig,
                       transform) -> tuple[torch.Tensor, torch.Tensor]:
    """n one-cell canvases with one shape each -> (n, 3, R, R) normalised tiles and (n,) shape indices."""
    shapes = list(SHAPES)
    pixels, labels = [], []
    for _ in range(n):
        c, s = rng.choice(combos)
        cv = Canvas(1, (Item(c, s, rng.choice(("大", "小")), 0),), rng.randint(232, 255), rng.uniform(-12, 12),
                    ((rng.uniform(-0.07, 0.07), rng.uniform(-0.07, 0.07)),))
        pixels.append(transform(render_canvas(cv, wc.cell_px, wc.render_px, wc.size_scale)))
        labels.append(shapes.index(s))
    return torch.stack(pixels), torch.tensor(labels)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, n_classes: int, steps: int = 300,
                 lr: float = 3e-3, seed: int = 0) -> torch.nn.Linear:
    """A softmax classifier fitted full-batch with Adam on standardised features (x - mean) / std."""
    torch.manual_seed(seed)
    probe = torch.nn.Linear(train_x.shape[1], n_classes)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(probe(train_x), train_y).backward()
        opt.step()
    return probe


@torch.no_grad()
def _features(visual, layer: int, pixels: torch.Tensor) -> torch.Tensor:
    """(n, 3, R, R) -> (n, tokens * width): a tile's tokens after the pixel unshuffle, side by side."""
    return tile_tokens(PatchFeatures(visual, layer).eval()(pixels)).flatten(1)


def shape_probe(visual, transform, layers: tuple[int, ...] = (-1, -2, -3, -4), n_train: int = 1500,
                n_test: int = 400, wc: WorldConfig | None = None, seed: int = 0, steps: int = 300) -> list[ProbeRow]:
    """Per layer: shape accuracy of a linear probe on its tile tokens, seen vs held-out combinations."""
    wc = wc or WorldConfig()
    seen, held = wc.seen(), wc.heldout()
    rng = random.Random(f"probe-{seed}")
    train = single_shape_tiles(rng, seen, n_train, wc, transform)
    tests = {"seen": single_shape_tiles(rng, seen, n_test, wc, transform),
             "heldout": single_shape_tiles(rng, held, n_test, wc, transform)}
    rows = []
    for layer in layers:
        x = _features(visual, layer, train[0])
        mean, std = x.mean(0), x.std(0) + 1e-5
        probe = linear_probe((x - mean) / std, train[1], len(SHAPES), steps, seed=seed)
        with torch.no_grad():
            acc = {k: (probe((_features(visual, layer, px) - mean) / std).argmax(1) == y).float().mean().item()
                   for k, (px, y) in tests.items()}
        rows.append(ProbeRow(layer, acc["seen"], acc["heldout"]))
    return rows
