"""Exercises of notebook 02 (the vision tower): the student builds a ViT's `encode_image` piece by piece,
takes the attention maps out with forward hooks (02.6), then writes FLIP's `random_masking`: first any
correct design of their own (02.7 checks properties only), then the convention MAE, FLIP and cn_clip
share, compared element by element (02.8).

Each answer is a function of a library module (`visual`, `attn`, `block`, the whole `model`) and a
tensor, run on seeded tiny towers (towers.py) and compared with the library's own method on the same
module: e.g. `VisionTransformer.patch_tokens(visual, images)` is the reference of
`patch_tokens(visual, images)`. Every exercise also has grading cases drawn from a seed (`hidden`) and
names the library routines it builds (`builds`): an answer that calls one of them is refused
(guards.py), so `visual(images)` does not pass as a hand-written ViT. Each part registers its own when
imported:

- nb02_embed.py: images to tokens: patchify (02.1), the [CLS] token and the positional embedding (02.2);
- nb02_attention.py: multi-head self-attention by hand (02.3);
- nb02_block.py: the pre-LN residual block with its QuickGELU MLP (02.4);
- nb02_encode.py: the whole `encode_image(model, images)`, features and gradients (02.5, a capstone piece);
- nb02_hooks.py: every block's attention weights, recomputed in forward hooks (02.6);
- nb02_masking.py: FLIP's random_masking, the student's own design (02.7) and the shared convention (02.8).

nb02_common.py holds the one name they share. The registry (`core._load_all`) imports only the `nbNN`
modules: this one is the notebook's entry.
"""
from . import nb02_attention, nb02_block, nb02_embed, nb02_encode, nb02_hooks, nb02_masking  # noqa: F401  (importing registers)
