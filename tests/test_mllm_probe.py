"""The layer probe of chapter 11: which ViT block's tile tokens name a shape apart from its colour."""
import random

import torch

import cnclip_edu as cc
from cnclip_edu.data.toy import SHAPES
from cnclip_edu.mllm.probe import linear_probe, shape_probe, single_shape_tiles
from cnclip_edu.mllm.world import WorldConfig


def test_linear_probe_separates_separable_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 3
    y = torch.arange(200) % 4
    x = centres[y] + 0.3 * torch.randn(200, 16, generator=g)
    probe = linear_probe(x, y, 4, steps=200)
    assert (probe(x).argmax(1) == y).float().mean() == 1.0


def test_single_shape_tiles_label_the_drawn_shape():
    wc = WorldConfig()
    _, preprocess = cc.load("course")
    combos = [(c, s) for c, s in wc.seen() if s == list(SHAPES)[2]]
    px, y = single_shape_tiles(random.Random(0), combos, 5, wc, preprocess)
    assert px.shape == (5, 3, 32, 32)
    assert y.tolist() == [2] * 5


def test_shape_probe_reads_shapes_of_seen_combinations_and_reports_each_layer():
    clip, preprocess = cc.load("course")
    rows = shape_probe(clip.visual, preprocess, layers=(-1, -4), n_train=300, n_test=100, steps=150)
    assert [r.layer for r in rows] == [-1, -4]
    chance = 1 / len(SHAPES)
    for r in rows:
        assert 0.0 <= r.heldout_acc <= 1.0
        assert r.seen_acc > 3 * chance  # the course ViT's tiles do carry the shape of combinations it saw
