"""What the exercises of notebook 04 share: seeded pairs of L2-normalised (image, text) features (04.1,
04.3, 04.4), and a loss run on features that live on another device than the CPU (04.1, 04.4: both
build labels, which must be made on the features' device).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _pairs(n: int, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n L2-normalised (image, text) feature pairs: a shared vector plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, dim, generator=g)
    img = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    txt = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    return img, txt

def _on_other_device(f, *features, **kwargs) -> dict:
    """f on features that live on another device than the CPU: the `meta` device (shapes, no data) stands
    in for a GPU on a machine without one. A tensor the answer makes on the CPU (labels from a bare
    `torch.arange(N)`) then meets the features in one op and raises, as it would on a GPU. -> where the
    loss came out and its shape: plain data, the same for every right answer."""
    loss = f(*[x.to("meta") for x in features], **kwargs)
    if not isinstance(loss, torch.Tensor):
        return {"损失的类型": type(loss).__name__}
    return {"损失所在的设备": str(loss.device), "损失的形状": list(loss.shape)}
