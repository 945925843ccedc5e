"""cnclip_edu — a readable, tested re-implementation of Chinese-CLIP (cn_clip) for the course.

    import cnclip_edu as cc
    model, preprocess = cc.load("ViT-B-16")          # or a local .pt / HF folder / our checkpoint
    tokens = cc.tokenize(["杰尼龟", "皮卡丘"])          # LongTensor [N, 52], same ids as cn_clip
    logits_per_image, logits_per_text = model.get_similarity(images, tokens)

One sub-package per chapter of the course (docs/architecture.md has the map): `tokenizer` (01),
`model` (02, 03), `loss` (04), `data` (05), `train` (06), `eval` (07, 08), `deploy` (09),
`mllm` (11), `course` (the notebook runner and the exercises), `viz` (plots and widgets).
Names are resolved lazily so that `import cnclip_edu` stays fast (no torch import until needed).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it)

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names below load lazily
    from . import course, data, deploy, eval, loss, mllm, model, tokenizer, train, viz
    from .deploy import export as export
    from .eval import zeroshot as zeroshot
    from .model import checkpoint as checkpoint
    from .data.transforms import image_transform
    from .model.checkpoint import load
    from .model.clip import CLIP, available_models, create_model
    from .eval.search import search
    from .tokenizer import decode, tokenize

# public name -> "module:attribute"
_LAZY = {
    "tokenize": "cnclip_edu.tokenizer:tokenize",
    "decode": "cnclip_edu.tokenizer:decode",
    "available_models": "cnclip_edu.model.clip:available_models",
    "create_model": "cnclip_edu.model.clip:create_model",
    "load": "cnclip_edu.model.checkpoint:load",
    "CLIP": "cnclip_edu.model.clip:CLIP",
    "image_transform": "cnclip_edu.data.transforms:image_transform",
    "search": "cnclip_edu.eval.search:search",
}
# attribute -> module: the chapter packages, plus the modules DESIGN §4 names at the top level
# (`cc.checkpoint.save_hf`, `cc.export.export_onnx`), which live in their chapter's package.
_SUBMODULES = {
    "tokenizer": "cnclip_edu.tokenizer", "model": "cnclip_edu.model", "loss": "cnclip_edu.loss",
    "data": "cnclip_edu.data", "train": "cnclip_edu.train", "eval": "cnclip_edu.eval",
    "deploy": "cnclip_edu.deploy", "mllm": "cnclip_edu.mllm", "course": "cnclip_edu.course",
    "viz": "cnclip_edu.viz",
    "checkpoint": "cnclip_edu.model.checkpoint", "export": "cnclip_edu.deploy.export",
    "zeroshot": "cnclip_edu.eval.zeroshot",
}
# Module paths of earlier releases that users' code may import (`from cnclip_edu.checkpoint import save`).
_MOVED = {f"cnclip_edu.{k}": v for k, v in _SUBMODULES.items() if v != f"cnclip_edu.{k}"}

__all__ = sorted(_LAZY) + sorted(_SUBMODULES)


def __dir__() -> list[str]:  # dir(cc) and help(cc) list the public names before any of them is loaded
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name].split(":")
        value = getattr(importlib.import_module(mod), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'cnclip_edu' has no attribute {name!r}")
    globals()[name] = value
    return value


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import cnclip_edu.checkpoint` gives the module that now lives in `cnclip_edu.model.checkpoint`
    (the same object, so there is one copy of its state)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in _MOVED else None

    def create_module(self, spec):
        return importlib.import_module(_MOVED[spec.name])

    def exec_module(self, module) -> None:
        pass  # already executed under its own name


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # before any other finder that might know the old path
