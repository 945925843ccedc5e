"""The toy world: coloured geometric shapes with Chinese captions, in the exact MUGE format.

    cnclip-edu toy-data --out runs/course/data/toy --seed 0          # files only
    python -c "from cnclip_edu.data.toy import ensure_toy_data; print(ensure_toy_data('runs/course'))"

Everything is decided by the seed. Each image holds 1-3 shapes; each shape has a colour (8), a
shape (6), and for 1-2 shape images a size (大/小) and a position. A caption is rendered from a
template *and* carries a semantic key (what it asserts); every image lists the keys it satisfies,
so a caption's gold `image_ids` are exactly the images of its split that fit it - no
hand-labelling, no silent false negatives. Some (colour, shape) combinations never appear in train
(`heldout`): zero-shot on them tests compositional generalisation. Images are stored at 64 px and
read by the course model at 32 px; shapes are large and saturated on a light background so they
survive that bicubic downscale.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cnclip_edu import fileio
from cnclip_edu.cli import InRange

from . import formats
from .toy_draw import COLORS, render_batch, save_png_files
from .toy_text import Shape, image_keys, render_caption, sample_captions

GENERATOR_VERSION = 3  # bump when the output for a given config changes

SHAPES = ("圆形", "正方形", "三角形", "五角星", "十字", "菱形")


@dataclass
class ToyConfig:
    seed: int = 0
    n_train: int = 10_000
    n_valid: int = 500
    n_test: int = 500
    image_size: int = 64            # stored size; the course model reads them at 32 px
    captions_per_image: tuple[int, int] = (2, 3)   # inclusive range
    shape_count_probs: tuple[float, float, float] = (0.25, 0.45, 0.30)  # P(1), P(2), P(3 shapes)
    n_heldout: int = 8              # (colour, shape) combinations absent from train
    heldout_in_eval: bool = False   # True: valid/test may also contain held-out combos
    zeroshot_per_class: int = 40
    variants_per_key: int = 3       # distinct phrasings per caption meaning (caps pairs of generic captions)
    workers: int = 0                # drawing processes; 0 = min(4, cpu count)
    id_offsets: dict = field(default_factory=lambda: {"train": 1_000_000, "valid": 2_000_000, "test": 3_000_000})

    def validate(self) -> None:
        problems = [f"{n} must be >= 1" for n in ("n_train", "n_valid", "n_test", "image_size", "variants_per_key")
                    if getattr(self, n) < 1]
        if not 0 <= self.n_heldout <= len(COLORS):
            problems.append(f"n_heldout must be in 0..{len(COLORS)} (one held-out shape per colour)")
        if not 1 <= self.captions_per_image[0] <= self.captions_per_image[1]:
            problems.append("captions_per_image must be (lo, hi) with 1 <= lo <= hi")
        if len(self.shape_count_probs) != 3 or min(self.shape_count_probs) < 0 or sum(self.shape_count_probs) <= 0:
            problems.append("shape_count_probs must be 3 non-negative weights for 1, 2, 3 shapes")
        if problems:
            raise ValueError("invalid ToyConfig: " + "; ".join(problems))

    def key(self) -> str:
        """A short hash of everything that changes the output (ensure_toy_data compares it)."""
        d = asdict(self)
        d.pop("workers")
        d["version"] = GENERATOR_VERSION
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def heldout_combos(cfg: ToyConfig) -> list[tuple[str, str]]:
    """One held-out shape per colour (seeded), every shape held out at least once."""
    rng = random.Random(f"heldout-{cfg.seed}")
    colors, shapes = list(COLORS), list(SHAPES)
    rng.shuffle(colors)
    rng.shuffle(shapes)
    return [(c, shapes[i % len(shapes)]) for i, c in enumerate(colors[: cfg.n_heldout])]


# ----------------------------------------------------------------------------- sampling scenes
_POS9 = [(x, y) for y in range(3) for x in range(3)]          # (col, row) grid cells for 1 shape
_SIZES = {"大": 0.42, "小": 0.28}                               # fraction of the image side
_MEDIUM = 0.30                                                   # 3-shape images


def shape_color_area(path, palette=COLORS, tol: int = 40) -> tuple[str, int]:
    """A one-shape toy image (the zero-shot sets) -> (its palette colour, the shape's area in pixels).

    Shapes are filled with one flat palette colour on a light grey background (232-255 per channel), so a
    pixel counts for colour c when |r - r_c| + |g - g_c| + |b - b_c| < tol. tol = 40 keeps the flat inside
    of the shape and drops the background (every palette colour is far more than 40 from it) and most
    anti-aliased edge pixels (blends of shape and background); the colour with the most pixels wins.
    Used by notebook 08 to sort a confusion's wrong images by colour and size.
    """
    from PIL import Image

    px = np.asarray(Image.open(path).convert("RGB"), dtype=int).reshape(-1, 3)       # (H*W, 3)
    return max(((c, int((np.abs(px - np.array(v)).sum(axis=1) < tol).sum())) for c, v in palette.items()),
               key=lambda cn: cn[1])


def is_big(areas) -> np.ndarray:
    """Areas (pixels) of images of ONE shape class -> True where the shape was drawn 大 rather than 小.

    A shape is drawn at 0.42 (大) or 0.28 (小) of the image side (`_SIZES`), so the same shape's areas form
    two groups 2.25x apart; the midpoint between the smallest and the largest area lies between them.
    Mixing shape classes would blur the groups (a big triangle covers less than a big square).
    """
    areas = np.asarray(areas, dtype=float)
    return areas > (areas.min() + areas.max()) / 2


def _sample_scene(rng: random.Random, combos: list[tuple[str, str]], probs) -> dict:
    """One image: its layout and a list of Shape (geometry in fractions of the image side)."""
    n = rng.choices((1, 2, 3), weights=probs)[0]
    cs = rng.sample(combos, n)
    j = lambda s: rng.uniform(-s, s)  # noqa: E731  jitter
    if n == 1:
        col, row = rng.choice(_POS9)
        size = "大" if rng.random() < 0.5 else "小"
        shapes = [Shape(*cs[0], size, (col, row), 0.24 + 0.26 * col + j(0.015), 0.24 + 0.26 * row + j(0.015),
                        _SIZES[size])]
        layout = "one"
    elif n == 2:
        layout = "h" if rng.random() < 0.5 else "v"
        shapes = []
        for k, (c, s) in enumerate(cs):
            size = "大" if rng.random() < 0.5 else "小"
            a, b = 0.27 + 0.46 * k + j(0.03), 0.5 + j(0.1)   # along / across the layout axis
            x, y = (a, b) if layout == "h" else (b, a)
            shapes.append(Shape(c, s, size, None, x, y, _SIZES[size] * 0.95))
    else:
        layout = "h3"
        shapes = [Shape(c, s, None, None, 0.18 + 0.32 * k + j(0.02), 0.5 + j(0.15), _MEDIUM)
                  for k, (c, s) in enumerate(cs)]
    return {"layout": layout, "shapes": shapes,
            "background": rng.randint(232, 255), "angle": rng.uniform(-12, 12)}


def _split_combos(cfg: ToyConfig, split: str) -> list[tuple[str, str]]:
    """The (colour, shape) combinations a split may draw: train never sees the held-out ones."""
    heldout = heldout_combos(cfg)
    all_combos = [(c, s) for c in COLORS for s in SHAPES]
    return [c for c in all_combos if c not in heldout] if split == "train" or not cfg.heldout_in_eval else all_combos


def toy_captions(split: str = "train", cfg: ToyConfig = ToyConfig()) -> list[str]:
    """The captions of one split, in file order, without drawing a single image (1-2 s for train).

    The same texts as `<split>_texts.jsonl` written by `generate(..., cfg)`: notebook 01 measures
    caption lengths with them even before notebook 05 has generated the data set.
    """
    if split not in formats.SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {formats.SPLITS}")
    cfg.validate()
    _, _, text_items = _make_split(cfg, split, _split_combos(cfg, split), seed=f"{cfg.seed}-{split}")
    return [text for _, text, _ in text_items]


def _make_split(cfg: ToyConfig, split: str, combos: list[tuple[str, str]], seed: str, with_keys: bool = False):
    """Scenes, captions and gold matches of one split (no drawing); with_keys: also each caption's key."""
    rng = random.Random(seed)
    n = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}[split]
    base = cfg.id_offsets[split]
    scenes = [_sample_scene(rng, combos, cfg.shape_count_probs) for _ in range(n)]
    image_ids = [base + i for i in range(n)]
    index: dict[tuple, list[int]] = {}
    for iid, sc in zip(image_ids, scenes):
        for k in image_keys(sc["layout"], sc["shapes"]):
            index.setdefault(k, []).append(iid)
    texts: dict[str, tuple] = {}  # text -> key, first appearance order (dict keeps insertion order)
    lo, hi = cfg.captions_per_image
    for sc in scenes:
        for key in sample_captions(rng, sc["layout"], sc["shapes"], rng.randint(lo, hi)):
            # The phrasing comes from a small per-meaning pool, so a generic caption ("一个红色的圆形",
            # 60+ gold images) appears in a few phrasings, not dozens, each adding 60+ pairs.
            text = render_caption(random.Random(f"{seed}-{key}-{rng.randrange(cfg.variants_per_key)}"), key)
            if texts.setdefault(text, key) != key:  # a template bug, never bad luck
                raise RuntimeError(f"one caption text, two meanings: {text!r}")
    text_items = []
    for t, (text, key) in enumerate(texts.items()):
        text_items.append((base + t, text, sorted(index[key])))  # its source image always fits it
    if with_keys:
        return image_ids, scenes, text_items, list(texts.values())
    return image_ids, scenes, text_items


