"""Checkpoints in, checkpoints out: official cn_clip `.pt`, Hugging Face ChineseCLIP folders, and ours.

    model, preprocess = cc.load("ViT-B-16")                       # official weights (downloaded once)
    model, preprocess = cc.load("/path/clip_cn_vit-b-16.pt")      # architecture inferred from shapes
    model, preprocess = cc.load("/path/hf_chinese_clip_folder")    # transformers layout
    model, preprocess = cc.load("course")                         # the small course model we ship
    cc.checkpoint.save(model, "out")        # out/model.safetensors + out/config.json
    cc.checkpoint.save_pt(model, "x.pt")    # cn_clip layout, loads in cn_clip as it is
    cc.checkpoint.save_hf(model, "hf_out")  # transformers.ChineseCLIPModel.from_pretrained("hf_out")

Loading never unpickles arbitrary objects (`torch.load(weights_only=True)`), and any mismatch
between a file and the model raises one `CheckpointError` naming the file and listing what is wrong.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from cnclip_edu.fileio import atomic_write

from . import hf_convert, hub
from .clip import CLIP, RELEASED, CLIPConfig, available_models, create_model
from .text import TextConfig, text_model_names
from .vision import VisionConfig, resize_pos_embed, vision_model_names

if TYPE_CHECKING:
    from PIL import Image

COURSE_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "course_model"
WEIGHTS_NAME, CONFIG_NAME = "model.safetensors", "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model; the message names the file."""


# ----------------------------------------------------------------------------- reading
def _torch_detail(e: BaseException) -> str:
    """torch.load's message without its advice to retry with `weights_only=False`: that would run
    whatever code the file holds, and a refused file is exactly the one not to trust."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(ln for ln in lines if "weights_only" not in ln and not ln.startswith("Check the documentation"))


def torch_load(path: str | os.PathLike, mmap: bool | None = None) -> object:
    """`torch.load(path, weights_only=True)` on CPU; CheckpointError naming the file otherwise.

    mmap: memory-map the file (default: for zip-format files, i.e. every file torch >= 1.6 writes: a
    2 GB ViT-H file is not read into RAM twice; legacy-format files are read plainly).
    """
    path = Path(path)
    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        detail = _torch_detail(e)
        if "GLOBAL" not in detail:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
        raise CheckpointError(
            f"{path}: refused to load: the file contains pickled Python objects other than tensors and "
            f"plain containers, and we never unpickle arbitrary objects (torch.load weights_only=True). "
            f"Re-save it as a plain state dict or safetensors. ({detail})") from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {_torch_detail(e)})") from None


def _read_safetensors(path: Path) -> tuple[StateDict, dict | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({type(e).__name__}: {e})") from None
    cfg = json.loads(meta["model_config"]) if "model_config" in meta else None
    return sd, cfg


def normalize_keys(sd: StateDict) -> StateDict:
    """cn_clip layouts -> ours: drop `module.` (DDP) and `bert.pooler.*`, undo the flash-attention layout."""
    out = {}
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith("bert.pooler."):
            continue
        out[k] = v
    for k in [k for k in out if ".attn.Wqkv." in k]:  # cn_clip ViT with FlashMHA
        out[k.replace(".attn.Wqkv.", ".attn.in_proj_")] = out.pop(k)
    for k in [k for k in out if ".attention.self.Wqkv." in k]:  # cn_clip BERT with FlashMHA
        prefix, kind = k.split(".attention.self.Wqkv.")
        for part, t in zip(("query", "key", "value"), out.pop(k).chunk(3)):
            out[f"{prefix}.attention.self.{part}.{kind}"] = t
        out[f"{prefix}.attention.output.dense.{kind}"] = out.pop(f"{prefix}.attention.self.out_proj.{kind}")
    return out


def _from_pt_object(obj: object, path: Path) -> tuple[StateDict, dict | None]:
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict (a state dict or {{'state_dict': ...}}), got {type(obj).__name__}")
    cfg = obj.get("model_config")
    sd = obj.get("state_dict", obj)
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{path}: 'state_dict' is missing or empty")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: not a state dict: entries {bad[:5]} are not tensors (top-level keys: {list(obj)[:8]})")
    return sd, cfg if isinstance(cfg, dict) else None


def read_checkpoint(path: str | os.PathLike) -> tuple[StateDict, dict | None]:
    """Any supported checkpoint -> (state dict with our keys, flat model-config dict or None if unknown)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise CheckpointError(f"{path}: a checkpoint folder needs {CONFIG_NAME} (ours or Hugging Face's)")
        meta = json.loads(cfg_file.read_text(encoding="utf-8"))
        weights = next((path / w for w in HF_WEIGHTS if (path / w).is_file()), None)
        if weights is None:
            raise CheckpointError(f"{path}: no weights file ({' or '.join(HF_WEIGHTS)})")
        sd, _ = _read_safetensors(weights) if weights.suffix == ".safetensors" else _from_pt_object(torch_load(weights), weights)
        if hf_convert.is_hf_config(meta):
            return hf_convert.hf_to_ours(sd, source=weights), hf_convert.hf_config_to_ours(meta, source=cfg_file)
        return normalize_keys(sd), meta.get("model_config", meta)
    if path.suffix == ".safetensors":
        sd, cfg = _read_safetensors(path)
    else:
        sd, cfg = _from_pt_object(torch_load(path), path)
    if hf_convert.is_hf_state_dict(sd):
        return hf_convert.hf_to_ours(sd, source=path), cfg
    return normalize_keys(sd), cfg


