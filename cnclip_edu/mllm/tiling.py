"""Dynamic tiling (InternVL-1.5 "dynamic high resolution"): cut an image into square tiles by aspect ratio.

    from cnclip_edu.mllm import dynamic_preprocess
    tiles = dynamic_preprocess(img, max_num=12, image_size=448, use_thumbnail=True)   # list of PIL images

A ViT reads one fixed square size (InternViT: 448 px; our course ViT: 32 px). Squashing a wide
800x600 photo into one 448x448 square blurs small text and shapes; InternVL instead picks a grid of
i x j tiles (1 <= i*j <= max_num) whose aspect ratio i/j is closest to the image's, resizes the
image to (i*448, j*448), cuts it row by row, and appends one thumbnail (the whole image squashed
into one tile) for the global view. Each tile becomes 256 tokens (tokens_per_tile), so the grid
choice *is* the token budget: 800x600 -> 4x3 + thumbnail = 13 tiles = 3,328 tokens.

The grid rule, exactly as InternVL's `find_closest_aspect_ratio` (also transformers'
GotOcr2 `get_optimal_tiled_canvas`, which our tests use as the oracle):
1. candidates: every (i, j) with min_num <= i*j <= max_num, in order of tile count i*j;
2. the smallest |image ratio - i/j| wins;
3. on an exact tie, a later (so not fewer tiles) candidate replaces the best only if the image's
   area exceeds half of that grid's pixel area (i*j*image_size**2 / 2): a big image earns more
   tiles, a small one is not blown up for nothing. A square image of exactly one tile (448x448):
   2x2 ties with 1x1 but 448**2 is not > 2*448**2, so it stays one tile.
The aspect ratio is still obeyed for a tiny image: a 10x90 strip becomes 1x9 tiles, 81x its pixels.
"""
from __future__ import annotations

from PIL import Image


def candidate_grids(min_num: int = 1, max_num: int = 12) -> list[tuple[int, int]]:
    """Every (cols, rows) with min_num <= cols*rows <= max_num, sorted by tile count.

    Built from a set and then sorted by count (a stable sort), as InternVL does: grids with the
    same count keep the set's iteration order (only an exact same-count tie could see it)."""
    if min_num < 1 or max_num < min_num:
        raise ValueError(f"need 1 <= min_num <= max_num, got min_num={min_num}, max_num={max_num}")
    grids = {(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num}
    return sorted(grids, key=lambda g: g[0] * g[1])


def find_closest_aspect_ratio(aspect_ratio: float, target_ratios: list[tuple[int, int]], width: int,
                              height: int, image_size: int) -> tuple[int, int]:
    """The (cols, rows) grid for an image of `width` x `height` (InternVL's name and arguments)."""
    best, best_diff = (1, 1), float("inf")
    area = width * height
    for cols, rows in target_ratios:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)  # same distortion, more tiles: only when the image has the pixels for them
    return best


def choose_grid(width: int, height: int, min_num: int = 1, max_num: int = 12,
                image_size: int = 448) -> tuple[int, int]:
    """(cols, rows) that `dynamic_preprocess` uses for an image of this size."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return find_closest_aspect_ratio(width / height, candidate_grids(min_num, max_num), width, height, image_size)


def dynamic_preprocess(image: Image.Image, min_num: int = 1, max_num: int = 12, image_size: int = 448,
                       use_thumbnail: bool = False) -> list[Image.Image]:
    """Tiles of `image` (row by row), then the thumbnail if `use_thumbnail` and there are >= 2 tiles."""
    cols, rows = choose_grid(image.width, image.height, min_num, max_num, image_size)
    # PIL's resize defaults to bicubic for RGB images, which is what InternVL relies on; say it explicitly.
    resized = image.resize((cols * image_size, rows * image_size), Image.Resampling.BICUBIC)
    tiles = []
    for k in range(cols * rows):
        x, y = (k % cols) * image_size, (k // cols) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size), Image.Resampling.BICUBIC))
    return tiles


def count_image_tokens(width: int, height: int, tokens_per_tile: int = 256, min_num: int = 1,
                       max_num: int = 12, image_size: int = 448, use_thumbnail: bool = True) -> int:
    """How many <IMG_CONTEXT> tokens an image of this size costs the language model."""
    cols, rows = choose_grid(width, height, min_num, max_num, image_size)
    n = cols * rows
    return tokens_per_tile * (n + (1 if use_thumbnail and n > 1 else 0))