def split_meanings(split: str = "test", cfg: ToyConfig = ToyConfig()) -> tuple[dict[int, dict], dict[int, tuple]]:
    """What the generator knows about a split, without drawing: {image_id: scene}, {text_id: caption key}.

    A scene holds its layout and its `Shape`s (colour, shape, size, grid cell); a caption key says
    what the caption asserts (see `toy_text`). Notebook 07 reads them to tell why a query failed:
    the right coloured shapes in the wrong place, or the wrong shapes.
    """
    if split not in formats.SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {formats.SPLITS}")
    cfg.validate()
    image_ids, scenes, text_items, keys = _make_split(cfg, split, _split_combos(cfg, split),
                                                      seed=f"{cfg.seed}-{split}", with_keys=True)
    return dict(zip(image_ids, scenes)), {tid: key for (tid, _, _), key in zip(text_items, keys)}


# ----------------------------------------------------------------------------- writing
def _zeroshot_tasks(cfg: ToyConfig, seen, heldout) -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    """task -> [(class name, combos an image of that class may use)]."""
    return {
        "shape": [(s, [c for c in seen if c[1] == s]) for s in SHAPES],
        "color": [(col, [c for c in seen if c[0] == col]) for col in COLORS],
        "combo_seen": [(f"{c}的{s}", [(c, s)]) for c, s in seen],
        "combo_heldout": [(f"{c}的{s}", [(c, s)]) for c, s in heldout],
    }


