"""Key and config mapping between our (= cn_clip's) layout and transformers' ChineseCLIPModel (ViT sizes).

The two hold the same numbers under different names, with three real differences:
q/k/v are separate Linears in HF but one stacked `in_proj_weight` in ours; HF's projections are
`nn.Linear` (weight = our matrix transposed); HF keeps the ViT position table as an Embedding.
HF has no ResNet tower, so RN50 cannot be expressed in its format.
"""
from __future__ import annotations

import re

import torch

from .clip import CLIPConfig
from .text import TextConfig
from .vision import VisionConfig

StateDict = dict[str, torch.Tensor]

# ours -> HF, for everything that is a plain rename
_VISION = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.": "vision_model.pre_layrnorm.",
    "visual.ln_post.": "vision_model.post_layernorm.",
}
_BLOCK = {"ln_1.": "layer_norm1.", "ln_2.": "layer_norm2.", "mlp.c_fc.": "mlp.fc1.", "mlp.c_proj.": "mlp.fc2.",
          "attn.out_proj.": "self_attn.out_proj."}
_OURS_BLOCK = re.compile(r"visual\.transformer\.resblocks\.(\d+)\.(.+)")
_HF_BLOCK = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.(.+)")


class ConversionError(ValueError):
    pass


def is_hf_config(cfg: dict) -> bool:
    return cfg.get("model_type") == "chinese_clip" or "vision_config" in cfg or "text_config" in cfg


def is_hf_state_dict(sd: StateDict) -> bool:
    return any(k.startswith(("vision_model.", "text_model.")) for k in sd)


def _rename(key: str, table: dict[str, str]) -> str | None:
    for a, b in table.items():
        if key == a or (a.endswith(".") and key.startswith(a)):
            return b + key[len(a):]
    return None


def ours_to_hf(sd: StateDict) -> StateDict:
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith("bert."):
            out["text_model." + k[len("bert."):]] = v
        elif k == "text_projection":
            out["text_projection.weight"] = v.t().contiguous()
        elif k == "visual.proj":
            out["visual_projection.weight"] = v.t().contiguous()
        elif k == "logit_scale":
            out[k] = v
        elif (m := _OURS_BLOCK.fullmatch(k)) is not None:
            i, rest = m.groups()
            pre = f"vision_model.encoder.layers.{i}."
            if rest.startswith("attn.in_proj_"):
                kind = "weight" if rest.endswith("weight") else "bias"
                for name, t in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3)):
                    out[f"{pre}self_attn.{name}.{kind}"] = t.contiguous()
            elif (new := _rename(rest, _BLOCK)) is not None:
                out[pre + new] = v
            else:
                raise ConversionError(f"no Hugging Face name for {k!r}")
        elif (new := _rename(k, _VISION)) is not None:
            out[new] = v
        else:
            raise ConversionError(f"no Hugging Face name for {k!r} (only ViT models exist in transformers)")
    return out


