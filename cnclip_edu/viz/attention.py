"""Looking inside the vision tower: patches as a picture, and where the [CLS] token attends.

    from cnclip_edu.viz.attention import show_patches, vit_attention, plot_cls_attention
    show_patches(image_tensor, patch_size=8)
    attn = vit_attention(model.visual, images)          # (layers, B, heads, L, L)
    plot_cls_attention(images, attn)

The model computes attention with SDPA, which never materialises the attention matrix. To draw it
we hook each block's attention module and recompute softmax(q kᵀ / √d) from its input: the model's
forward pass is untouched, and the picture shows exactly the weights it used.
"""
from __future__ import annotations

import math

import torch

from ..data.transforms import CLIP_MEAN, CLIP_STD
from . import setup_cjk_font


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the CLIP normalisation: (B, 3, H, W) or (3, H, W) -> values in [0, 1] for plotting."""
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (images.detach().cpu().float() * std + mean).clamp(0, 1)


def patchify(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(3, H, W) -> (N, 3, P, P): the non-overlapping patches, row by row (the ViT's token order)."""
    C, H, W = image.shape
    p = image.unfold(1, patch_size, patch_size).unfold(2, patch_size, patch_size)  # (3, H/P, W/P, P, P)
    return p.permute(1, 2, 0, 3, 4).reshape(-1, C, patch_size, patch_size)


