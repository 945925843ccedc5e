"""Training augmentation, the `--use-augment` of cn_clip, rebuilt with torchvision only.

cn_clip calls timm's `create_transform(is_training=True, scale=(0.9, 1.0), auto_augment='original',
color_jitter=None, interpolation='bicubic')`: a mild random resized crop, a horizontal flip, and
ImageNet AutoAugment ('original': mostly colour operations - equalize, solarize, posterize, colour,
contrast, invert - plus rotate and shear-x).
We keep the mild crop and drop what would change the *meaning* of a caption:
- no colour operations by default: in the toy world colour is the label ("红色的圆形"), and in
  real captions colour words are common ("白色连衣裙");
- no horizontal flip by default: captions say 左边/右边, a flip would make them false;
- no rotation by default: a square turned by 45 degrees is a 菱形 (rhombus), another shape word.
Both can be switched on for data whose captions do not depend on them.
"""
from __future__ import annotations

from dataclasses import dataclass

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from .transforms import CLIP_MEAN, CLIP_STD, to_rgb


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.9, 1.0)      # area kept by the random crop (cn_clip's value)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range of the crop (timm's default)
    degrees: float = 0.0                         # random rotation, +-degrees
    hflip: float = 0.0                           # probability of a horizontal flip (cn_clip: 0.5)
    color_jitter: float = 0.0                    # brightness/contrast/saturation strength (0 = off)


def train_transform(resolution: int, cfg: AugmentConfig = AugmentConfig()) -> T.Compose:
    """PIL image (any mode) -> augmented FloatTensor (3, R, R), normalised like the eval transform."""
    ops = [to_rgb, T.RandomResizedCrop(resolution, scale=cfg.scale, ratio=cfg.ratio,
                                       interpolation=InterpolationMode.BICUBIC)]
    if cfg.degrees:
        ops.append(T.RandomRotation(cfg.degrees, interpolation=InterpolationMode.BILINEAR, fill=255))
    if cfg.hflip:
        ops.append(T.RandomHorizontalFlip(cfg.hflip))
    if cfg.color_jitter:
        ops.append(T.ColorJitter(cfg.color_jitter, cfg.color_jitter, cfg.color_jitter))
    ops += [T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    return T.Compose(ops)
