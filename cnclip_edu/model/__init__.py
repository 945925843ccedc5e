"""Chapters 02-03: the two towers and the CLIP that joins them, their configs, checkpoints in and out.

    vision.py       ViT (+ FLIP patch dropping) and ModifiedResNet image towers
    text.py         RoBERTa-wwm (BERT) text tower; text_unpad.py: its [CLS] on real tokens only
    clip.py         CLIP, CLIPConfig, create_model / available_models (configs/*.json = cn_clip's)
    checkpoint.py   load / save: official cn_clip .pt, HF ChineseCLIP folders, ours (safetensors)
    hf_convert.py   our keys <-> transformers' ChineseCLIPModel keys; hub.py: downloads
    cn_clip_ref.py  cn_clip's own CLIP as the reference: our weights in it, or a file loaded strictly
"""
from .clip import (ALIASES, CLIP, RELEASED, CLIPConfig, available_models, build_vision_tower,  # noqa: F401
                   count_parameters, create_model)
