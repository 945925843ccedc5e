"""A shifted toy task for finetuning: the same pictures, captioned with other colour names.

    shop = renamed_toy_world(toy_dir, work_dir / "data" / "toy_renamed", n_train_images=2000)
    # shop/train_texts.jsonl: "一个赤色的圆形" where the toy world says "一个红色的圆形"; lmdb/ built

A model trained on the toy world reads "红色" but has never seen "赤色": the characters 赤 橘 金 翠
靛 堇 桃 墨 never occur in a toy caption, so their token embeddings never got a gradient: still the
random ones it started with, only shrunk a little by weight decay. Pictures, caption templates and gold matches stay exactly as they are; only the
colour words change, to the traditional names a shop might use (赤色 for 红色, 靛色 for 蓝色, ...).
That is a clean finetuning task: the image tower already tells the colours apart, the text tower
has to learn eight new words, and the original test split measures what the finetune forgot.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from cnclip_edu.fileio import atomic_dir

from . import formats

# toy-world colour name -> the new name; no character of a new name occurs in any toy caption
RENAMED_COLOURS: dict[str, str] = {"红色": "赤色", "橙色": "橘色", "黄色": "金色", "绿色": "翠色",
                                   "蓝色": "靛色", "紫色": "堇色", "粉色": "桃色", "黑色": "墨色"}


def rename_colours(text: str, mapping: dict[str, str] = RENAMED_COLOURS) -> str:
    """A caption with every colour name replaced (the toy captions always spell the full name, 红色)."""
    for old, new in mapping.items():
        text = text.replace(old, new)
    return text


def _write_split(src: Path, dst: Path, split: str, n_images: int | None, mapping: dict[str, str]) -> dict:
    """Copy the first `n_images` images of a split and its captions (renamed, gold lists cut to those images)."""
    kept: set[int] = set()

    def images():
        for k, (image_id, b64) in enumerate(formats.iter_imgs_tsv(formats.imgs_tsv(src, split))):
            if n_images is not None and k >= n_images:
                break
            kept.add(image_id)
            yield image_id, b64

    if n_images is None:
        shutil.copyfile(formats.imgs_tsv(src, split), formats.imgs_tsv(dst, split))
        kept = {i for i, _ in formats.iter_imgs_tsv(formats.imgs_tsv(src, split))}
    else:
        formats.write_imgs_tsv(formats.imgs_tsv(dst, split), images())
    texts = []
    for t in formats.iter_texts_jsonl(formats.texts_jsonl(src, split)):
        gold = [i for i in t["image_ids"] if i in kept]
        if gold:  # a caption none of whose images were kept is dropped
            texts.append((t["text_id"], rename_colours(t["text"], mapping), gold))
    formats.write_texts_jsonl(formats.texts_jsonl(dst, split), texts)
    return {"images": len(kept), "texts": len(texts), "pairs": sum(len(g) for _, _, g in texts)}


def renamed_toy_world(src: str | os.PathLike, out: str | os.PathLike, n_train_images: int | None = 2000,
                      mapping: dict[str, str] = RENAMED_COLOURS, build: bool = True) -> Path:
    """Write the toy world of `src` with renamed colours into `out` (MUGE layout, + lmdb/ if `build`).

    n_train_images: the first N training images (None: all); valid and test are copied whole.
    Reused if `out` was already written from the same source with the same settings."""
    src, out = Path(src), Path(out)
    stamp = f"{src.resolve()}|{n_train_images}|{sorted(mapping.items())}"
    if (out / ".source").is_file() and (out / ".source").read_text(encoding="utf-8") == stamp:
        return out
    with atomic_dir(out) as tmp:
        for split in formats.SPLITS:
            _write_split(src, tmp, split, n_train_images if split == "train" else None, mapping)
        if build:
            from .lmdb_build import build_lmdb

            build_lmdb(tmp, list(formats.SPLITS), overwrite=True, progress=False, verbose=False)
        (tmp / ".source").write_text(stamp, encoding="utf-8")
    return out


def top1_reading(ranked: dict[int, list[int]], split: str = "test") -> dict[str, float]:
    """How the top-1 image of each toy-world caption relates to what the caption says, as shares of the
    captions: "colours" (its shapes' colours are exactly the caption's colours, shapes aside) and
    "shapes" (its shapes are exactly the caption's shapes, colours aside).

    A finetune that forgot how to read colour words drops "colours" and keeps "shapes"; one that damaged
    the reading of shape words drops "shapes". `ranked`: text id -> image ids, best first
    (`t2i_recall(..., ranked_out=...)` on the toy world's own split: the generator's meanings are read back
    with `toy.split_meanings`, which holds for the default toy world only).
    """
    from .toy import split_meanings
    from .toy_text import caption_objects

    scenes, keys = split_meanings(split)
    colours = shapes = 0
    for text_id, images in ranked.items():
        said = caption_objects(keys[text_id])                                     # ((colour, shape), ...)
        drawn = [(p.color, p.shape) for p in scenes[images[0]]["shapes"]]
        colours += sorted(c for c, _ in said) == sorted(c for c, _ in drawn)
        shapes += sorted(s for _, s in said) == sorted(s for _, s in drawn)
    n = len(ranked)
    return {"colours": colours / n, "shapes": shapes / n}
