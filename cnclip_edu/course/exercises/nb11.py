"""Notebook 11 (from CLIP to a chat model that sees): the student writes the tiler's grid choice, the
pixel unshuffle, the MLP projector, the answer-only labels, one decoder block, the VLM forward pass, what each
training stage trains, one training step and the greedy generation of replies. Each part registers its own when imported:

- nb11_grid.py: the tiler's grid choice (11.1);
- nb11_unshuffle.py: the pixel unshuffle (11.2);
- nb11_projector.py: the MLP projector, InternVL's `mlp1` (11.3);
- nb11_labels.py: the answer-only labels (11.4);
- nb11_block.py: one decoder block by hand: RMSNorm, causal attention with RoPE, SwiGLU, residuals (11.5);
- nb11_forward.py: the VLM forward pass (11.6);
- nb11_stages.py: what each training stage trains (11.7; the stage table 11.q1);
- nb11_step.py: one training step: forward, shifted loss, zero_grad, backward, clip, optimizer step (11.8);
- nb11_generate.py: greedy replies to a left-padded batch of prompts with images (11.9);
- nb11_common.py: the stand-in ViT and the random chats they share.

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import (nb11_block, nb11_forward, nb11_generate, nb11_grid, nb11_labels, nb11_projector,  # noqa: F401  (importing registers)
               nb11_stages, nb11_step, nb11_unshuffle)
