"""Vision towers of Chinese-CLIP: a ViT (with FLIP patch dropping) and the CLIP ModifiedResNet (RN50).

Parameter names are cn_clip's (`conv1`, `class_embedding`, `transformer.resblocks.{i}.attn.in_proj_weight`,
`attnpool.q_proj`, ...), so an official checkpoint loads by key. The computation differs where it
buys speed without changing the numbers: attention goes through
`torch.nn.functional.scaled_dot_product_attention` (flash / memory-efficient kernels on a GPU),
and activations stay batch-first (B, L, D) instead of cn_clip's (L, B, D).

    from .vision import VisionConfig, build_vision_tower
    tower = build_vision_tower(VisionConfig.from_name("ViT-B-16"))
    tower(torch.randn(2, 3, 224, 224)).shape   # (2, 512)
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclass
class VisionConfig:
    """One vision JSON of cn_clip (same key names). An int `vision_layers` means ViT, a list means ResNet."""

    name: str
    embed_dim: int
    image_resolution: int
    vision_layers: int | list[int]
    vision_width: int
    vision_patch_size: int | None = None
    vision_head_width: int = 64

    @property
    def is_resnet(self) -> bool:
        return isinstance(self.vision_layers, (list, tuple))

    @property
    def heads(self) -> int:
        # cn_clip: ViT heads = width // head_width; ResNet's attention pool works on width * 32 channels.
        width = self.vision_width * 32 if self.is_resnet else self.vision_width
        return width // self.vision_head_width

    @classmethod
    def from_dict(cls, d: dict, name: str = "custom") -> "VisionConfig":
        layers = d["vision_layers"]
        if isinstance(layers, str):  # cn_clip writes "[3,4,6,3]" as a string
            layers = json.loads(layers)
        return cls(name=d.get("vision_model", name), embed_dim=int(d["embed_dim"]),
                   image_resolution=int(d["image_resolution"]),
                   vision_layers=list(layers) if isinstance(layers, (list, tuple)) else int(layers),
                   vision_width=int(d["vision_width"]), vision_patch_size=d.get("vision_patch_size"),
                   vision_head_width=int(d.get("vision_head_width", 64)))

    @classmethod
    def from_name(cls, name: str) -> "VisionConfig":
        path = CONFIG_DIR / f"{name}.json"
        if not path.is_file():
            raise ValueError(f"unknown vision model {name!r}; known: {vision_model_names()}")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), name=name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        return d


def vision_model_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json") if "embed_dim" in json.loads(p.read_text()))


# ----------------------------------------------------------------------------- building blocks
class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16 weights stay stable (as in CLIP)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that OpenAI CLIP (and so cn_clip's ViT) was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names, computed with SDPA."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        assert dim % heads == 0, f"width {dim} is not divisible by {heads} heads"
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))  # q, k, v stacked
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, L, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3D)
        qkv = qkv.view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, L, Dh)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, H, L, Dh)
        return self.out_proj(y.transpose(1, 2).reshape(B, L, D))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, L, D)
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.grad_checkpointing = False
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                # recompute activations in backward: trades ~30% compute for far less memory
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


def random_masking(x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """FLIP: keep the class token and a random `1 - mask_ratio` share of the patch tokens.

    x: (B, 1 + N, D) -> (B, 1 + int(N * (1 - mask_ratio)), D). Each image gets its own random subset;
    fewer tokens make the encoder cheaper, and the dropped patches act as a regulariser.
    """
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    noise = torch.rand(B, L - 1, device=x.device, generator=generator)
    ids_keep = noise.argsort(dim=1)[:, :keep] + 1  # (B, keep), +1 skips the class token
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))  # (B, keep, D)
    return torch.cat([x[:, :1], kept], dim=1)


def resize_pos_embed(pos: torch.Tensor, grid: int) -> torch.Tensor:
    """Bicubic-resize a (1 + g*g, D) positional embedding to (1 + grid*grid, D); the class token is kept.

    Lets a checkpoint trained at one resolution run at another (cn_clip does the same, align_corners=True).
    """
    cls_tok, patches = pos[:1], pos[1:]
    old = int(math.isqrt(patches.shape[0]))
    if old * old != patches.shape[0]:
        raise ValueError(f"positional embedding has {patches.shape[0]} patch positions, not a square grid")
    if old == grid:
        return pos
    img = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2).float()  # (1, D, g, g)
    img = F.interpolate(img, size=(grid, grid), mode="bicubic", align_corners=True)
    patches = img.permute(0, 2, 3, 1).reshape(grid * grid, -1).to(pos.dtype)
    return torch.cat([cls_tok, patches], dim=0)


# ----------------------------------------------------------------------------- ViT
class VisionTransformer(nn.Module):
    """Image (B, 3, R, R) -> patches -> [CLS] + patches + positions -> pre-LN blocks -> ln_post([CLS]) @ proj."""

    def __init__(self, image_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int):
        super().__init__()
        self.input_resolution = image_resolution
        self.patch_size = patch_size
        self.grid_size = image_resolution // patch_size
        self.output_dim = output_dim
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.transformer.grad_checkpointing = enable

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) -> (B, N, D): one linear map per non-overlapping P x P patch, in row order.

        A convolution with kernel = stride = P is exactly "cut into patches, flatten, multiply by W".
        """
        x = self.conv1(x)  # (B, D, g, g)
        return x.flatten(2).transpose(1, 2)  # (B, D, N) -> (B, N, D): a transpose, not a reshape

    def add_class_and_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, 1 + N, D): the learned [CLS] token in front, then a learned position per slot."""
        cls_tok = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls_tok, tokens], dim=1)  # (B, 1 + N, D)
        return x + self.positional_embedding.to(x.dtype)  # (1 + N, D) broadcasts over the batch

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) -> tokens (B, 1 + N, D) with positions added (before ln_pre)."""
        return self.add_class_and_positions(self.patch_tokens(x))

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.0) -> torch.Tensor:
        x = self.embed(x)
        if mask_ratio > 0 and self.training:
            x = random_masking(x, mask_ratio)
        x = self.transformer(self.ln_pre(x))  # (B, L, D)
        x = self.ln_post(x[:, 0])  # (B, D): the class token summarises the image
        return x @ self.proj  # (B, E)


