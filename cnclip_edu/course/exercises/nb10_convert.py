"""Exercise 10.3 of notebook 10 (your own photos): the converter assembled from 10.1 and 10.2.

10.3 writes every split of a captions file (`data.convert.write_splits`, the part of `cnclip-edu convert
captions` after the photos are encoded): for each split, in the order first seen, `{split}_imgs.tsv` (that
split's photos only, in the order first seen there, `id<TAB>base64`), `{split}_texts.jsonl` (10.1's records,
text ids running on from the previous split) and `{split}_id_map.tsv` (`id<TAB>file`, in the imgs.tsv order).
A case runs the answer in a scratch folder and compares every file it wrote with the library's, byte for
byte; `encode` (10.2 in the notebook) is a stand-in here, so the bytes do not depend on the JPEG encoder.
Mutants: text ids restarting per split or running on by rows, photos of other splits included, photos sorted
by name or by id, splits sorted, the id map missing, swapped or sorted.
"""
from __future__ import annotations

import base64
import random

from .core import Case, Exercise, register


def _encode(image: str) -> str:
    """A stand-in for 10.2: a base64 text that names the photo (the check compares files, not JPEG encoders)."""
    return base64.b64encode(f"JPEG of {image}".encode("utf-8")).decode("ascii")


def _written(f, rows, image_ids, start_text_id) -> dict[str, str]:
    """Run `f` in an empty scratch folder; -> {file name: its text} of every file it wrote there."""
    from cnclip_edu.fileio import scratch_dir

    with scratch_dir("cnclip-ex10-convert") as folder:
        f(folder, list(rows), dict(image_ids), _encode, start_text_id)
        return {p.name: p.read_bytes().decode("utf-8", "backslashreplace")
                for p in sorted(folder.iterdir()) if p.is_file()}


def _sample_rows() -> tuple[list[tuple[str, str, str]], dict[str, int]]:
    from cnclip_edu.data.samples import caption_rows

    rows = [(image, cap, split) for image, cap, split in caption_rows()]
    ids: dict[str, int] = {}
    for image, _, _ in rows:
        ids.setdefault(image, 1 + len(ids))
    return rows, ids


_SMALL_ROWS = [  # valid comes first; a photo in three splits; a caption repeated with spaces; a test split
    ("狗.jpg", "一只小狗", "valid"), ("猫.jpg", "一只橘猫趴在沙发上", "train"), ("狗.jpg", "可爱的宠物", "train"),
    ("鱼.png", "鱼缸里的金鱼", "valid"), ("猫.jpg", " 可爱的宠物 ", "train"), ("猫.jpg", "沙发上的猫", "valid"),
    ("鸟.jpg", "笼子里的鸟", "test"), ("猫.jpg", "一只橘猫趴在沙发上", "train"), ("狗.jpg", "草地上的狗", "test"),
]
_SMALL_IDS = {"狗.jpg": 3, "猫.jpg": 2, "鱼.png": 5, "鸟.jpg": 9}   # not in file order, not in name order


def _cases():
    rows, ids = _sample_rows()
    return [
        Case("示例照片的 captions.csv（train 和 valid，start_text_id=1）", lambda f: _written(f, rows, ids, 1)),
        Case("9 行：valid 先出现、一张照片在三个划分里、照片 id 不按文件顺序，start_text_id=100",
             lambda f: _written(f, _SMALL_ROWS, _SMALL_IDS, 100)),
        Case("只有一个划分、一行", lambda f: _written(f, [("a.jpg", "一杯咖啡", "train")], {"a.jpg": 42}, 7)),
    ]


