"""cnclip_edu — a readable, tested re-implementation of Chinese-CLIP (cn_clip) for the course.

    import cnclip_edu as cc
    model, preprocess = cc.load("ViT-B-16")          # or a local .pt / HF folder / our checkpoint
    tokens = cc.tokenize(["杰尼龟", "皮卡丘"])          # LongTensor [N, 52], same ids as cn_clip
    logits_per_image, logits_per_text = model.get_similarity(images, tokens)

Names are resolved lazily so that `import cnclip_edu` stays fast (no torch import until needed).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "tokenize": "cnclip_edu.tokenizer:tokenize",
    "decode": "cnclip_edu.tokenizer:decode",
    "available_models": "cnclip_edu.model:available_models",
    "create_model": "cnclip_edu.model:create_model",
    "load": "cnclip_edu.checkpoint:load",
    "image_transform": "cnclip_edu.data.transforms:image_transform",
}
_SUBMODULES = {"checkpoint", "export", "model", "tokenizer", "course", "zeroshot", "loss", "viz", "data", "eval"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        value = importlib.import_module(f"cnclip_edu.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnclip_edu' has no attribute {name!r}")
