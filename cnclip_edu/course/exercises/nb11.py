"""Notebook 11 (from CLIP to a chat model that sees): the student writes the tiler's grid choice, the
pixel unshuffle, the answer-only labels, the VLM forward pass, what each training stage trains and the
greedy generation of replies, and one decoder block. Each part registers its own when imported:

- nb11_grid.py: the tiler's grid choice (11.1);
- nb11_unshuffle.py: the pixel unshuffle (11.2);
- nb11_labels.py: the answer-only labels (11.3);
- nb11_block.py: one decoder block by hand: RMSNorm, causal attention with RoPE, SwiGLU, residuals (11.4);
- nb11_forward.py: the VLM forward pass (11.5);
- nb11_stages.py: what each training stage trains (11.6; the stage table 11.q1);
- nb11_generate.py: greedy replies to a left-padded batch of prompts with images (11.7);
- nb11_common.py: the stand-in ViT and the random chats they share.

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb11_block, nb11_forward, nb11_generate, nb11_grid, nb11_labels, nb11_stages, nb11_unshuffle  # noqa: F401  (importing registers)
