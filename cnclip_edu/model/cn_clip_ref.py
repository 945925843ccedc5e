"""cn_clip's own CLIP as the reference (oracle): built for one of our configs, loaded from a file, or
holding a copy of our model's weights, so that a notebook or a test compares numbers in one line.

    from cnclip_edu.model.cn_clip_ref import build_cn_clip, cn_clip_copy, cn_clip_from_checkpoint
    ref = cn_clip_copy(model)                          # cn_clip's CLIP with our model's weights
    ref = cn_clip_from_checkpoint("x.pt", "RN50")      # a cn_clip-layout file, loaded strictly

Why a module: cn_clip builds its model from two JSON files (vision + text) merged into one dict of
keyword arguments; our configs are those same files (tests/test_model.py proves it), so the merged
dict is our `CLIPConfig.to_dict()` without our three extra keys. Loading a file into cn_clip's model
goes through the meta device with `load_state_dict(assign=True)`: the model is built without memory
or random initialisation, and the file's tensors become its parameters as they are.

cn_clip is a test and teaching dependency (installed with `pip install --no-deps cn-clip`), imported
only when a function here is called.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .clip import CLIP, CLIPConfig

_OURS_ONLY = ("vision_model", "text_model", "context_length")  # keys cn_clip's CLIP does not take


def _config(name_or_config: str | CLIPConfig) -> CLIPConfig:
    return name_or_config if isinstance(name_or_config, CLIPConfig) else CLIPConfig.from_name(name_or_config)


def cn_clip_kwargs(name_or_config: str | CLIPConfig) -> dict:
    """The keyword arguments of `cn_clip.clip.model.CLIP` for a model name ('RN50', 'course', 'V@T')."""
    d = _config(name_or_config).to_dict()
    return {k: v for k, v in d.items() if k not in _OURS_ONLY}


def _cn_clip_class():
    try:
        from cn_clip.clip.model import CLIP as CnClip
    except ImportError as e:
        raise ImportError("cn_clip is not installed: pip install --no-deps cn-clip (it is the reference "
                          "implementation we compare with)") from e
    return CnClip


def build_cn_clip(name_or_config: str | CLIPConfig) -> nn.Module:
    """cn_clip's CLIP with its own random initialisation, in eval mode."""
    return _cn_clip_class()(**cn_clip_kwargs(name_or_config)).eval()


def _load_strict(name_or_config: str | CLIPConfig, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    with torch.device("meta"):  # shapes only: no memory, no random init
        ref = _cn_clip_class()(**cn_clip_kwargs(name_or_config))
    ref.load_state_dict(state_dict, strict=True, assign=True)  # assign: take the tensors as they are
    return ref.eval()


def cn_clip_from_checkpoint(path: str | os.PathLike, name_or_config: str | CLIPConfig | None = None) -> nn.Module:
    """cn_clip's CLIP loaded strictly from a cn_clip-layout `.pt` (`{"state_dict": {"module.…"}}`).

    The architecture is `name_or_config`, else the file's `model_config` (written by our `save_pt`).
    """
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if name_or_config is None:
        if "model_config" not in obj:
            raise ValueError(f"{path}: no model_config in the file; pass the model name (e.g. 'RN50')")
        name_or_config = CLIPConfig.from_dict(obj["model_config"])
    # what cn_clip's own loader (cn_clip/clip/utils.py) does: drop DDP's prefix and the unused pooler
    sd = {k.removeprefix("module."): v for k, v in obj["state_dict"].items() if "bert.pooler" not in k}
    return _load_strict(name_or_config, sd)


def cn_clip_copy(model: CLIP) -> nn.Module:
    """cn_clip's CLIP holding a copy of `model`'s weights (strict: every key and shape must agree)."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _load_strict(model.config, sd)
