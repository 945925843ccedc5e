"""What the exercises of notebook 11 share: a stand-in for the course ViT (11.6, 11.7) and random toy-world
chats with their tile counts (11.4, 11.6)."""
from __future__ import annotations

import random


class _StandInViT:
    """What MiniVLM reads of a course ViT (4 blocks, a 4x4 grid, width 128) without building one: the
    exercise starts from tile features, so the tower itself never runs."""

    def __new__(cls):
        from torch import nn

        v = nn.Module()
        v.transformer = nn.Module()
        v.transformer.resblocks = nn.ModuleList(nn.Identity() for _ in range(4))
        v.conv1 = nn.Conv2d(3, 128, 8, 8, bias=False)
        v.grid_size = 4
        return v


def _tiny_vlm():
    """A small MiniVLM (width 32, 2 layers) with sharp random weights (init std 0.3, seed 11), so that a token
    moved by one slot changes the loss (11.6) and greedy replies differ row by row (11.9)."""
    import torch

    from cnclip_edu.mllm import world as W
    from cnclip_edu.mllm.chat import ChatVocab
    from cnclip_edu.mllm.decoder import DecoderConfig
    from cnclip_edu.mllm.vlm import MiniVLM, VLMConfig

    with torch.random.fork_rng():
        torch.manual_seed(11)
        cfg = VLMConfig(select_layer=-4, decoder=DecoderConfig(vocab_size=0, width=32, layers=2, heads=2,
                                                               mlp_hidden=64, init_std=0.3))
        return MiniVLM(_StandInViT(), ChatVocab.from_texts(W.vocabulary_texts()), cfg).eval()


def _tiles_of(cells: int) -> int:
    return 1 if cells == 1 else cells + 1   # 1 cell: one tile; 2-3 cells: a tile per cell + the thumbnail


def _random_chats(rng: random.Random, n: int) -> list:
    from cnclip_edu.mllm import world as W

    combos = W.WorldConfig().seen()
    chats = []
    for k in range(n):
        cv = W.sample_canvas(rng, combos)
        if rng.random() < 0.25:
            turns = [(W.CAPTION_PROMPT, W.caption(cv))]
        else:
            turns = W.conversation(rng, k, cv, combos, rng.choice((1, 2, 3))).turns
        chats.append((turns, _tiles_of(cv.cells)))
    return chats