def load_state_dict_any(path: str | os.PathLike) -> StateDict:
    """The state dict of any supported checkpoint, with our (= cn_clip's) keys."""
    return read_checkpoint(path)[0]


# ----------------------------------------------------------------------------- architecture from shapes
def _count(sd: StateDict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.fullmatch(k))})


def _known(cls, names: list[str], fields: tuple[str, ...], values: dict):
    """The named config whose `fields` equal `values` (so heads, names, activations come right), else None."""
    for name in names:
        cfg = cls.from_name(name)
        if all(getattr(cfg, f) == values[f] for f in fields):
            return cfg
    return None


def infer_config(sd: StateDict, source: str | os.PathLike = "state dict") -> CLIPConfig:
    """The architecture of a (our-keys) state dict, read from tensor shapes; names resolved when they match."""
    try:
        if "visual.attnpool.c_proj.weight" in sd:  # ModifiedResNet
            layers = [_count(sd, rf"visual\.layer{i}\.(\d+)\.conv1\.weight") for i in range(1, 5)]
            spatial = int(round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5))
            v = dict(embed_dim=sd["visual.attnpool.c_proj.weight"].shape[0], image_resolution=spatial * 32,
                     vision_layers=layers, vision_width=sd["visual.conv3.weight"].shape[0], vision_patch_size=None)
        else:
            width, _, patch, _ = sd["visual.conv1.weight"].shape
            grid = int(round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5))
            v = dict(embed_dim=sd["visual.proj"].shape[1], image_resolution=grid * patch,
                     vision_layers=_count(sd, r"visual\.transformer\.resblocks\.(\d+)\.attn\.in_proj_weight"),
                     vision_width=width, vision_patch_size=patch)
        vocab, hidden = sd["bert.embeddings.word_embeddings.weight"].shape
        t = dict(vocab_size=vocab, text_hidden_size=hidden,
                 text_num_hidden_layers=_count(sd, r"bert\.encoder\.layer\.(\d+)\.attention\.self\.query\.weight"),
                 text_intermediate_size=sd["bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
                 text_max_position_embeddings=sd["bert.embeddings.position_embeddings.weight"].shape[0],
                 text_type_vocab_size=sd["bert.embeddings.token_type_embeddings.weight"].shape[0])
    except KeyError as e:
        raise CheckpointError(f"{source}: cannot infer the architecture: no tensor {e.args[0]!r} "
                              f"(is this a Chinese-CLIP checkpoint? first keys: {list(sd)[:5]})") from None
    vision = _known(VisionConfig, vision_model_names(), tuple(v), v)
    if vision is None:  # e.g. finetuned at another resolution: keep the family's head width (ViT-H: 80)
        vision = _known(VisionConfig, vision_model_names(), tuple(k for k in v if k != "image_resolution"), v)
        vision = VisionConfig(**{**(vision.__dict__ if vision else {"name": "custom"}), **v})
    text = (_known(TextConfig, text_model_names(), tuple(t), t)
            or TextConfig(name="custom", text_num_attention_heads=max(1, hidden // 64), **t))  # type: ignore[arg-type]
    return CLIPConfig(vision, text)


# ----------------------------------------------------------------------------- loading into a model
def _held_model(sd: StateDict, cfg: dict | None) -> str:
    """The model a state dict holds, for error messages: its saved config's name, else from shapes."""
    try:
        return (CLIPConfig.from_dict(cfg) if cfg else infer_config(sd)).name
    except (CheckpointError, ValueError, TypeError):
        return "an unknown model"


def check_fits(model: CLIP, sd: StateDict, source: str | os.PathLike = "state dict",
               config: dict | None = None) -> None:
    """CheckpointError naming the file, the model it holds and the model asked for, unless every key
    and shape of `sd` (our keys) matches `model`. `config`: the checkpoint's saved model config."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in expected if k in sd and sd[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        def lst(xs):
            return ", ".join(xs[:10]) + (f" ... ({len(xs)} in all)" if len(xs) > 10 else "")
        parts = [f"{len(missing)} missing keys: {lst(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected keys: {lst(unexpected)}" if unexpected else "",
                 f"{len(shapes)} shape mismatches: {lst(shapes)}" if shapes else ""]
        raise CheckpointError(f"{source} holds {_held_model(sd, config)}; it does not fit {model.config.name}, "
                              "the model asked for: " + "; ".join(p for p in parts if p))


def load_weights(model: CLIP, sd: StateDict, source: str | os.PathLike = "state dict",
                 config: dict | None = None) -> CLIP:
    """Strictly load `sd` into `model` (positional embeddings resized to the model's resolution)."""
    sd = dict(sd)
    for key, grid in (("visual.positional_embedding", getattr(model.visual, "grid_size", None)),
                      ("visual.attnpool.positional_embedding", model.image_resolution // 32)):
        if key in sd and grid and key in model.state_dict() and sd[key].shape != model.state_dict()[key].shape:
            sd[key] = resize_pos_embed(sd[key], grid)
    check_fits(model, sd, source, config)
    dtype = model.dtype
    # copy: the model must own its memory (files are memory-mapped, and may change on disk later)
    sd = {k: v.to(dtype, copy=True) if v.is_floating_point() else v.clone() for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=next(model.parameters()).is_meta)
    return model


def load(name_or_path: str | os.PathLike = "course", device: str | torch.device = "cpu",
         download_root: str | os.PathLike | None = None, vision_model: str | None = None,
         text_model: str | None = None, image_resolution: int | None = None,
         ) -> tuple[CLIP, Callable[[Image.Image], torch.Tensor]]:
    """-> (model in eval mode on `device`, preprocess: PIL image -> (3, R, R) tensor).
    Names: 'course', a released name, or a path (cn_clip .pt, HF folder, our folder or .pt).

    The architecture comes from (first that applies): `vision_model`/`text_model`, the checkpoint's own
    config (ours, or an HF config.json), the released pairing of an official name, the tensor shapes.
    `image_resolution` runs the model at another input size (positional embeddings are interpolated).
    """
    from cnclip_edu.data.transforms import image_transform

    name = str(name_or_path)
    if name == "course":
        path = COURSE_MODEL_DIR
        if not (path / WEIGHTS_NAME).is_file():
            raise FileNotFoundError(f"the course model is not there yet ({path / WEIGHTS_NAME} is missing): "
                                    f"run `make toy-checkpoint` to train it (about 3 minutes on a CPU)")
    elif name in hub.OFFICIAL_FILES:
        path = hub.download(name, download_root)
    else:
        path = Path(name_or_path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{name!r} is neither a model name ({', '.join(available_models())}) "
                                    f"nor an existing checkpoint file or folder")
    sd, cfg_dict = read_checkpoint(path)
    if cfg_dict is not None:
        try:
            config = CLIPConfig.from_dict(cfg_dict)
        except (ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: bad model config: {e}") from None
    elif name in RELEASED:
        config = CLIPConfig.from_name(RELEASED[name])
    else:
        config = infer_config(sd, source=path)
    if vision_model:
        config.vision = VisionConfig.from_name(vision_model)
    if text_model:
        config.text = TextConfig.from_name(text_model)
    if image_resolution:
        config.vision.image_resolution = int(image_resolution)
    with torch.device("meta"):  # no random init: the weights come from the file
        model = create_model(config)
    load_weights(model, sd, source=path)
    model = model.to(device).eval()
    return model, image_transform(model.image_resolution)


# ----------------------------------------------------------------------------- writing
def _plain_state_dict(model_or_sd) -> StateDict:
    sd = model_or_sd.state_dict() if isinstance(model_or_sd, torch.nn.Module) else model_or_sd
    return {k: v.detach().cpu().contiguous().clone() for k, v in sd.items()}


def save(model: CLIP, out_dir: str | os.PathLike) -> Path:
    """Our format: `out_dir/model.safetensors` (config also in its metadata) + `out_dir/config.json`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    cfg = model.config.to_dict()
    meta = {"format": "pt", "model_config": json.dumps(cfg, ensure_ascii=False)}
    atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(_plain_state_dict(model), tmp, metadata=meta))
    atomic_write(out / CONFIG_NAME, json.dumps(cfg, ensure_ascii=False, indent=2) + "\n")
    return out


def save_pt(model: CLIP, path: str | os.PathLike, epoch: int = 0, step: int = 0, name: str = "cnclip_edu") -> Path:
    """cn_clip's layout (`{"epoch", "step", "name", "state_dict": {"module.…"}}`) plus our `model_config`."""
    path = Path(path)
    obj = {"epoch": epoch, "step": step, "name": name,
           "state_dict": {f"module.{k}": v for k, v in _plain_state_dict(model).items()},
           "model_config": model.config.to_dict()}
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
    return path


def hf_preprocessor_config(image_resolution: int) -> dict:
    """ChineseCLIPImageProcessor settings that reproduce cn_clip's eval transform: bicubic resize straight to
    R x R (the image is squashed, not centre-cropped), bytes / 255, OpenAI CLIP mean / std. HF's default
    processor resizes the short side and centre-crops, which gives other features (logits off by ~0.1)."""
    from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD

    side = {"height": int(image_resolution), "width": int(image_resolution)}
    return {"image_processor_type": "ChineseCLIPImageProcessor", "processor_class": "ChineseCLIPProcessor",
            "do_resize": True, "size": side, "resample": 3,  # 3 = PIL.Image.BICUBIC
            "do_center_crop": False, "crop_size": side, "do_rescale": True, "rescale_factor": 1 / 255,
            "do_normalize": True, "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD), "do_convert_rgb": True}


def _hf_tokenizer_files(context_length: int) -> dict[str, str]:
    """The files `BertTokenizer(Fast).from_pretrained` reads: cn_clip's vocab (lower-cased, Chinese characters
    split), 52 tokens by default like cn_clip's tokenize."""
    from cnclip_edu.tokenizer import VOCAB_PATH

    config = {"tokenizer_class": "BertTokenizer", "processor_class": "ChineseCLIPProcessor", "do_lower_case": True,
              "tokenize_chinese_chars": True, "strip_accents": None, "model_max_length": int(context_length),
              "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
              "mask_token": "[MASK]"}
    special = {k: config[k] for k in ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")}
    return {"vocab.txt": VOCAB_PATH.read_text(encoding="utf-8"),
            "tokenizer_config.json": json.dumps(config, ensure_ascii=False, indent=2) + "\n",
            "special_tokens_map.json": json.dumps(special, ensure_ascii=False, indent=2) + "\n"}


def save_hf(model: CLIP, out_dir: str | os.PathLike) -> Path:
    """A complete Hugging Face folder (ViT models only): weights and config for
    `transformers.ChineseCLIPModel.from_pretrained`, and the preprocessor and tokenizer files for
    `ChineseCLIPProcessor.from_pretrained`, set to give cn_clip's (and our) features on the same inputs."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    hf_cfg = hf_convert.ours_to_hf_config(model.config)  # raises first for RN50
    hf_cfg["logit_scale_init_value"] = model.logit_scale.item()
    hf_sd = hf_convert.ours_to_hf(_plain_state_dict(model))
    atomic_write(out / "model.safetensors", lambda tmp: save_file(hf_sd, tmp, metadata={"format": "pt"}))
    atomic_write(out / CONFIG_NAME, json.dumps(hf_cfg, ensure_ascii=False, indent=2) + "\n")
    preprocessor = hf_preprocessor_config(model.image_resolution)
    atomic_write(out / "preprocessor_config.json", json.dumps(preprocessor, indent=2) + "\n")
    for name, text in _hf_tokenizer_files(model.context_length).items():
        atomic_write(out / name, text)
    return out
