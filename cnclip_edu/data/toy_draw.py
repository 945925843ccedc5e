"""Toy-world drawing: scenes (lists of `toy_text.Shape`) -> PNG bytes, in parallel processes.

Shapes are drawn at 2x and downsampled (anti-aliased edges, like a photo, not jagged pixels),
filled with saturated colours on a plain light background, and slightly rotated, so that the
bicubic 64 -> 32 px resize of the eval transform keeps them recognisable.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

from PIL import Image, ImageDraw

from .pool import worker_pool

_SS = 2  # supersampling factor

# The eight colours of the toy world (names as the captions say them); saturated, so that they stay
# distinct after the bicubic 64 -> 32 px downscale.
COLORS: dict[str, tuple[int, int, int]] = {
    "红色": (220, 30, 30), "橙色": (255, 135, 0), "黄色": (235, 195, 0), "绿色": (20, 150, 40),
    "蓝色": (30, 70, 220), "紫色": (135, 45, 195), "粉色": (255, 110, 190), "黑色": (25, 25, 25),
}


def _unit_polygon(shape: str) -> list[tuple[float, float]] | None:
    """Outline in units of the half-height (y down), or None for the circle."""
    if shape == "圆形":
        return None
    if shape == "正方形":
        r = 0.8
        return [(-r, -r), (r, -r), (r, r), (-r, r)]
    if shape == "三角形":
        return [(math.cos(a) * 1.05, math.sin(a) * 1.05 + 0.15) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "五角星":
        return [(math.cos(-math.pi / 2 + k * math.pi / 5) * (1.0 if k % 2 == 0 else 0.45),
                 math.sin(-math.pi / 2 + k * math.pi / 5) * (1.0 if k % 2 == 0 else 0.45) + 0.05) for k in range(10)]
    if shape == "十字":
        a, w = 0.95, 0.32
        return [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)]
    if shape == "菱形":
        return [(0, -1.0), (0.78, 0), (0, 1.0), (-0.78, 0)]
    raise ValueError(f"unknown shape {shape!r}")


def render_scene(scene: dict, size: int) -> bytes:
    """One scene -> PNG bytes of a `size` x `size` RGB image."""
    big = size * _SS
    g = scene["background"]
    img = Image.new("RGB", (big, big), (g, g, g))
    draw = ImageDraw.Draw(img)
    rot = math.radians(scene.get("angle", 0.0))
    cos, sin = math.cos(rot), math.sin(rot)
    for p in scene["shapes"]:
        cx, cy, r = p.x * big, p.y * big, p.scale * big / 2
        fill = COLORS[p.color]
        pts = _unit_polygon(p.shape)
        if pts is None:
            rr = 0.9 * r
            draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=fill)
        else:
            draw.polygon([(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in pts], fill=fill)
    img = img.resize((size, size), Image.Resampling.BOX)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def draw_shapes(shapes: list, size: int = 64, background: int = 245, angle: float = 0.0) -> Image.Image:
    """A few `toy_text.Shape`s on a plain background -> a PIL image, as the toy world draws them.

    For notebooks that draw their own examples: `draw_shapes([Shape("红色", "圆形", "大", (0, 0), .25, .25, .42)])`.
    """
    scene = {"background": background, "angle": angle, "shapes": list(shapes)}
    return Image.open(io.BytesIO(render_scene(scene, size))).convert("RGB")


def _render_chunk(args: tuple[list[dict], int]) -> list[bytes]:
    scenes, size = args
    return [render_scene(s, size) for s in scenes]


def render_batch(scenes: list[dict], size: int, workers: int = 1) -> list[bytes]:
    """Render many scenes, in `workers` processes when it pays off (output order = input order)."""
    if workers <= 1 or len(scenes) < 400:
        return _render_chunk((scenes, size))
    n = math.ceil(len(scenes) / (workers * 4))
    chunks = [(scenes[i:i + n], size) for i in range(0, len(scenes), n)]
    with worker_pool(workers) as ex:  # workers that die with us (a kernel restarted mid-draw)
        return [png for part in ex.map(_render_chunk, chunks) for png in part]


def save_png_files(pngs: list[bytes], paths: list[Path]) -> None:
    for png, path in zip(pngs, paths):
        os.makedirs(path.parent, exist_ok=True)
        path.write_bytes(png)