def hf_to_ours(sd: StateDict, source: object = "state dict") -> StateDict:
    inv_vision = {b: a for a, b in _VISION.items()}
    inv_block = {b: a for a, b in _BLOCK.items()}
    out: StateDict = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        if k.endswith(("position_ids", "token_type_ids")) or k.startswith("text_model.pooler."):
            continue  # buffers and the unused pooler
        if k.startswith("text_model."):
            out["bert." + k[len("text_model."):]] = v
        elif k == "text_projection.weight":
            out["text_projection"] = v.t().contiguous()
        elif k == "visual_projection.weight":
            out["visual.proj"] = v.t().contiguous()
        elif k == "logit_scale":
            out[k] = v
        elif (m := _HF_BLOCK.fullmatch(k)) is not None:
            i, rest = m.groups()
            pre = f"visual.transformer.resblocks.{i}."
            if (qm := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)) is not None:
                qkv.setdefault((i, qm.group(2)), {})[qm.group(1)] = v
            elif (new := _rename(rest, inv_block)) is not None:
                out[pre + new] = v
            else:
                out[k] = v  # left as is: reported as unexpected when loading
        elif (new := _rename(k, inv_vision)) is not None:
            out[new] = v
        else:
            out[k] = v
    for (i, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise ConversionError(f"{source}: layer {i} has only {sorted(parts)} of q/k/v_proj.{kind}")
        out[f"visual.transformer.resblocks.{i}.attn.in_proj_{kind}"] = torch.cat([parts[c] for c in "qkv"])
    return out


def _match_name(cfg, names_fn, cls, fields) -> str:
    for name in names_fn():
        known = cls.from_name(name)
        if all(getattr(known, f) == getattr(cfg, f) for f in fields):
            return name
    return "custom"


def hf_config_to_ours(hf: dict, source: object = "config.json") -> dict:
    """HF ChineseCLIPConfig dict -> our flat config dict (named like ours when the sizes match)."""
    from .text import text_model_names
    from .vision import vision_model_names

    v, t = hf.get("vision_config") or {}, hf.get("text_config") or {}
    width = v.get("hidden_size", 768)
    heads = v.get("num_attention_heads", 12)
    if v.get("intermediate_size", 4 * width) != 4 * width:
        raise ConversionError(f"{source}: vision intermediate_size {v['intermediate_size']} != 4 x hidden_size {width}")
    if v.get("hidden_act", "quick_gelu") != "quick_gelu":
        raise ConversionError(f"{source}: vision hidden_act {v['hidden_act']!r} is not quick_gelu")
    vision = VisionConfig(name="custom", embed_dim=hf.get("projection_dim", v.get("projection_dim", 512)),
                          image_resolution=v.get("image_size", 224), vision_layers=v.get("num_hidden_layers", 12),
                          vision_width=width, vision_patch_size=v.get("patch_size", 32),
                          vision_head_width=width // heads)
    vision.name = _match_name(vision, vision_model_names, VisionConfig,
                              ("embed_dim", "image_resolution", "vision_layers", "vision_width",
                               "vision_patch_size", "vision_head_width"))
    text = TextConfig(name="custom", vocab_size=t.get("vocab_size", 21128), text_hidden_size=t.get("hidden_size", 768),
                      text_num_hidden_layers=t.get("num_hidden_layers", 12),
                      text_num_attention_heads=t.get("num_attention_heads", 12),
                      text_intermediate_size=t.get("intermediate_size", 3072),
                      text_max_position_embeddings=t.get("max_position_embeddings", 512),
                      text_type_vocab_size=t.get("type_vocab_size", 2), text_hidden_act=t.get("hidden_act", "gelu"),
                      text_hidden_dropout_prob=t.get("hidden_dropout_prob", 0.1),
                      text_attention_probs_dropout_prob=t.get("attention_probs_dropout_prob", 0.1),
                      text_initializer_range=t.get("initializer_range", 0.02))
    text.name = _match_name(text, text_model_names, TextConfig,
                            ("vocab_size", "text_hidden_size", "text_num_hidden_layers", "text_num_attention_heads",
                             "text_intermediate_size", "text_max_position_embeddings"))
    return CLIPConfig(vision, text).to_dict()


def ours_to_hf_config(config: CLIPConfig, logit_scale: float = 2.6592) -> dict:
    """Our CLIPConfig -> the config.json of a transformers ChineseCLIPModel."""
    v, t = config.vision, config.text
    if v.is_resnet:
        raise ConversionError(f"{config.name}: transformers' ChineseCLIPModel has no ResNet tower; "
                              f"save RN50 with checkpoint.save or checkpoint.save_pt instead")
    return {
        "architectures": ["ChineseCLIPModel"], "model_type": "chinese_clip",
        "projection_dim": v.embed_dim, "logit_scale_init_value": logit_scale, "initializer_factor": 1.0,
        "text_config": {
            "model_type": "chinese_clip_text_model", "vocab_size": t.vocab_size, "hidden_size": t.text_hidden_size,
            "num_hidden_layers": t.text_num_hidden_layers, "num_attention_heads": t.text_num_attention_heads,
            "intermediate_size": t.text_intermediate_size, "hidden_act": t.text_hidden_act,
            "hidden_dropout_prob": t.text_hidden_dropout_prob,
            "attention_probs_dropout_prob": t.text_attention_probs_dropout_prob,
            "max_position_embeddings": t.text_max_position_embeddings, "type_vocab_size": t.text_type_vocab_size,
            "initializer_range": t.text_initializer_range, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        },
        "vision_config": {
            "model_type": "chinese_clip_vision_model", "hidden_size": v.vision_width,
            "intermediate_size": 4 * v.vision_width, "projection_dim": v.embed_dim,
            "num_hidden_layers": v.vision_layers, "num_attention_heads": v.heads, "num_channels": 3,
            "image_size": v.image_resolution, "patch_size": v.vision_patch_size, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
    }
