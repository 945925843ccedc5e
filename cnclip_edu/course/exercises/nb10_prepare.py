"""Exercise 10.2 of notebook 10 (your own photos): one photo file -> base64 JPEG.

10.2 turns one photo file into the base64 JPEG text of a `{split}_imgs.tsv` line
(`data.convert.prepare_image`): upright by its EXIF orientation tag, 8-bit RGB with transparent parts on
white, the longer side shrunk to `max_side` (never enlarged; None: kept), JPEG. The bytes are NOT
compared with the library (the resampling filter and the JPEG quality are the student's choice): each
case decodes the answer and reports properties, each on its own: base64 text, a JPEG, RGB, the size
(longer side exact, the other within 1 px of the kept aspect ratio), the pixels close to the upright,
white-backed, shrunk original. Cases: a landscape JPEG, phone photos stored sideways / upside down with
an EXIF orientation tag, transparent PNGs (RGBA, grey + alpha LA, a palette P with a transparent colour), a photo smaller than `max_side`, a grey PNG with no limit.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 10.2 one photo -> base64 JPEG
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


def _photo_file(path, w: int, h: int, seed: int, mode: str = "RGB", orientation: int = 1):
    """Write a test photo to `path`: `w` x `h` as stored; `orientation` is the EXIF tag (1 = upright, 6 = stored
    sideways, ...); RGBA / LA: the lower-left part transparent, its colour black (as many exports store it)."""
    from PIL import Image

    img = _picture(w, h, seed)
    hole = (0, h // 2, w * 2 // 3, h)                                    # the transparent lower-left part
    if mode in ("RGBA", "LA"):
        img = img.convert("RGBA") if mode == "RGBA" else img.convert("LA")
        alpha = Image.new("L", (w, h), 255)
        alpha.paste(0, hole)
        img.putalpha(alpha)
        black = Image.new(mode, (w, h), (0, 0, 0, 0) if mode == "RGBA" else (0, 0))
        img = Image.composite(img, black, alpha)
    elif mode == "P":                                                    # palette PNG whose index 255 is transparent black
        img = img.quantize(255)
        palette = img.getpalette()[:255 * 3]
        img.putpalette(palette + [0] * (768 - len(palette)))
        img.paste(255, hole)
        img.info["transparency"] = 255
    elif mode == "L":
        img = img.convert("L")
    if path.suffix == ".jpg":
        extra = {}
        if orientation != 1:
            exif = Image.Exif()
            exif[0x0112] = orientation                                   # the EXIF orientation tag
            extra["exif"] = exif
        img.save(path, "JPEG", quality=95, **extra)
    else:
        img.save(path, "PNG", **({"transparency": 255} if mode == "P" else {}))
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


def _on_photo(name: str, w: int, h: int, seed: int, max_side, **how):
    """A case's run: the photo is written into a scratch folder of its own, which is gone when the case
    ends, however it ends (an error, Ctrl-C, SIGTERM: `fileio.scratch_dir`)."""
    def run(f):
        from cnclip_edu.fileio import scratch_dir

        with scratch_dir("cnclip-ex10") as folder:
            return _prepared_properties(f, str(_photo_file(folder / name, w, h, seed, **how)), max_side)
    return run


def _prepare_cases():
    return [
        Case("横版 JPEG 640×400，max_side=256", _on_photo("landscape.jpg", 640, 400, 1, 256)),
        Case("手机竖拍：存成横的 480×320 + EXIF 方向标记 6（顺时针转 90° 才正），max_side=200",
             _on_photo("sideways.jpg", 480, 320, 2, 200, orientation=6)),
        Case("倒着存的 JPEG 400×300 + EXIF 方向标记 3（转 180°），max_side=256",
             _on_photo("upside_down.jpg", 400, 300, 3, 256, orientation=3)),
        Case("透明背景的 PNG (RGBA) 300×240，左下角透明（那里存的颜色是黑色），max_side=128",
             _on_photo("logo.png", 300, 240, 4, 128, mode="RGBA")),
        Case("灰度 + 透明度的 PNG (LA) 260×200，左下角透明（那里存的是黑色），max_side=128",
             _on_photo("grey_logo.png", 260, 200, 7, 128, mode="LA")),
        Case("调色板 PNG (P) 带透明色（tRNS）240×180，左下角透明（调色板里那一色是黑色），max_side=None",
             _on_photo("icon.png", 240, 180, 8, None, mode="P")),
        Case("比 max_side 还小的照片 120×90，max_side=256（不放大）", _on_photo("small.jpg", 120, 90, 5, 256)),
        Case("灰度 PNG (L) 200×150，max_side=None（不缩放）", _on_photo("grey.png", 200, 150, 6, None, mode="L")),
    ]


def _prepare_hidden(seed: int):
    rng = random.Random(seed)
    cases = []
    for kind, mode, suffix, orientation in [("带 EXIF 方向标记的 JPEG", "RGB", ".jpg", rng.choice([3, 6, 8])),
                                            ("带透明通道的 PNG", rng.choice(["RGBA", "LA", "P"]), ".png", 1),
                                            ("灰度或彩色、大小随机的照片", rng.choice(["RGB", "L"]), rng.choice([".jpg", ".png"]), 1)]:
        w, h = rng.randint(60, 700), rng.randint(60, 700)
        max_side = rng.choice([None, rng.randint(32, 512)])
        cases.append(Case(kind, _on_photo(f"hidden_{seed}_{len(cases)}{suffix}", w, h, rng.randint(0, 10**6), max_side,
                                          mode=mode, orientation=orientation)))
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
        if kind == "black_alpha" or (kind == "rgba_only" and img.mode != "RGBA"):
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
    hint="先按 EXIF 方向标记把照片转正：方向标记只在原文件里，重新存成 JPEG 时它就丢了；透明的地方先铺上白色再变成 RGB"
         "（RGBA、LA、带透明色的调色板 P 图都算；直接去掉透明通道，那里就是文件里存的颜色，常常是黑色）；只在长边超过 max_side 时缩小，两条边按同一个比例，"
         "max_side=None 时不缩放；最后编码成 JPEG，再把字节变成 base64 文本（str，不是 bytes）。"
         "常见错误：没转正、透明处变黑、小图被放大、按短边缩放、拉成正方形、存成 PNG、返回 bytes、灰度图没转 RGB。",
    reference=_prepare_reference,
    cases=_prepare_cases,
    hidden=_prepare_hidden,
    builds=("cnclip_edu.data.convert.prepare_image",),
    mutants=lambda: {
        "没有按 EXIF 方向标记转正": _prepare_mistake("no_exif"),
        "直接 convert(\"RGB\")：透明处成了文件里存的黑色": _prepare_mistake("black_alpha"),
        "只给 RGBA 铺白：LA 和带透明色的调色板 (P) 图直接 convert(\"RGB\")，透明处成了黑色": _prepare_mistake("rgba_only"),
        "灰度图保持单通道 (L)，没有转成 RGB": _prepare_mistake("keep_mode"),
        "比 max_side 小的照片也放大到 max_side": _prepare_mistake("enlarge"),
        "按短边缩放到 max_side": _prepare_mistake("short_side"),
        "拉成 max_side × max_side 的正方形": _prepare_mistake("square"),
        "不判断 max_side 是不是 None、也不判断要不要缩小": _prepare_mistake("no_limit_check"),
        "存成 PNG 而不是 JPEG": _prepare_mistake("png"),
        "返回 base64 的 bytes，没有变成 str": _prepare_mistake("bytes"),
    },
))
