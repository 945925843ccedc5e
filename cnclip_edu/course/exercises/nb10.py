"""Notebook 10's checked exercises: your photos and captions file -> MUGE records; a by-photo split; a threshold.

10.1 is compared with `data.convert.caption_records`, which `cnclip-edu convert captions` writes into
`{split}_texts.jsonl`: identical captions (spaces stripped) merged into one text listing each of its
images once, in the order first seen, text ids counting up from `start_text_id`. One case is the
sample photos' own train split (ids as the converter numbers them); the others are small rows built
to catch each usual slip: one record per row, unstripped captions, an image listed twice, sorted
instead of first-seen order, ids from 0.

10.2 turns one photo file into the base64 JPEG text of a `{split}_imgs.tsv` line
(`data.convert.prepare_image`): upright by its EXIF orientation tag, 8-bit RGB with transparent parts on
white, the longer side shrunk to `max_side` (never enlarged; None: kept), JPEG. The bytes are NOT
compared with the library (the resampling filter and the JPEG quality are the student's choice): each
case decodes the answer and reports properties, each on its own: base64 text, a JPEG, RGB, the size
(longer side exact, the other within 1 px of the kept aspect ratio), the pixels close to the upright,
white-backed, shrunk original. Cases: a landscape JPEG, phone photos stored sideways / upside down with
an EXIF orientation tag, a transparent PNG, a photo smaller than `max_side`, a grey PNG with no limit.

10.3 splits the photos into train / valid by photo. Which photos go to valid is NOT compared with
the library: any shuffle decided by the seed alone is right (sorting first, `Random(seed).sample`,
shuffling indices...). Each case runs the answer several times and checks properties, each named on
its own so a failure says which: the rows kept in order (no caption lost), every photo on one side
only, the number of valid photos (round half up), the same split for the same seed, the same split
in another Python process (simulated by photo names whose hash() is salted differently, as
PYTHONHASHSEED does: catches sorting by hash() or shuffling a set), a different one for other seeds.
Cases: the sample photos, exact halves (n * fraction = k.5), one photo with many captions (a list of
photos with repeats picks it twice), captions interleaved.

10.4 chooses the "nothing found" threshold of a search box on validation results
(`eval.threshold.threshold_from_valid`: top-1 score and whether it is gold per caption; candidates
-1, midpoints, 1; most captions right, the largest among equals). Cases: mixed right / wrong with a
caption whose top-1 is its second gold photo, all right (-1), all wrong (1), ties, one caption.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


def _sample_train_rows() -> tuple[list[tuple[str, str]], dict[str, int]]:
    """The sample folder's train rows and the image ids the converter gives them (first seen, from 1)."""
    from cnclip_edu.data.samples import caption_rows

    rows = caption_rows()
    ids: dict[str, int] = {}
    for image, _, _ in rows:
        ids.setdefault(image, 1 + len(ids))
    return [(image, cap) for image, cap, split in rows if split == "train"], ids


_SMALL_ROWS = [  # a photo captioned twice with the same words, a caption shared by two photos, stray spaces
    ("猫.jpg", "一只橘猫趴在沙发上"), ("狗.jpg", "一只小狗"), ("猫.jpg", "可爱的宠物"), ("狗.jpg", " 可爱的宠物 "),
    ("猫.jpg", "一只橘猫趴在沙发上"), ("鱼.png", "鱼缸里的金鱼"), ("鱼.png", "可爱的宠物"),
]
_SMALL_IDS = {"狗.jpg": 3, "猫.jpg": 8, "鱼.png": 5}   # not in file order: first-seen order is not sorted order


def _cases():
    rows, ids = _sample_train_rows()
    return [
        Case("示例照片 captions.csv 的训练集（52 条不同的描述，start_text_id=1）", lambda f: f(rows, ids, 1)),
        Case("7 行：重复的行、两张图共用的描述、首尾有空格，start_text_id=100",
             lambda f: f(_SMALL_ROWS, _SMALL_IDS, 100)),
        Case("带空格的写法先出现：记录里存的是去掉空格后的描述",
             lambda f: f([("a.jpg", " 一杯咖啡 "), ("b.jpg", "一杯咖啡"), ("a.jpg", "桌上的书 ")], {"a.jpg": 2, "b.jpg": 9}, 1)),
        Case("只有一行", lambda f: f([("a.jpg", "一杯咖啡")], {"a.jpg": 42}, 7)),
    ]


