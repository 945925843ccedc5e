"""What the exercises of notebook 05 share: a tiny fixed dataset, written in a temporary folder for every case.

`{split}_imgs.tsv` holds 5 small PNG/JPEG images, `{split}_texts.jsonl` 5 texts and 6 pairs (several
images per text, one text without images, curly quotes); a hidden case draws its own texts over the
same 5 images (`_random_texts`).
"""
from __future__ import annotations

import base64
import io
from pathlib import Path


# ----------------------------------------------------------------------------- a tiny fixed dataset
def _png_b64(color: tuple[int, int, int], size: int = 12, fmt: str = "PNG", mode: str = "RGB") -> str:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (250, 250, 250))
    ImageDraw.Draw(img).rectangle([2, 3, size - 3, size - 2], fill=color)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_COLORS = [(220, 30, 30), (30, 60, 220), (240, 200, 20), (40, 160, 60), (140, 40, 180)]
_TEXTS = [  # (text_id, text, image_ids): several images per text, one text without images, curly quotes
    (7001, "一个红色的正方形", [1001]),
    (7002, "左边是蓝色的方块，右边是黄色的方块", [1002, 1003]),
    (7003, "一张没有匹配图片的描述", []),
    (7004, "LOGO 上写着“绿色”", [1004]),
    (7005, "紫色的小方块", [1005, 1001]),
]


def _write_dataset(folder: Path, split: str = "mini", texts=None, urlsafe: bool = False) -> tuple[Path, Path]:
    """`{split}_imgs.tsv` (5 PNG/JPEG images) and `{split}_texts.jsonl` (by default 5 texts, 6 pairs) in `folder`.
    `urlsafe`: the TSV's base64 in the URL-safe alphabet ('-_' for '+/'), which cn_clip and build_lmdb accept."""
    from cnclip_edu.data import formats

    images = [(1001 + k, _png_b64(c, fmt="JPEG" if k == 3 else "PNG")) for k, c in enumerate(_COLORS)]
    if urlsafe:
        images = [(i, b64.replace("+", "-").replace("/", "_")) for i, b64 in images]
        assert any("-" in b64 or "_" in b64 for _, b64 in images), "no '+' or '/' to translate: not a real case"
    tsv, jsonl = formats.imgs_tsv(folder, split), formats.texts_jsonl(folder, split)
    formats.write_imgs_tsv(tsv, images)
    formats.write_texts_jsonl(jsonl, _TEXTS if texts is None else texts)
    return tsv, jsonl


def _random_texts(seed: int) -> list[tuple[int, str, list[int]]]:
    """4-7 texts over the 5 images, each with 0-3 images (a hidden case's dataset)."""
    import random

    rng = random.Random(seed)
    words = ["红色", "蓝色", "黄色", "“绿色”", "紫色", "方块", "正方形", "小", "大", "LOGO"]
    return [(8000 + t, "".join(rng.sample(words, 3)), sorted(rng.sample(range(1001, 1006), rng.randint(0, 3))))
            for t in range(rng.randint(4, 7))]