def _convert_hidden(seed: int):
    rng = random.Random(seed)
    images = [f"{rng.choice('猫狗鱼鸟')}{k}.jpg" for k in range(rng.randint(4, 7))]
    ids = dict(zip(images, rng.sample(range(1, 500), len(images))))
    captions = [f"描述{rng.randint(0, 99)}" for _ in range(5)]
    splits = ["valid", "train", "test"][:rng.randint(2, 3)]
    rows = [(rng.choice(images), rng.choice(["", " "]) + rng.choice(captions), rng.choice(splits))
            for _ in range(rng.randint(10, 18))]
    rows[:len(splits)] = [(img, cap, s) for (img, cap, _), s in zip(rows, splits)]   # every split present, valid first
    start = rng.randint(1, 1000)
    return [Case("几个划分、照片 id 打乱、同一张照片在几个划分里", lambda f: _written(f, rows, ids, start))]


def _mistake(kind: str):
    def write_splits(out_dir, rows, image_ids, encode, start_text_id=1):
        from cnclip_edu.data import formats
        from cnclip_edu.data.convert import caption_records

        names = list(dict.fromkeys(s for _, _, s in rows))
        next_id = start_text_id
        for name in sorted(names) if kind == "sorted_splits" else names:
            kept = [(img, cap) for img, cap, s in rows if s == name or kind == "all_images"]
            images = list(dict.fromkeys(img for img, _ in kept))
            if kind == "all_images":
                kept = [(img, cap) for img, cap, s in rows if s == name]
            if kind == "sorted_names":
                images.sort()
            if kind == "sorted_ids":
                images.sort(key=image_ids.__getitem__)
            texts = caption_records(kept, image_ids, start_text_id if kind == "restart" else next_id)
            next_id += len(kept) if kind == "count_rows" else len(texts)
            formats.write_imgs_tsv(formats.imgs_tsv(out_dir, name), ((image_ids[i], encode(i)) for i in images))
            formats.write_texts_jsonl(formats.texts_jsonl(out_dir, name),
                                      ((t["text_id"], t["text"], t["image_ids"]) for t in texts))
            lines = [f"{img}\t{image_ids[img]}" if kind == "map_swapped" else f"{image_ids[img]}\t{img}"
                     for img in (sorted(images) if kind == "map_sorted" else images)]
            if kind != "no_map":
                formats.write_lines_atomic(out_dir / f"{name}_id_map.tsv", lines)
    return write_splits


def _reference(out_dir, rows, image_ids, encode, start_text_id=1):
    from cnclip_edu.data.convert import write_splits

    return write_splits(out_dir, rows, image_ids, encode, start_text_id)


register(Exercise(
    id="10.3", title="自己拼出转换：每个划分的三个文件", points=2,
    hint="划分按第一次出现的顺序处理；每个划分只写它自己的照片，按它们在这个划分里第一次出现的顺序；"
         "texts.jsonl 用练习 10.1 的函数，start_text_id 接着上一个划分用掉的编号（加的是描述条数，不是行数）；"
         "id_map 每行 `id<TAB>文件名`，顺序和 imgs.tsv 一样。三个文件都用 formats 里的写函数。"
         "常见错误：每个划分的 text_id 从头数、把别的划分的照片也写进来、照片或划分排了序、忘了写 id_map 或两列写反。",
    reference=_reference,
    cases=_cases,
    hidden=_convert_hidden,
    builds=("cnclip_edu.data.convert.write_splits",),
    needs=("10.1",),
    mutants=lambda: {
        "每个划分的 text_id 都从 start_text_id 开始": _mistake("restart"),
        "下一个划分的 text_id 按行数往下数，而不是按合并后的描述条数": _mistake("count_rows"),
        "imgs.tsv 里写了所有划分的照片": _mistake("all_images"),
        "照片按文件名排了序": _mistake("sorted_names"),
        "照片按 id 排了序": _mistake("sorted_ids"),
        "划分按名字排了序，而不是按第一次出现的顺序": _mistake("sorted_splits"),
        "没有写 id_map": _mistake("no_map"),
        "id_map 两列写反（文件名<TAB>id）": _mistake("map_swapped"),
        "id_map 按文件名排序，和 imgs.tsv 的顺序不一致": _mistake("map_sorted"),
    },
))
