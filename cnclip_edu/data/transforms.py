"""Image preprocessing: the eval transform of cn_clip, and a robust "any PIL mode -> RGB".

cn_clip's eval transform is: bicubic resize to R x R (no centre crop: the image is squashed),
convert to RGB, ToTensor, normalize with the OpenAI CLIP mean/std. We keep exactly that for RGB
inputs, so features match cn_clip's (bit for bit: tested against cn_clip's torchvision pipeline).
We do the same four steps with PIL and torch directly rather than through torchvision: one small
picklable callable whose steps a reader can see (torchvision is still used for `--use-augment`).
For other modes we convert to RGB *first* and do it properly:
16-bit greyscale is scaled to 8 bits (PIL's plain convert would clip it to white), and
transparent images are composited onto white (a plain convert turns transparent pixels into
whatever colour happens to be stored under them, often black).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

# OpenAI CLIP statistics, used by cn_clip for every model.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Return an 8-bit RGB copy of `img`, whatever its mode (L, LA, P, RGBA, CMYK, I;16, I, F, 1...)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        elif img.mode != "F" and (img.mode.startswith("I;16") or (arr.size and arr.max() > 255)):
            arr = arr / 257.0  # 16-bit range -> 8-bit range
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


class ImageTransform:
    """cn_clip's eval preprocessing as one picklable callable: PIL image (any mode) -> (3, R, R) float.

    The steps and their order are those of torchvision's Resize(BICUBIC) -> ToTensor -> Normalize,
    so the floats are identical: PIL's bicubic resize, bytes / 255, then (x - mean) / std.
    """

    def __init__(self, image_size: int = 224):
        self.image_size = int(image_size)
        self.mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)  # (3, 1, 1)
        self.std = torch.tensor(CLIP_STD).view(3, 1, 1)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.normalize(self.resized(img))

    def resized(self, img: Image.Image) -> torch.Tensor:
        """The first half: PIL image (any mode) -> (R, R, 3) uint8, RGB, resized. A dataset may keep
        these bytes (a quarter of the floats' size) and call `normalize` on every read."""
        r = self.image_size
        img = to_rgb(img)
        if img.size != (r, r):
            img = img.resize((r, r), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.array(img, dtype=np.uint8))                     # (R, R, 3) uint8

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """The second half: (R, R, 3) uint8 -> (3, R, R) float, a new tensor (`x` is left as it was)."""
        x = x.permute(2, 0, 1).contiguous().to(torch.float32).div(255)             # (3, R, R) in [0, 1]
        return x.sub_(self.mean).div_(self.std)

    def __repr__(self) -> str:
        return (f"ImageTransform(to_rgb -> bicubic resize to {self.image_size}x{self.image_size} -> "
                f"[0, 1] -> normalize(mean={CLIP_MEAN}, std={CLIP_STD}))")


def image_transform(image_size: int = 224) -> ImageTransform:
    """cn_clip's eval preprocessing: PIL image (any mode) -> FloatTensor [3, image_size, image_size]."""
    return ImageTransform(image_size)
