"""Example "own data" for notebook 10: real photographs with Chinese captions, available offline.

    from cnclip_edu.data.samples import write_sample_folder
    folder = write_sample_folder("runs/course/my_photos")   # 18 photos + captions.csv

then `cnclip-edu convert captions --images my_photos --captions my_photos/captions.csv --out ...`.

Why scikit-image: its wheel carries a few dozen sample images inside the package folder
(`skimage/data/*.png|jpg`); the rest of `skimage.data` is downloaded on first use with pooch. We copy
only photographs that sit in the wheel, reading the files directly from the installed package and
never calling `skimage.data.<name>()`, so nothing here can reach the network (the test checks that
every file is present). Licences, per scikit-image's docs: CC0 or public domain (NASA, SpaceX, the
photographers); the motorcycle stereo pair is from the Middlebury 2014 stereo dataset.

The captions are ours, written for these photos in the style of MUGE / Flickr30K-CN: several short,
natural descriptions per photo that stay true for the whole picture. The first three of each photo go
to `train`; the fourth is held out as `valid`, so the evaluation asks the finetuned model to find
photos it has seen from phrasings it has not. The two motorcycle photos (the left and right views of
one stereo pair) share their captions, and one caption fits every black-and-white photo: identical
captions become one text with several `image_ids`, as in MUGE.
"""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
from pathlib import Path

from cnclip_edu import fileio

# photo -> captions; the last caption of each photo is the held-out `valid` one
SAMPLE_CAPTIONS: dict[str, tuple[str, ...]] = {
    "astronaut.png": ("穿着橙色航天服的女宇航员在微笑", "一位宇航员抱着头盔，身后是美国国旗和航天飞机模型",
                      "宇航员的正式肖像照", "身穿橘红色宇航服的女航天员"),
    "camera.png": ("一个男人在草地上用三脚架上的相机拍照", "穿黑色大衣的摄影师", "摄影师弯着腰对着取景器",
                   "草坪上架着三脚架拍照的人"),
    "chelsea.png": ("一只虎斑猫的特写", "橘色的小猫睁着大眼睛", "猫咪的脸和胡须", "一只猫在看镜头"),
    "coffee.png": ("红色杯子里的一杯咖啡", "木桌上放着一杯浓缩咖啡和小勺子", "一杯咖啡放在红色的碟子上",
                   "桌上的热咖啡"),
    "coins.png": ("黑色背景上整齐排列的旧硬币", "许多枚古钱币", "一排排银色的硬币", "收藏的钱币"),
    "rocket.jpg": ("夜晚发射台上的火箭", "准备发射的白色火箭，两边是铁塔", "蓝色天空下的火箭发射场",
                   "傍晚等待升空的运载火箭"),
    "motorcycle_left.png": ("一辆红色的摩托车停在车库里", "仓库货架前的红色摩托车", "摩托车的侧面照片",
                            "车库里的红色机车"),
    "motorcycle_right.png": ("一辆红色的摩托车停在车库里", "仓库货架前的红色摩托车", "摩托车的侧面照片",
                             "车库里的红色机车"),
    "hubble_deep_field.jpg": ("哈勃望远镜拍到的深空星系", "黑色夜空中密密麻麻的星系", "宇宙深处无数的星星和星系",
                              "太空中遥远的星系"),
    "moon.png": ("月球表面的陨石坑", "灰色的月面特写", "坑坑洼洼的月球地表", "月亮表面的环形山"),
    "retina.jpg": ("眼底照片，能看到视网膜上的血管", "橙红色的视网膜", "眼科检查拍的眼底图像", "视网膜和血管"),
    "ihc.png": ("显微镜下染色的组织切片", "棕色和蓝色的细胞", "免疫组化染色的病理切片", "显微镜下的细胞组织"),
    "brick.png": ("一面砖墙", "灰色的砖块整齐地砌在一起", "砖墙的纹理", "墙上的砖"),
    "grass.png": ("一片草地", "草叶的特写", "地上密密的草", "草的纹理"),
    "gravel.png": ("一堆碎石子", "地上铺满了小石头", "砾石路面的特写", "碎石的纹理"),
    "page.png": ("一本书的一页，印着英文", "书页上的文字和代码", "一页印刷的英文教材", "书上的一段英文"),
    "text.png": ("纸上手写的数学公式", "草稿纸上的笔迹", "斜着拍的手写算式", "写满公式的纸"),
    "clock_motion.png": ("因为晃动而拍糊的钟", "一个模糊的圆形时钟", "灰色背景前晃动的钟表", "拍糊了的时钟"),
}
# a caption that is true for several photos (train only): every black-and-white photo above
BLACK_AND_WHITE = "一张黑白照片"
GREY_PHOTOS = ("camera.png", "coins.png", "moon.png", "brick.png", "grass.png", "gravel.png", "page.png",
               "text.png", "clock_motion.png")
# photos of one scene (the stereo pair): split_by_group keeps them on one side
SAMPLE_SAME_SCENE = [("motorcycle_left.png", "motorcycle_right.png")]
CAPTIONS_FILE = "captions.csv"


def skimage_data_dir() -> Path:
    """The `data/` folder inside the installed scikit-image package (found without importing it)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the example photos come with scikit-image: pip install scikit-image "
                                  "(it is in cnclip_edu's dev extra)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def caption_rows() -> list[tuple[str, str, str]]:
    """(image, caption, split) rows in file order: a photo's own captions, then the shared one."""
    rows = []
    for image, caps in SAMPLE_CAPTIONS.items():
        rows += [(image, c, "train") for c in caps[:-1]]
        if image in GREY_PHOTOS:
            rows.append((image, BLACK_AND_WHITE, "train"))
        rows.append((image, caps[-1], "valid"))
    return rows


def write_sample_folder(out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Copy the photos into `out_dir` and write `out_dir/captions.csv` (image, caption, split).

    An existing complete folder is kept as it is (it may hold the user's own edits) unless `overwrite`.
    Built in a temporary folder and swapped in (`fileio.atomic_dir`): an interrupted copy never looks complete.
    """
    out_dir = Path(out_dir)
    if (out_dir / CAPTIONS_FILE).exists() and not overwrite:
        return out_dir
    src = skimage_data_dir()
    missing = [name for name in SAMPLE_CAPTIONS if not (src / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{src} lacks {missing}: this scikit-image wheel does not ship them")
    with fileio.atomic_dir(out_dir) as tmp:
        for name in SAMPLE_CAPTIONS:
            shutil.copyfile(src / name, tmp / name)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", "caption", "split"])
        writer.writerows(caption_rows())
        (tmp / CAPTIONS_FILE).write_text(buf.getvalue(), encoding="utf-8")
    return out_dir
