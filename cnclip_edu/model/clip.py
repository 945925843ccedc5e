"""The CLIP model: a vision tower and a text tower projected into one embedding space.

    import cnclip_edu as cc
    model = cc.create_model("ViT-B-16@RoBERTa-wwm-ext-base-chinese")   # random init, official shapes
    model = cc.create_model("course")                                   # ViT-Course@RBT-Course, tiny
    img_f = model.encode_image(images)       # (B, E), unnormalized like cn_clip
    txt_f = model.encode_text(tokens)        # (B, E)
    logits_per_image, logits_per_text = model.get_similarity(images, tokens)

Model names are cn_clip's `vision@text` pairs; configs are the JSON files in `configs/` with cn_clip's
key names. State-dict keys are cn_clip's (`visual.*`, `bert.*`, `text_projection`, `logit_scale`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .text import BertModel, TextConfig, text_model_names
from .text_unpad import cls_hidden
from .vision import VisionConfig, build_vision_tower, vision_model_names

# released checkpoint name -> its vision@text pairing (as cn_clip's _MODEL_INFO)
RELEASED = {
    "ViT-B-16": "ViT-B-16@RoBERTa-wwm-ext-base-chinese",
    "ViT-L-14": "ViT-L-14@RoBERTa-wwm-ext-base-chinese",
    "ViT-L-14-336": "ViT-L-14-336@RoBERTa-wwm-ext-base-chinese",
    "ViT-H-14": "ViT-H-14@RoBERTa-wwm-ext-large-chinese",
    "RN50": "RN50@RBT3-chinese",
}
ALIASES = {**RELEASED, "course": "ViT-Course@RBT-Course"}
DEFAULT_CONTEXT_LENGTH = 52  # cn_clip's default for every released model


def available_models() -> list[str]:
    """Names `create_model` / `load` accept as a shorthand: the released models, then the course size."""
    return list(ALIASES)


def model_name_from_flags(vision_model: str | None, text_model: str | None = None) -> str:
    """'VISION@TEXT' from command-line flags; a vision model alone means its released pairing.

    ('ViT-Course', None) -> 'ViT-Course@RBT-Course', ('RN50', None) -> 'RN50@RBT3-chinese', an alias
    ('course', None) -> its full name. A vision model without a released pairing (ViT-B-32) needs a
    text model, and a text model alone is refused: the error says which flag to add.
    """
    if not vision_model:
        raise ValueError(f"give a vision model too (e.g. --vision-model ViT-B-16), not only text model {text_model!r}")
    full = ALIASES.get(vision_model, vision_model)
    if "@" in full:  # an alias or a full name
        if text_model and full.split("@", 1)[1] != text_model:
            full = f"{full.split('@', 1)[0]}@{text_model}"
        return full
    if text_model:
        return f"{vision_model}@{text_model}"
    paired = {v.split("@", 1)[0]: v for v in ALIASES.values()}  # vision name -> its released pairing
    if vision_model not in paired:
        raise ValueError(f"vision model {vision_model!r} has no released pairing ({', '.join(paired)} have one): "
                         f"give a text model too (e.g. --text-model RoBERTa-wwm-ext-base-chinese)")
    return paired[vision_model]


def released_name(full_name: str) -> str | None:
    """The shorthand whose weights `load` can fetch ('ViT-B-16', 'course') of a full name, else None."""
    return {full: alias for alias, full in ALIASES.items()}.get(ALIASES.get(full_name, full_name))


@dataclass
class CLIPConfig:
    vision: VisionConfig
    text: TextConfig
    context_length: int = DEFAULT_CONTEXT_LENGTH

    @property
    def vision_model(self) -> str:
        return self.vision.name

    @property
    def text_model(self) -> str:
        return self.text.name

    @property
    def name(self) -> str:
        return f"{self.vision.name}@{self.text.name}"

    @property
    def embed_dim(self) -> int:
        return self.vision.embed_dim

    @classmethod
    def from_name(cls, name: str) -> "CLIPConfig":
        """'course', a released name ('ViT-B-16'), or 'VISION@TEXT' ('ViT-B-32@RBT3-chinese')."""
        full = ALIASES.get(name, name)
        if "@" not in full:
            raise ValueError(f"unknown model {name!r}: use one of {available_models()} or 'VISION@TEXT' "
                             f"with VISION in {vision_model_names()} and TEXT in {text_model_names()}")
        vision, text = full.split("@", 1)
        return cls(VisionConfig.from_name(vision), TextConfig.from_name(text))

    def to_dict(self) -> dict:
        """Flat dict with cn_clip's keys (what `cn_clip.clip.model.CLIP(**d)` takes) plus the model names."""
        return {"vision_model": self.vision.name, "text_model": self.text.name,
                **self.vision.to_dict(), **self.text.to_dict(), "context_length": self.context_length}

    @classmethod
    def from_dict(cls, d: dict) -> "CLIPConfig":
        try:
            return cls(VisionConfig.from_dict(d), TextConfig.from_dict(d),
                       int(d.get("context_length", DEFAULT_CONTEXT_LENGTH)))
        except KeyError as e:
            raise ValueError(f"model config is missing key {e.args[0]!r}: {sorted(d)}") from None


