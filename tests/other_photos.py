"""A second "own photo folder" for notebook 10, unlike the shipped sample: no motorcycle pair, no
black-and-white photo, new file names and captions, more than 64 valid pairs. Made offline from the
sample photos (recoloured: colour photos get their channels rotated, grey ones a colour tint).

    python tests/other_photos.py runs/course/other_photos     # then run notebook 10 with
    papermill ... -p photos_dir runs/course/other_photos -p same_scene '[]'
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from PIL import Image, ImageOps

from cnclip_edu import fileio
from cnclip_edu.data.samples import GREY_PHOTOS, SAMPLE_SAME_SCENE, skimage_data_dir

# sample photo -> (new file name, what it shows)
SUBJECTS = {
    "astronaut.png": ("p01_portrait.png", "宇航员"), "camera.png": ("p02_photographer.png", "摄影师"),
    "chelsea.png": ("p03_cat.png", "小猫"), "coffee.png": ("p04_cup.png", "咖啡杯"),
    "coins.png": ("p05_coins.png", "硬币"), "rocket.jpg": ("p06_launch.png", "火箭"),
    "hubble_deep_field.jpg": ("p07_sky.png", "星空"), "moon.png": ("p08_moon.png", "月面"),
    "retina.jpg": ("p09_eye.png", "眼底"), "ihc.png": ("p10_cells.png", "细胞"),
    "brick.png": ("p11_wall.png", "砖墙"), "grass.png": ("p12_lawn.png", "草地"),
    "gravel.png": ("p13_stones.png", "石子"), "page.png": ("p14_book.png", "书页"),
    "text.png": ("p15_notes.png", "笔记"), "clock_motion.png": ("p16_clock.png", "时钟"),
}
TRAIN = ("一张{s}的照片", "{s}", "照片里是{s}", "{s}的特写")
VALID = ("这是{s}", "看得见{s}", "关于{s}的图片", "拍下来的{s}", "画面中央的{s}")


def recolour(img: Image.Image, grey: bool) -> Image.Image:
    """No pixel stays grey: a grey photo gets a colour tint, a colour photo its channels rotated."""
    if grey:
        return ImageOps.colorize(img.convert("L"), black="#201040", white="#ffd070")
    r, g, b = img.convert("RGB").split()
    return Image.merge("RGB", (b, r, g))


def rows() -> list[tuple[str, str, str]]:
    """(image, caption, split): 4 train and 5 valid captions per photo (16 photos: 64 train, 80 valid pairs)."""
    out = []
    for name, subject in SUBJECTS.values():
        out += [(name, t.format(s=subject), "train") for t in TRAIN]
        out += [(name, t.format(s=subject), "valid") for t in VALID]
    return out


def write_other_folder(out_dir: str | Path) -> Path:
    src = skimage_data_dir()
    assert not {p for pair in SAMPLE_SAME_SCENE for p in pair} & set(SUBJECTS)
    with fileio.atomic_dir(Path(out_dir)) as tmp:
        for sample, (name, _) in SUBJECTS.items():
            recolour(Image.open(src / sample), sample in GREY_PHOTOS).save(tmp / name)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "caption", "split"])
        writer.writerows(rows())
        (tmp / "captions.csv").write_text(buf.getvalue(), encoding="utf-8")
    return Path(out_dir)


if __name__ == "__main__":
    print(write_other_folder(sys.argv[1]))