# ----------------------------------------------------------------------------- ModifiedResNet (RN50)
class Bottleneck(nn.Module):
    """ResNet bottleneck with anti-aliased downsampling: stride is an avgpool, every conv has stride 1."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride > 1 or inplanes != out:
            self.downsample = nn.Sequential()
            self.downsample.add_module("-1", nn.AvgPool2d(stride))  # cn_clip's key layout: "0" conv, "1" bn
            self.downsample.add_module("0", nn.Conv2d(inplanes, out, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self.avgpool(y)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(y + identity)


class AttentionPool2d(nn.Module):
    """Pool a feature map with one attention query: the mean token attends over all spatial tokens."""

    def __init__(self, spatial: int, dim: int, heads: int, output_dim: int):
        super().__init__()
        self.heads = heads
        self.positional_embedding = nn.Parameter(torch.randn(spatial ** 2 + 1, dim) / dim ** 0.5)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.c_proj = nn.Linear(dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)  # (B, 1 + HW, C)
        x = x + self.positional_embedding.to(x.dtype)
        Dh = C // self.heads
        # only the mean token's output is used, so it is the only query we compute
        q = self.q_proj(x[:, :1]).view(B, 1, self.heads, Dh).transpose(1, 2)  # (B, H, 1, Dh)
        k = self.k_proj(x).view(B, -1, self.heads, Dh).transpose(1, 2)  # (B, H, L, Dh)
        v = self.v_proj(x).view(B, -1, self.heads, Dh).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, C)  # (B, C)
        return self.c_proj(y)  # (B, E)


class ModifiedResNet(nn.Module):
    """CLIP's ResNet: 3-conv stem + avgpool, anti-aliased bottleneck stages, attention pooling."""

    def __init__(self, layers: list[int], output_dim: int, heads: int, image_resolution: int = 224,
                 width: int = 64):
        super().__init__()
        self.input_resolution = image_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        for i, blocks in enumerate(layers):
            planes, stride = width * 2 ** i, (1 if i == 0 else 2)
            stage = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
        self.attnpool = AttentionPool2d(image_resolution // 32, width * 32, heads, output_dim)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, x: torch.Tensor, mask_ratio: float = 0.0) -> torch.Tensor:
        """(B, 3, R, R) -> (B, E). `mask_ratio` is accepted and ignored (FLIP applies to ViTs only)."""
        x = x.to(self.conv1.weight.dtype)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = self.relu(bn(conv(x)))
        x = self.avgpool(x)  # (B, W, R/4, R/4)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return self.attnpool(x)  # (B, E)

    def init_weights(self) -> None:
        """cn_clip's init: scaled normal attention-pool projections, zero last BN of each block."""
        std = self.attnpool.c_proj.in_features ** -0.5
        for lin in (self.attnpool.q_proj, self.attnpool.k_proj, self.attnpool.v_proj, self.attnpool.c_proj):
            nn.init.normal_(lin.weight, std=std)
        for name, p in self.named_parameters():
            if name.startswith("layer") and name.endswith("bn3.weight"):
                nn.init.zeros_(p)  # each residual block starts as the identity


def build_vision_tower(cfg: VisionConfig) -> nn.Module:
    if cfg.is_resnet:
        tower = ModifiedResNet(cfg.vision_layers, cfg.embed_dim, cfg.heads, cfg.image_resolution, cfg.vision_width)
        tower.init_weights()
        return tower
    if not cfg.vision_patch_size:
        raise ValueError(f"vision config {cfg.name!r}: a ViT needs vision_patch_size")
    return VisionTransformer(cfg.image_resolution, cfg.vision_patch_size, cfg.vision_width, cfg.vision_layers,
                             cfg.heads, cfg.embed_dim)