def _records_hidden(seed: int):
    rng = random.Random(seed)
    images = [f"{rng.choice('猫狗鱼鸟')}{k}.jpg" for k in range(rng.randint(3, 6))]
    ids = {img: rng.randint(1, 500) for img in images}
    captions = [f"描述{rng.randint(0, 99)}" for _ in range(4)]
    rows = [(rng.choice(images), rng.choice(["", " ", "  "]) + rng.choice(captions) + rng.choice(["", " "]))
            for _ in range(rng.randint(8, 16))]
    start = rng.randint(1, 1000)
    return [Case("同一描述对应几张图、首尾空格、重复的行", lambda f: f(rows, ids, start))]


def _mistake(kind: str):
    def caption_records(rows, image_ids, start_text_id=1):
        if kind == "no_merge":
            return [{"text_id": start_text_id + k, "text": cap.strip(), "image_ids": [image_ids[img]]}
                    for k, (img, cap) in enumerate(rows)]
        texts: dict[str, list[int]] = {}
        raw: dict[str, str] = {}   # stripped caption -> the first raw spelling seen ("first_raw" stores it)
        for img, cap in rows:
            raw.setdefault(cap.strip(), cap)
            ids = texts.setdefault(cap if kind == "no_strip" else cap.strip(), [])
            if kind == "duplicates" or image_ids[img] not in ids:
                ids.append(image_ids[img])
        items = sorted(texts.items()) if kind == "sorted_texts" else list(texts.items())
        first = 0 if kind == "from_zero" else start_text_id
        return [{"text_id": first + k, "text": raw[t] if kind == "first_raw" else t,
                 "image_ids": sorted(ids) if kind == "sorted_ids" else ids}
                for k, (t, ids) in enumerate(items)]
    return caption_records


def _reference(rows, image_ids, start_text_id=1):
    from cnclip_edu.data.convert import caption_records

    return caption_records(rows, image_ids, start_text_id)


register(Exercise(
    id="10.1", title="描述文件的行 → MUGE 的 texts.jsonl 记录", points=2,
    hint="按去掉首尾空格的描述把行归到一起，并记住每条描述第一次出现的先后；记录里的 text 也是去掉空格后的描述；"
         "同一张图在一条描述下只记一次；text_id 从 start_text_id 起按首次出现的顺序数。"
         "常见错误：每行一条记录（没合并相同描述）、忘了 strip（或只在比较时 strip、存的还是原文）、"
         "同一张图重复、把描述或 image_ids 排了序、text_id 从 0 开始。",
    reference=_reference,
    cases=_cases,
    hidden=_records_hidden,
    builds=("cnclip_edu.data.convert.caption_records",),
    mutants=lambda: {
        "每行一条记录，没有合并相同的描述": _mistake("no_merge"),
        "描述没有去掉首尾空格": _mistake("no_strip"),
        "按去掉空格的描述合并，但记录里存的是第一次出现时带空格的原文": _mistake("first_raw"),
        "同一张图在 image_ids 里出现两次": _mistake("duplicates"),
        "按描述文字排序，而不是按首次出现的顺序": _mistake("sorted_texts"),
        "把 image_ids 排了序": _mistake("sorted_ids"),
        "text_id 从 0 开始，忽略了 start_text_id": _mistake("from_zero"),
    },
))


# ----------------------------------------------------------------------------- 10.2 one photo -> base64 JPEG
_IMAGE_DIR: list = []   # one temporary folder per process for the cases' image files, removed at exit


def _image_dir():
    import tempfile
    from pathlib import Path

    if not _IMAGE_DIR:  # TemporaryDirectory removes itself when the process ends (its finalizer runs at exit)
        _IMAGE_DIR.append(tempfile.TemporaryDirectory(prefix="cnclip-ex10-"))
    return Path(_IMAGE_DIR[0].name)