def generate(out_dir: str | os.PathLike, cfg: ToyConfig = ToyConfig()) -> Path:
    """Write the toy world into `out_dir` (replaced atomically: built aside, then renamed)."""
    cfg.validate()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    heldout = heldout_combos(cfg)
    all_combos = [(c, s) for c in COLORS for s in SHAPES]
    seen = [c for c in all_combos if c not in heldout]
    workers = cfg.workers or min(4, os.cpu_count() or 1)
    fileio.remove_stale_temporaries(out_dir.parent, out_dir.name)  # a generation killed earlier
    with fileio.atomic_dir(out_dir) as tmp:
        card = {"name": "cnclip-edu toy world", "seed": cfg.seed, "config": asdict(cfg), "config_key": cfg.key(),
                "generator_version": GENERATOR_VERSION, "image_size": cfg.image_size, "image_format": "PNG",
                "colors": {k: list(v) for k, v in COLORS.items()}, "shapes": list(SHAPES),
                "heldout_combos": [f"{c}的{s}" for c, s in heldout], "splits": {}, "zeroshot": {}}
        vocab: set[str] = set()
        for k, split in enumerate(formats.SPLITS):
            combos = _split_combos(cfg, split)
            image_ids, scenes, text_items = _make_split(cfg, split, combos, seed=f"{cfg.seed}-{split}")
            pngs = render_batch(scenes, cfg.image_size, workers)
            formats.write_imgs_tsv(formats.imgs_tsv(tmp, split),
                                   zip(image_ids, (formats.base64.b64encode(p).decode() for p in pngs)))
            formats.write_texts_jsonl(formats.texts_jsonl(tmp, split), text_items)
            vocab.update(ch for _, t, _ in text_items for ch in t)
            n_match = [len(ids) for _, _, ids in text_items]
            card["splits"][split] = {
                "images": len(image_ids), "texts": len(text_items), "pairs": int(sum(n_match)),
                "images_per_text_median": float(np.median(n_match)), "images_per_text_max": int(max(n_match)),
                "shape_counts": {str(n): sum(len(s["shapes"]) == n for s in scenes) for n in (1, 2, 3)},
                "contains_heldout": sum(any((p.color, p.shape) in heldout for p in s["shapes"]) for s in scenes)}
        rng = random.Random(f"{cfg.seed}-zeroshot")
        for task, classes in _zeroshot_tasks(cfg, seen, heldout).items():
            root = tmp / "zeroshot" / task
            formats.write_lines_atomic(root / "label_cn.txt", [name for name, _ in classes])
            for ci, (_, combos) in enumerate(classes):
                scenes = [_sample_scene(rng, combos, (1.0, 0.0, 0.0)) for _ in range(cfg.zeroshot_per_class)]
                paths = [root / "test" / f"{ci:03d}" / f"image_{i:04d}.png" for i in range(len(scenes))]
                save_png_files(render_batch(scenes, cfg.image_size, workers), paths)
            card["zeroshot"][task] = {"classes": len(classes), "images": len(classes) * cfg.zeroshot_per_class}
        card["vocabulary_chars"] = "".join(sorted(vocab))
        card["generation_seconds"] = round(time.perf_counter() - t0, 2)
        (tmp / "dataset_card.json").write_text(json.dumps(card, ensure_ascii=False, indent=2), encoding="utf-8")
    return out_dir


