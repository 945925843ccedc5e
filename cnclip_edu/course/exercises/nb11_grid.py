"""Exercise 11.1 of notebook 11 (from CLIP to a chat model that sees): the tiler's grid choice.

11.1 is compared with `mllm.tiling.find_closest_aspect_ratio` (InternVL's rule; tests/test_mllm_tiling.py
checks it against transformers' port on thousands of sizes). The cases hold exact ties between
grids of the same ratio and of different ratios, an area exactly equal to half a grid's pixels (so
`>=` instead of `>` shows), elongated and tall images, and the course's own canvases.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 11.1 grid choice
_GRID_SIZES = [  # (width, height, min_num, max_num, tile size, what it shows)
    (800, 600, 1, 12, 448, "800×600，最多 12 块"),
    (448, 448, 1, 12, 448, "448×448：正好一块"),
    (634, 634, 1, 12, 448, "634×634：面积刚过 2×2 网格像素的一半"),
    (633, 633, 1, 12, 448, "633×633：面积差一点不够"),
    (875, 700, 1, 6, 448, "875×700：比例 1.25 与 1×1、2×2、3×2 同样接近"),
    (865, 692, 1, 6, 448, "865×692：同上，面积只够 2×2"),
    (9, 8, 1, 6, 6, "9×8、块边长 6：面积恰好等于 2×2 网格像素的一半"),
    (8, 9, 1, 12, 4, "8×9、块边长 4：面积恰好等于 3×3 网格像素的一半"),
    (10, 90, 1, 12, 448, "10×90 的细长条"),
    (1200, 300, 1, 12, 448, "1200×300 的宽图"),
    (96, 32, 1, 12, 32, "课程画布：3 格，96×32"),
    (500, 400, 2, 6, 448, "500×400，至少 2 块"),
]


def _grid_cases():
    from cnclip_edu.mllm.tiling import candidate_grids

    groups = [_GRID_SIZES[0:4], _GRID_SIZES[4:8], _GRID_SIZES[8:12]]
    labels = ["800×600、448×448、634×634、633×633", "平局：875×700、865×692、9×8、8×9（面积恰为一半）",
              "10×90、1200×300、96×32（块边长 32）、500×400（至少 2 块）"]

    def run(f, group):
        return [tuple(f(w / h, candidate_grids(lo, hi), w, h, s)) for w, h, lo, hi, s, _ in group]

    return [Case(label, lambda f, g=g: run(f, g)) for label, g in zip(labels, groups)]


def _grid_hidden(seed: int):
    from cnclip_edu.mllm.tiling import candidate_grids

    rng = random.Random(seed)
    size = rng.choice((448, 32, 6, 4))
    lo, hi = rng.choice(((1, 12), (1, 6), (2, 12)))
    ties = []
    for _ in range(3):   # sizes whose ratio equals a grid's ratio: ties between grids of one ratio
        cols, rows = rng.choice(((1, 1), (2, 1), (1, 2), (3, 2), (2, 3)))
        k = rng.randint(1, 3)
        ties.append((cols * k * size // 2 or 1, rows * k * size // 2 or 1))
    free = [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(4)]

    def run(f, sizes):
        return [tuple(f(w / h, candidate_grids(lo, hi), w, h, size)) for w, h in sizes]

    k = rng.randint(1, 40)   # 9k x 8k against 2x2 tiles of 6k, 8k x 9k against 3x3 of 4k: area exactly half the grid

    def half(f):
        return [tuple(f(w / h, candidate_grids(1, 12), w, h, t)) for w, h, t in ((9 * k, 8 * k, 6 * k), (8 * k, 9 * k, 4 * k))]

    return [Case("宽高比与网格恰好相同（平局）", lambda f: run(f, ties)), Case("随机尺寸", lambda f: run(f, free)),
            Case("面积恰好等于网格像素的一半", half)]


def _grid_reference(aspect_ratio, target_ratios, width, height, image_size):
    from cnclip_edu.mllm.tiling import find_closest_aspect_ratio

    return find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size)


def _grid_mistake(kind: str):
    def find_closest_aspect_ratio(aspect_ratio, target_ratios, width, height, image_size):
        best, best_diff = (1, 1), float("inf")
        area = width * height
        for cols, rows in target_ratios:
            diff = abs(aspect_ratio - (rows / cols if kind == "inverted" else cols / rows))
            half = (1.0 if kind == "no_half" else 0.5) * image_size ** 2 * cols * rows
            more = {"always": True, "never": False, "ge": area >= half}.get(kind, area > half)
            if diff < best_diff:
                best, best_diff = (cols, rows), diff
            elif diff == best_diff and more:
                best = (cols, rows)
        return best
    return find_closest_aspect_ratio


register(Exercise(
    id="11.1", title="动态切块：选网格 (find_closest_aspect_ratio)", points=2,
    hint="对每个候选 (cols, rows)（已按块数从少到多排好）算 diff = |图片宽高比 - cols/rows|；diff 更小就换成它；"
         "diff 恰好相等（平局）时，只有当图片面积 width*height **大于**（不是大于等于）这个网格像素的一半 "
         "0.5 * image_size**2 * cols * rows 时才换成这个块数更多的网格。常见错误：把比例写成 rows/cols、"
         "平局时总是换（或总是不换）、忘了那个 0.5、用了 >=。",
    reference=_grid_reference,
    cases=_grid_cases,
    hidden=_grid_hidden,
    builds=("cnclip_edu.mllm.tiling.find_closest_aspect_ratio",),
    mutants=lambda: {
        "比例写成 rows / cols": _grid_mistake("inverted"),
        "平局时总是换成块数多的网格": _grid_mistake("always"),
        "平局时从不换": _grid_mistake("never"),
        "面积条件用了 >=": _grid_mistake("ge"),
        "面积条件忘了 0.5": _grid_mistake("no_half"),
    },
))