def show_patches(image: torch.Tensor, patch_size: int, max_patches: int = 64, cols: int = 8):
    """Left: the image with its patch grid, each patch numbered. Right: the token sequence the ViT reads,
    [CLS] first (sequence position 0), then the patches row by row (patch i at position i + 1)."""
    import matplotlib.patheffects as pe
    import matplotlib.pyplot as plt

    setup_cjk_font()
    img = denormalize(image)
    all_patches = patchify(img, patch_size)  # (N, 3, P, P)
    patches = all_patches[:max_patches]
    n, P, g = len(patches), patch_size, img.shape[-1] // patch_size
    cols = min(cols, n)
    rows = 1 + math.ceil(n / cols)  # row 0 holds [CLS] alone
    hgap, vgap = max(1, P // 4), max(2, round(P * 0.8))  # the space above a tile holds its label
    pitch_x, pitch_y = P + hgap, P + vgap
    canvas = torch.ones(3, rows * pitch_y, cols * pitch_x - hgap)  # white between tokens
    slots = [(0, 0)] + [(1 + i // cols, i % cols) for i in range(n)]  # (row, col) of [CLS], then of patch i
    canvas[:, vgap:vgap + P, 0:P] = 0.55  # [CLS] is no patch of the image: a plain grey tile
    for i, p in enumerate(patches):
        r, c = slots[i + 1]
        canvas[:, r * pitch_y + vgap:r * pitch_y + vgap + P, c * pitch_x:c * pitch_x + P] = p
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})
    a.imshow(img.permute(1, 2, 0).numpy())
    for k in range(0, img.shape[1] + 1, P):
        a.axhline(k - 0.5, color="white", lw=1.5)
        a.axvline(k - 0.5, color="white", lw=1.5)
    left_size = max(5.0, min(14.0, 100 / g))
    outline = [pe.withStroke(linewidth=left_size / 5, foreground="black")]
    for i in range(len(all_patches)):
        r, c = divmod(i, g)
        a.text(c * P + P / 2 - 0.5, r * P + P / 2 - 0.5, str(i), color="white", fontsize=left_size,
               ha="center", va="center", path_effects=outline)
    a.set_title(f"{img.shape[1]}×{img.shape[2]} 图像, patch = {P}: 按行编号 0 … {len(all_patches) - 1}")
    b.imshow(canvas.permute(1, 2, 0).numpy())
    right_size = max(6.0, min(10.0, 40 / rows))
    for i, (r, c) in enumerate(slots):
        label = "[CLS]" if i == 0 else str(i - 1)
        b.text(c * pitch_x + P / 2 - 0.5, r * pitch_y + vgap - 1, label, fontsize=right_size, ha="center", va="bottom")
    more = f"（只画前 {n} 个）" if n < len(all_patches) else ""
    b.set_title(f"token 序列：[CLS] 在位置 0，patch i 在位置 i + 1{more}")
    for ax in (a, b):
        ax.axis("off")
    fig.tight_layout()
    return fig


@torch.no_grad()
def vit_attention(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Attention weights of every block of a VisionTransformer: (layers, B, heads, L, L)."""
    if not hasattr(visual, "transformer"):
        raise TypeError("attention maps are drawn for the ViT tower (RN50 pools with a single query)")
    maps: list[torch.Tensor] = []

    def hook(module, inputs, output):
        q, k, _ = module.qkv(inputs[0])  # (B, H, L, Dh) each
        maps.append(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1).float().cpu())

    handles = [blk.attn.register_forward_hook(hook) for blk in visual.transformer.resblocks]
    try:
        visual(images.to(next(visual.parameters()).dtype))
    finally:
        for h in handles:
            h.remove()
    return torch.stack(maps)


def cls_attention(attn: torch.Tensor, layer: int = -1) -> torch.Tensor:
    """(layers, B, heads, L, L) -> (B, g, g): how much [CLS] attends to each patch, averaged over heads."""
    row = attn[layer, :, :, 0, 1:].mean(dim=1)  # (B, N)
    g = int(math.isqrt(row.shape[-1]))
    return row.view(-1, g, g)


def _foreground(img: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (H, W) float, 1 where a pixel is coloured or dark (a shape), 0 on the light
    grey-white background of the toy images."""
    saturation = img.amax(0) - img.amin(0)
    return ((saturation > 0.25) | (img.mean(0) < 0.6)).float()


def plot_cls_attention(images: torch.Tensor, attn: torch.Tensor, titles: list[str] | None = None):
    """One column per image: the image, then the [CLS] attention of the first and the last block drawn
    as an opaque patch heatmap with the shapes' outline on top. Not blended with the image: a dark shape
    under a translucent heatmap would look like low attention (and a red one like high attention).

    Each attention row shares one colour scale (0 to the row's largest weight), shown by its colour bar,
    so the images of a row can be compared; the white line on the bar is uniform attention, 1 / L.
    """
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    setup_cjk_font()
    B = images.shape[0]
    imgs = denormalize(images)
    fig, axes = plt.subplots(3, B, figsize=(2.2 * B + 0.9, 6.6), squeeze=False, layout="constrained")
    for row, (layer, name) in enumerate([(None, "图像"), (0, "第 1 层 [CLS] 注意力"),
                                         (-1, f"第 {attn.shape[0]} 层 [CLS] 注意力")]):
        maps = cls_attention(attn, layer) if layer is not None else None  # (B, g, g)
        for b in range(B):
            ax = axes[row, b]
            if maps is None:
                ax.imshow(imgs[b].permute(1, 2, 0).numpy())
            else:  # the heatmap alone carries colour; the image gives only an outline
                m = F.interpolate(maps[b][None, None], size=imgs.shape[-2:], mode="nearest")[0, 0]
                im = ax.imshow(m.numpy(), cmap="inferno", vmin=0.0, vmax=float(maps.max()))
                shape = _foreground(imgs[b])
                if 0 < shape.sum() < shape.numel():  # contour needs both levels
                    ax.contour(shape.numpy(), levels=[0.5], colors="cyan", linewidths=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                ax.set_ylabel(name, fontsize=9)
            if row == 0 and titles:
                ax.set_title(titles[b], fontsize=9)
        if maps is not None:
            bar = fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.9, pad=0.02)
            bar.set_label("注意力权重", fontsize=8)
            bar.ax.axhline(1 / (maps[0].numel() + 1), color="white", lw=1.5)  # uniform: 1 / L, L = 1 + N
            bar.ax.tick_params(labelsize=7)
    return fig