def _is_complete(data_dir: Path, cfg: ToyConfig) -> bool:
    card = data_dir / "dataset_card.json"
    if not card.exists():
        return False
    try:
        if json.loads(card.read_text(encoding="utf-8")).get("config_key") != cfg.key():
            return False
    except (OSError, ValueError):
        return False
    need = [formats.imgs_tsv(data_dir, s) for s in formats.SPLITS] + [formats.texts_jsonl(data_dir, s) for s in formats.SPLITS]
    need += [data_dir / "lmdb" / s / db / "data.mdb" for s in formats.SPLITS for db in ("imgs", "pairs")]
    need += [data_dir / "zeroshot" / t / "label_cn.txt" for t in ("shape", "color", "combo_seen", "combo_heldout")]
    return all(p.exists() for p in need)


def ensure_toy_data(work_dir: str | os.PathLike, cfg: ToyConfig = ToyConfig()) -> Path:
    """`<work_dir>/data/toy`, generated and LMDB-built only if missing, incomplete or of another config."""
    data_dir = Path(work_dir) / "data" / "toy"
    if _is_complete(data_dir, cfg):
        return data_dir
    from .lmdb_build import build_lmdb

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir.parent / ".toy.lock"):  # two notebooks / processes at once: one builds
        if not _is_complete(data_dir, cfg):
            generate(data_dir, cfg)
            build_lmdb(data_dir, list(formats.SPLITS), overwrite=True, progress=False, verbose=False)
    return data_dir


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on `path` (POSIX); a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cnclip-edu toy-data", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", "--data-dir", "--data_dir", dest="out", required=True, help="output folder")
    d = ToyConfig()
    p.add_argument("--seed", type=int, default=d.seed, action=InRange, lo=0)
    p.add_argument("--n-train", "--n_train", type=int, default=d.n_train, action=InRange, lo=1)
    p.add_argument("--n-valid", "--n_valid", type=int, default=d.n_valid, action=InRange, lo=1)
    p.add_argument("--n-test", "--n_test", type=int, default=d.n_test, action=InRange, lo=1)
    p.add_argument("--image-size", "--image_size", type=int, default=d.image_size, action=InRange, lo=1)
    p.add_argument("--zeroshot-per-class", "--zeroshot_per_class", type=int, default=d.zeroshot_per_class,
                   action=InRange, lo=1)
    p.add_argument("--workers", type=int, default=0, action=InRange, lo=0)
    p.add_argument("--build-lmdb", "--build_lmdb", action="store_true", help="also build lmdb/{train,valid,test}")
    a = p.parse_args(argv)
    cfg = ToyConfig(seed=a.seed, n_train=a.n_train, n_valid=a.n_valid, n_test=a.n_test, image_size=a.image_size,
                    zeroshot_per_class=a.zeroshot_per_class, workers=a.workers)
    out = generate(a.out, cfg)
    card = json.loads((out / "dataset_card.json").read_text(encoding="utf-8"))
    for split, s in card["splits"].items():
        print(f"{split}: {s['images']} images, {s['texts']} texts, {s['pairs']} pairs")
    print(f"held out of train: {', '.join(card['heldout_combos'])}")
    print(f"wrote {out} in {card['generation_seconds']} s")
    if a.build_lmdb:
        from .lmdb_build import build_lmdb

        build_lmdb(out, list(formats.SPLITS), overwrite=True)
    return 0