def _tracing() -> bool:
    """Under torch.export / torch.compile / jit tracing the checks below would only add guards (or fail on
    a data-dependent min/max): they are for eager calls, where a user's mistake happens."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def check_images(images: torch.Tensor, resolution: int) -> None:
    """`images` must be a float (B, 3, R, R) batch: a clear error here instead of a conv or
    position-embedding shape mismatch deep inside the tower."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, {resolution}, {resolution}), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[2:]) != (resolution, resolution):
        hint = " (one image: add a batch axis, images[None])" if images.ndim == 3 else ""
        raise ValueError(f"images must have shape (B, 3, {resolution}, {resolution}) for this model, got "
                         f"{tuple(images.shape)}{hint}; `preprocess` from cc.load makes such tensors")
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point (preprocessed, normalized), got {images.dtype}: "
                        f"raw uint8 pixels need `preprocess` first")


def check_tokens(tokens: torch.Tensor, max_length: int, vocab_size: int) -> None:
    """`tokens` must be integer ids (B, L), L <= the position table, ids in [0, vocab_size). The range is
    checked on CPU tensors only: on a GPU it would cost a device sync per batch (an id out of range there
    still fails, as a CUDA assert)."""
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor (B, L) from cnclip_edu.tokenize, got {type(tokens).__name__}")
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (B, L), got {tuple(tokens.shape)}; cnclip_edu.tokenize makes them")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise TypeError(f"tokens must be integer ids (torch.long), got {tokens.dtype}")
    if tokens.shape[1] > max_length:
        raise ValueError(f"tokens has length {tokens.shape[1]}, longer than the model's {max_length} positions")
    if tokens.device.type == "cpu" and tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        bad = int(tokens.min()) if int(tokens.min()) < 0 else int(tokens.max())
        raise ValueError(f"tokens holds the id {bad}, outside the vocabulary [0, {vocab_size})")


class CLIP(nn.Module):
    """Chinese-CLIP: an image tower (ViT or ModifiedResNet, `visual`) and a RoBERTa-wwm text tower (`bert`)
    whose [CLS] state is projected (`text_projection`) into the same `embed_dim`-dimensional space.
    Parameter names and initialisation are cn_clip's, so official checkpoints load with strict=True.

        model, preprocess = cnclip_edu.load("course")
        image_features = model.encode_image(preprocess(img)[None])   # (1, E), not normalized
        text_features = model.encode_text(cnclip_edu.tokenize(["一只猫"]))   # (1, E), not normalized
    """

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.visual = build_vision_tower(config.vision)
        self.bert = BertModel(config.text)
        self.text_projection = nn.Parameter(
            torch.randn(config.text.text_hidden_size, config.embed_dim) * config.text.text_hidden_size ** -0.5)
        # temperature: logits = exp(logit_scale) * cos; CLIP starts at 1 / 0.07
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def image_resolution(self) -> int:
        return self.config.vision.image_resolution

    @property
    def context_length(self) -> int:
        return self.config.context_length

    @property
    def max_context_length(self) -> int:
        """The longest token sequence the text tower has position embeddings for."""
        return self.config.text.text_max_position_embeddings

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.dtype

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.set_grad_checkpointing(enable)  # type: ignore[operator]  # both towers define it
        self.bert.set_grad_checkpointing(enable)

    def encode_image(self, images: torch.Tensor, mask_ratio: float = 0.0) -> torch.Tensor:
        """Image features: (B, 3, R, R) preprocessed images -> (B, E), not normalized (as cn_clip's).

        R is `image_resolution`; `preprocess` from `load` makes such tensors from PIL images.
        `mask_ratio` > 0 drops that share of patches (FLIP) in training mode, ViT only.
        """
        if not _tracing():
            check_images(images, self.image_resolution)
        return self.visual(images.to(self.dtype), mask_ratio)

    def encode_text(self, tokens: torch.Tensor, unpad: bool = True) -> torch.Tensor:
        """Text features: (B, L) token ids from `cnclip_edu.tokenize` (0 = padding) -> (B, E), not
        normalized: the [CLS] hidden state of the last layer, projected.

        unpad: compute on the real tokens only (text_unpad.py: same result, about half the work for
        typical captions); False runs the dense `self.bert(tokens)[:, 0]`, as the ONNX export does.
        """
        if not _tracing():
            check_tokens(tokens, self.max_context_length, self.config.text.vocab_size)
        cls = cls_hidden(self.bert, tokens) if unpad else self.bert(tokens)[:, 0]  # (B, H)
        return cls @ self.text_projection  # (B, E)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, mask_ratio: float = 0.0):
        """-> (image_features (B, E), text_features (B', E)) L2-normalized, and the scale exp(logit_scale)."""
        image_features = F.normalize(self.encode_image(images, mask_ratio), dim=-1)
        text_features = F.normalize(self.encode_text(tokens), dim=-1)
        return image_features, text_features, self.logit_scale.exp()

    def get_similarity(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> logits_per_image (B, B'), logits_per_text (B', B): scaled cosine similarities."""
        image_features, text_features, scale = self(images, tokens)
        logits_per_image = scale * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()


def create_model(name: str | CLIPConfig | dict = "course", device: str | torch.device | None = None) -> CLIP:
    """A randomly initialised CLIP (cn_clip's initialisation) for a name, a CLIPConfig, or a config dict.

    Build on the meta device to count parameters without allocating: `with torch.device("meta"): ...`.
    """
    if isinstance(name, CLIPConfig):
        config = name
    elif isinstance(name, dict):
        config = CLIPConfig.from_dict(name)
    else:
        config = CLIPConfig.from_name(name)
    model = CLIP(config)
    return model.to(device) if device is not None else model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