def _picture(w: int, h: int, seed: int):
    """A smooth, asymmetric RGB picture (gradients and two blocks): a rotation or a flip changes its pixels."""
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    x, y = np.linspace(0, 1, w)[None, :], np.linspace(0, 1, h)[:, None]
    arr = np.stack([230 * x + 0 * y, 40 + 180 * y + 0 * x, 120 + 90 * np.sin(5 * x + 2 * y)], -1)
    for _ in range(2):
        bw, bh = rng.randint(w // 6, w // 3), rng.randint(h // 6, h // 3)
        x0, y0 = rng.randint(0, w - bw), rng.randint(0, h // 2 - bh if h // 2 > bh else 0)
        arr[y0:y0 + bh, x0:x0 + bw] = [rng.randint(0, 255) for _ in range(3)]
    return Image.fromarray(arr.clip(0, 255).astype("uint8"), "RGB")


def _photo_file(name: str, w: int, h: int, seed: int, mode: str = "RGB", orientation: int = 1):
    """Write a test photo: `w` x `h` as stored; `orientation` is the EXIF tag (1 = upright, 6 = stored
    sideways, ...); RGBA / LA: the lower-left part transparent, its colour black (as many exports store it)."""
    from PIL import Image

    img = _picture(w, h, seed)
    if mode in ("RGBA", "LA"):
        img = img.convert("RGBA") if mode == "RGBA" else img.convert("LA")
        alpha = Image.new("L", (w, h), 255)
        alpha.paste(0, (0, h // 2, w * 2 // 3, h))
        img.putalpha(alpha)
        if mode == "RGBA":
            black = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            img = Image.composite(img, black, alpha)
    elif mode == "L":
        img = img.convert("L")
    path = _image_dir() / name
    if path.suffix == ".jpg":
        extra = {}
        if orientation != 1:
            exif = Image.Exif()
            exif[0x0112] = orientation                                   # the EXIF orientation tag
            extra["exif"] = exif
        img.save(path, "JPEG", quality=95, **extra)
    else:
        img.save(path, "PNG")
    return str(path)


def _prepared_properties(f, path: str, max_side):
    """What every correct answer gives for one photo, as plain data (the bytes are not compared: the
    resampling filter and the JPEG quality are free)."""
    import base64
    import binascii
    import io

    import numpy as np
    from PIL import Image, ImageOps

    from cnclip_edu.data.transforms import to_rgb

    out = f(path, max_side)
    props: dict = {"返回 str（base64 文本）": isinstance(out, str)}
    try:
        img = Image.open(io.BytesIO(base64.b64decode(out, validate=True)))
        img.load()
    except (TypeError, ValueError, binascii.Error, OSError):
        props["能按 base64 解码成一张图片"] = False
        return props
    props["能按 base64 解码成一张图片"] = True
    props["图片格式"] = img.format
    props["颜色模式"] = img.mode
    with Image.open(path) as src:
        upright = to_rgb(ImageOps.exif_transpose(src))                  # white behind transparent parts
    W, H = upright.size
    scale = min(1.0, max_side / max(W, H)) if max_side else 1.0      # never enlarged
    long_side, short_side = (0, 1) if W >= H else (1, 0)
    want = (W * scale, H * scale)
    size = img.size
    size_ok = size[long_side] == round(want[long_side]) and abs(size[short_side] - want[short_side]) <= 1
    props["尺寸：转正后的长边 = min(原长边, max_side)，短边按原比例（±1 像素）"] = (
        "对" if size_ok else f"{size[0]}×{size[1]}")
    pixels = "像素接近转正、透明处铺白、缩小后的原图（平均差 < 10）"
    if size_ok:
        expected = np.asarray(upright.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
        diff = float(np.abs(np.asarray(img.convert("RGB"), dtype=np.float64) - expected).mean())
        props[pixels] = diff < 10
    else:
        props[pixels] = "尺寸不对，没有比较"
    return props


def _prepare_cases():
    return [
        Case("横版 JPEG 640×400，max_side=256", lambda f: _prepared_properties(
            f, _photo_file("landscape.jpg", 640, 400, 1), 256)),
        Case("手机竖拍：存成横的 480×320 + EXIF 方向标记 6（顺时针转 90° 才正），max_side=200",
             lambda f: _prepared_properties(f, _photo_file("sideways.jpg", 480, 320, 2, orientation=6), 200)),
        Case("倒着存的 JPEG 400×300 + EXIF 方向标记 3（转 180°），max_side=256",
             lambda f: _prepared_properties(f, _photo_file("upside_down.jpg", 400, 300, 3, orientation=3), 256)),
        Case("透明背景的 PNG (RGBA) 300×240，左下角透明（那里存的颜色是黑色），max_side=128",
             lambda f: _prepared_properties(f, _photo_file("logo.png", 300, 240, 4, mode="RGBA"), 128)),
        Case("比 max_side 还小的照片 120×90，max_side=256（不放大）",
             lambda f: _prepared_properties(f, _photo_file("small.jpg", 120, 90, 5), 256)),
        Case("灰度 PNG (L) 200×150，max_side=None（不缩放）",
             lambda f: _prepared_properties(f, _photo_file("grey.png", 200, 150, 6, mode="L"), None)),
    ]


def _prepare_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind, mode, suffix, orientation in [("带 EXIF 方向标记的 JPEG", "RGB", ".jpg", rng.choice([3, 6, 8])),
                                            ("带透明通道的 PNG", rng.choice(["RGBA", "LA"]), ".png", 1),
                                            ("灰度或彩色、大小随机的照片", rng.choice(["RGB", "L"]), rng.choice([".jpg", ".png"]), 1)]:
        w, h = rng.randint(60, 700), rng.randint(60, 700)
        max_side = rng.choice([None, rng.randint(32, 512)])
        path = _photo_file(f"hidden_{seed}_{len(cases)}{suffix}", w, h, rng.randint(0, 10**6), mode=mode,
                           orientation=orientation)
        cases.append(Case(kind, lambda f, path=path, m=max_side: _prepared_properties(f, path, m)))
    return cases


def _prepare_reference(path, max_side=None):
    from cnclip_edu.data.convert import prepare_image

    return prepare_image(path, max_side)


def _prepare_mistake(kind: str):
    import base64
    import io

    from PIL import Image, ImageOps

    def prepare_image(path, max_side=None):
        img = Image.open(path)
        if kind != "no_exif":
            img = ImageOps.exif_transpose(img)
        if kind == "black_alpha":
            img = img.convert("RGB")            # transparent pixels keep their stored colour (black here)
        elif kind != "keep_mode":
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        elif img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        if kind == "no_limit_check":
            scale = max_side / max(img.size)    # fails on max_side=None, enlarges small photos
            img = img.resize((round(img.width * scale), round(img.height * scale)))
        elif max_side:
            w, h = img.size
            if kind == "square":
                img = img.resize((max_side, max_side))
            elif kind == "enlarge" or max(w, h) > max_side:
                scale = max_side / (min(w, h) if kind == "short_side" else max(w, h))
                img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "PNG" if kind == "png" else "JPEG", quality=95)
        data = base64.b64encode(buf.getvalue())
        return data if kind == "bytes" else data.decode("ascii")
    return prepare_image


def _prepare_alternatives():
    """Correct answers written differently from the library (another filter, thumbnail, int sizes, quality
    90, a white RGB canvas pasted through the alpha mask): each must pass (tests prove it)."""
    import base64
    import io

    from PIL import Image, ImageOps

    def thumbnail_bilinear(path, max_side=None):
        img = ImageOps.exif_transpose(Image.open(path)).convert("RGBA")
        canvas = Image.new("RGB", img.size, "white")
        canvas.paste(img, mask=img.getchannel("A"))
        if max_side:
            canvas.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=90)
        return base64.b64encode(buf.getvalue()).decode()

    def truncated_sizes(path, max_side=None):
        img = ImageOps.exif_transpose(Image.open(path))
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
        w, h = img.size
        if max_side is not None and max(w, h) > max_side:
            s = max_side / max(w, h)
            img = img.resize((max(1, int(w * s)), max(1, int(h * s))), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        return base64.b64encode(buf.getvalue()).decode("ascii")

    return {"thumbnail + BILINEAR + 白底 paste，质量 90": thumbnail_bilinear, "int() 截断尺寸 + BICUBIC": truncated_sizes}


register(Exercise(
    id="10.2", title="一张照片 → TSV 里的 base64 JPEG", points=3,
    hint="按 EXIF 方向标记把照片转正之后，才谈得上哪边是长边；透明的地方先铺上白色再变成 RGB（直接去掉透明通道，"
         "那里就是文件里存的颜色，常常是黑色）；只在长边超过 max_side 时缩小，两条边按同一个比例，"
         "max_side=None 时不缩放；最后编码成 JPEG，再把字节变成 base64 文本（str，不是 bytes）。"
         "常见错误：没转正、透明处变黑、小图被放大、按短边缩放、拉成正方形、存成 PNG、返回 bytes、灰度图没转 RGB。",
    reference=_prepare_reference,
    cases=_prepare_cases,
    hidden=_prepare_hidden,
    builds=("cnclip_edu.data.convert.prepare_image",),
    mutants=lambda: {
        "没有按 EXIF 方向标记转正": _prepare_mistake("no_exif"),
        "直接 convert(\"RGB\")：透明处成了文件里存的黑色": _prepare_mistake("black_alpha"),
        "灰度图保持单通道 (L)，没有转成 RGB": _prepare_mistake("keep_mode"),
        "比 max_side 小的照片也放大到 max_side": _prepare_mistake("enlarge"),
        "按短边缩放到 max_side": _prepare_mistake("short_side"),
        "拉成 max_side × max_side 的正方形": _prepare_mistake("square"),
        "不判断 max_side 是不是 None、也不判断要不要缩小": _prepare_mistake("no_limit_check"),
        "存成 PNG 而不是 JPEG": _prepare_mistake("png"),
        "返回 base64 的 bytes，没有变成 str": _prepare_mistake("bytes"),
    },
))


# ----------------------------------------------------------------------------- 10.3 split by photo
class _Salted(str):
    """A file name whose hash() is that of another Python process (str hashes are salted per process,
    PYTHONHASHSEED): equal to the plain name, so only an answer whose split depends on hash() notices."""

    salt = 0

    def __hash__(self) -> int:
        return hash(str(self)) ^ type(self).salt


def _in_other_process(f, rows, fraction, seed, salt):
    """Run f on rows whose photo names hash as in another process; the valid photos, as plain str."""
    salted = type("_SaltedHere", (_Salted,), {"salt": salt})
    out = f([(salted(i), c) for i, c in rows], fraction, seed)
    return sorted({str(r[0]) for r in out if r[2] == "valid"})


def _split_properties(f, rows, fraction, seed):
    """What must hold of any correct by-photo split, as plain data (the same for every correct answer).

    Which photos land in valid is not compared with the library: any seeded shuffle is right. What
    is checked is that the split is reproducible, also in another process: e.g. sorting by
    `hash((photo, seed))` or shuffling `list(set(photos))` gives the same split twice in one
    process but a different one after a restart, because Python salts str hashes per process;
    `_Salted` names play that other process here."""
    out = [tuple(r) for r in f(list(rows), fraction, seed)]
    sides: dict[str, set] = {}
    for image, _, split in out:
        sides.setdefault(str(image), set()).add(split)
    again = [tuple(r) for r in f(list(rows), fraction, seed)]
    mine = sorted({str(r[0]) for r in out if r[2] == "valid"})
    elsewhere = [_in_other_process(f, rows, fraction, seed, salt) for salt in (0x5A17, 0x2C3B9D)]
    valid_sets = {frozenset(str(r[0]) for r in f(list(rows), fraction, s) if r[2] == "valid")
                  for s in range(seed, seed + 8)}
    return {"行（去掉 split 列）保持原样和原顺序，一条描述也不少": [(r[0], r[1]) for r in out] == [tuple(r) for r in rows],
            "split 只取 train / valid": sorted({r[2] for r in out} | {"train", "valid"}) == ["train", "valid"],
            "两边都出现的照片": sorted(i for i, s in sides.items() if len(s) > 1),
            "valid 的照片数": len(mine),
            "同一个 seed 两次结果相同": again == out,
            "同一个 seed 在另一个 Python 进程里（字符串的 hash 不同）结果相同": all(e == mine for e in elsewhere),
            "换 seed 划分会变": len(valid_sets) > 1}


def _photo_rows(n_photos, per_photo, rng=None, prefix="p"):
    rows = [(f"{prefix}{i:02d}.jpg", f"第 {i} 张照片的描述 {k}") for i in range(n_photos) for k in range(per_photo[i])]
    if rng is not None:
        rng.shuffle(rows)   # a photo's captions scattered over the file
    return rows


def _sample_rows():
    from cnclip_edu.data.samples import caption_rows

    return [(image, cap) for image, cap, _ in caption_rows()]


def _split_cases():
    one_big = [("大.jpg", f"同一张照片的第 {k} 条描述") for k in range(30)] + \
        [(f"小{i}.jpg", f"小照片 {i}") for i in range(5)]
    return [
        Case("示例照片 captions.csv 的全部 81 行，valid 占 0.2（18 × 0.2 = 3.6 张）", lambda f: _split_properties(f, _sample_rows(), 0.2, 0)),
        Case("10 张照片 × 3 条描述，valid 占 0.25（恰好 2.5 张）", lambda f: _split_properties(
            f, _photo_rows(10, [3] * 10, random.Random(1)), 0.25, 7)),
        Case("18 张照片，valid 占 0.25（恰好 4.5 张），描述数各不相同",
             lambda f: _split_properties(f, _photo_rows(18, [1 + i % 5 for i in range(18)]), 0.25, 3)),
        Case("一张照片有 30 条描述，另有 5 张各 1 条，valid 占 0.5",
             lambda f: _split_properties(f, one_big, 0.5, 11)),
        Case("10 张照片，valid 占 1/3（3.33 张）", lambda f: _split_properties(f, _photo_rows(10, [2] * 10), 1 / 3, 5)),
    ]


def _split_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind, n, fraction in [("恰好半张的比例", 2 * rng.randint(3, 12) + 1, 0.5),
                              ("一般的比例", rng.randint(8, 40), rng.choice([0.1, 0.15, 0.2, 0.3])),
                              ("比例 × 照片数恰为 .5", 4 * rng.randint(2, 8) + 2, 0.25)]:
        per = [rng.randint(1, 6) for _ in range(n)]
        rows = _photo_rows(n, per, random.Random(rng.random()), prefix=f"h{rng.randint(0, 999)}_")
        s = rng.randint(0, 10**6)
        cases.append(Case(kind, lambda f, rows=rows, fr=fraction, s=s: _split_properties(f, rows, fr, s)))
    return cases


def _split_reference(rows, valid_fraction, seed):
    from cnclip_edu.data.split import split_by_photo

    return split_by_photo(rows, valid_fraction, seed)


def _split_mistake(kind: str):
    import math

    def split_by_photo(rows, valid_fraction, seed):
        rng = random.Random(seed)
        if kind == "captions":   # holds out rows: a photo's other captions stay in train
            order = list(range(len(rows)))
            rng.shuffle(order)
            valid_rows = set(order[:math.floor(len(rows) * valid_fraction + 0.5)])
            return [(i, c, "valid" if k in valid_rows else "train") for k, (i, c) in enumerate(rows)]
        photos = [i for i, _ in rows] if kind == "repeats" else list(dict.fromkeys(i for i, _ in rows))
        if kind == "unseeded":
            random.shuffle(photos)
        elif kind == "hash":     # fixed within one process only: str hashes are salted per process
            photos.sort(key=lambda p: hash((p, seed)))
        elif kind == "set":      # set order follows the str hashes: another process, another order
            photos = list(set(photos))
            rng.shuffle(photos)
        elif kind != "no_shuffle":
            rng.shuffle(photos)
        n = len(set(photos)) * valid_fraction
        n_valid = {"int": int(n), "round": round(n), "ceil": math.ceil(n)}.get(kind, math.floor(n + 0.5))
        valid = set(photos[:n_valid])
        out = [(i, c, "valid" if i in valid else "train") for i, c in rows]
        if kind == "grouped":    # the rows regrouped photo by photo: the file order is lost
            out.sort(key=lambda r: photos.index(r[0]))
        elif kind == "one_row":  # one row per photo: the photo's other captions are dropped
            out = list({r[0]: r for r in reversed(out)}.values())[::-1]
        return out
    return split_by_photo


def _split_alternatives():
    """Correct answers written differently from the library: each must pass (tests prove it)."""
    import math

    def sample_sorted(rows, valid_fraction, seed):
        photos = sorted({i for i, _ in rows})
        valid = set(random.Random(seed).sample(photos, math.floor(len(photos) * valid_fraction + 0.5)))
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]

    def shuffled_indices(rows, valid_fraction, seed):
        photos = list(dict.fromkeys(i for i, _ in rows))
        order = list(range(len(photos)))
        random.Random(seed * 7919 + 1).shuffle(order)
        n_valid = int(len(photos) * valid_fraction + 0.5)
        valid = {photos[k] for k in order[:n_valid]}
        return [(i, c, "valid" if i in valid else "train") for i, c in rows]

    return {"先排序再 random.Random(seed).sample": sample_sorted, "打乱下标而不是文件名": shuffled_indices}


register(Exercise(
    id="10.3", title="按照片划分 train / valid（不泄漏）", points=3,
    hint="划分的单位是照片：先决定每张照片在哪一边，再让每一行跟着它的照片走。可复现要一个只属于这个函数、"
         "只由 seed 决定的随机数生成器（全局的随机状态和别的代码共用；字符串的 hash() 每个进程都不同）。"
         "照片数 × 比例四舍五入，恰好 .5 时进位（round(2.5) == 2，int() 是截断）。"
         "哪几张照片进 valid 不和库比较：任何由 seed 决定的打乱都对，但换一个 Python 进程结果也必须相同"
         "（set() 的顺序和 hash() 都随进程变）。"
         "常见错误：打乱的是行而不是照片、照片列表里有重复、用 set() 去重后直接打乱、没有用 seed、行的顺序变了或丢了行。",
    reference=_split_reference,
    cases=_split_cases,
    hidden=_split_hidden,
    builds=("cnclip_edu.data.split.split_by_photo",),
    mutants=lambda: {
        "打乱的是行（描述）而不是照片：同一张照片分到两边": _split_mistake("captions"),
        "照片列表没有去重（一张照片有几条描述就出现几次）": _split_mistake("repeats"),
        "用 int() 截断照片数": _split_mistake("int"),
        "用 round()：恰好 .5 时取偶数": _split_mistake("round"),
        "向上取整": _split_mistake("ceil"),
        "用全局的 random.shuffle，没有用 seed": _split_mistake("unseeded"),
        "没有打乱：总是取前几张照片": _split_mistake("no_shuffle"),
        "按 hash((照片, seed)) 排序代替打乱：换一个进程（PYTHONHASHSEED）划分就变": _split_mistake("hash"),
        "list(set(照片)) 之后再打乱：set 的顺序随进程变": _split_mistake("set"),
        "输出按照片重新分组，行的顺序变了": _split_mistake("grouped"),
        "每张照片只输出一行，丢了其余的描述": _split_mistake("one_row"),
    },
))


# ----------------------------------------------------------------------------- 10.4 "nothing found" threshold
def _valid_results(rows):
    """(text_id, top-1 score, ranked image ids, gold ids) rows -> the three dicts of the exercise."""
    import numpy as np

    scores = {t: np.array([s, s - 0.05, s - 0.1], dtype=np.float32) for t, s, _, _ in rows}
    ranked = {t: list(r) for t, _, r, _ in rows}
    gold = {t: list(g) for t, _, _, g in rows}
    return scores, ranked, gold


_MIXED = [  # text_id, top-1 score, ranked image ids, gold: right ones mostly high, two wrong ones high too
    (53, 0.62, [1, 4, 7], [1]), (54, 0.31, [5, 2, 9], [2]), (55, 0.48, [3, 1, 2], [3]), (56, 0.44, [8, 7, 1], [7, 8]),
    (57, 0.27, [9, 3, 4], [4]), (58, 0.55, [6, 1, 2], [6]), (59, 0.38, [1, 9, 4], [9]), (60, 0.50, [2, 5, 6], [5]),
]
_TIES = [  # two wrong top-1s share a score with a right one; equal counts for several candidates
    (1, 0.40, [1, 2], [1]), (2, 0.40, [2, 1], [1]), (3, 0.40, [3, 1], [3]), (4, 0.20, [4, 1], [1]),
    (5, 0.70, [5, 1], [5]), (6, 0.60, [6, 1], [2]),
]


def _threshold_cases():
    return [
        Case("8 条描述：有对有错，其中一条有两张 gold 照片、排第 1 的是第二张", lambda f: f(*_valid_results(_MIXED))),
        Case("全部排对：一张照片都不该挡掉", lambda f: f(*_valid_results([(k, 0.3 + 0.1 * k, [k], [k]) for k in range(4)]))),
        Case("全部排错：什么都不该接受",
             lambda f: f(*_valid_results([(k, 0.3 + 0.1 * k, [k], [k + 1]) for k in range(4)]))),
        Case("几条描述的分数相同、几个阈值一样好", lambda f: f(*_valid_results(_TIES))),
        Case("只有一条描述（排对了）", lambda f: f(*_valid_results([(7, 0.12, [3, 1], [1, 3])]))),
    ]


def _threshold_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind in ("有对有错、分数有重复、有多张 gold 的描述", "分数很接近的一组描述"):
        rows = []
        for t in range(rng.randint(6, 20)):
            ok = rng.random() < 0.5
            gold = rng.sample(range(1, 30), rng.choice([1, 1, 2, 3]))
            top = rng.choice(gold) if ok else rng.choice([i for i in range(1, 30) if i not in gold])
            s = round(rng.uniform(0.1, 0.7) + (0.1 if ok else 0.0), 2 if kind.startswith("有对") else 3)
            rows.append((100 + t, s, [top, rng.randint(1, 29)], gold))
        cases.append(Case(kind, lambda f, rows=rows: f(*_valid_results(rows))))
    return cases


def _threshold_reference(scores, ranked, gold):
    from cnclip_edu.eval.threshold import threshold_from_valid

    return threshold_from_valid(scores, ranked, gold)


def _threshold_mistake(kind: str):
    def threshold_from_valid(scores, ranked, gold):
        if kind == "first_gold":
            top = [(float(scores[t][0]), ranked[t][0] == gold[t][0]) for t in ranked]
        elif kind == "gold_score":   # the score of the best gold photo in the top-k, not of the top-1
            top = [(float(next((s for s, i in zip(scores[t], ranked[t]) if i in gold[t]), scores[t][0])),
                    ranked[t][0] in gold[t]) for t in ranked]
        else:
            top = [(float(scores[t][0]), ranked[t][0] in gold[t]) for t in ranked]
        values = sorted({s for s, _ in top})
        if kind == "max_wrong":
            return max([s for s, ok in top if not ok], default=-1.0)
        if kind == "min_right":
            return min([s for s, ok in top if ok], default=1.0)
        inner = values if kind == "scores" else [(a + b) / 2 for a, b in zip(values, values[1:])]
        candidates = inner if kind == "no_ends" else [-1.0] + inner + [1.0]
        if not candidates:
            candidates = [values[0]]
        best, best_right = -1.0, -1
        for t in candidates:
            right = sum((s > t) == ok for s, ok in top)
            if right > best_right or (right == best_right and kind != "smallest"):
                best, best_right = t, right
        return best
    return threshold_from_valid


register(Exercise(
    id="10.4", title="给搜索框定“没有找到”的阈值（在 valid 上选）", points=3,
    hint="每条 valid 描述只看排第 1 的那张照片：它的相似度，和它是不是这条描述的 gold 照片之一（gold 可能不止一张）。"
         "候选阈值是 -1、相邻两个不同分数的中点、1；分数大于阈值才接受。数一数每个候选在几条描述上判断对了"
         "（接受了对的，或挡掉了错的），取最多的；一样多时取最大的那个。"
         "常见错误：只和第一张 gold 比、没有两端的候选、一样多时取了最小的、用分数本身而不是中点。",
    reference=_threshold_reference,
    cases=_threshold_cases,
    hidden=_threshold_hidden,
    builds=("cnclip_edu.eval.threshold.threshold_from_valid",),
    mutants=lambda: {
        "只和 gold 里的第一张照片比较": _threshold_mistake("first_gold"),
        "用 top-k 里 gold 照片的分数，而不是排第 1 的照片的分数": _threshold_mistake("gold_score"),
        "阈值 = 排错的描述里最高的分数": _threshold_mistake("max_wrong"),
        "阈值 = 排对的描述里最低的分数": _threshold_mistake("min_right"),
        "候选用分数本身，不用中点": _threshold_mistake("scores"),
        "候选里没有 -1 和 1 两端": _threshold_mistake("no_ends"),
        "判断对的条数一样多时取了最小的阈值": _threshold_mistake("smallest"),
    },
))
