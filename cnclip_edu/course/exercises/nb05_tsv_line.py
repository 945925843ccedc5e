"""Exercise 05.1 of notebook 05: read one line of a `{split}_imgs.tsv` strictly.

The reference is the library's own code (`formats.decode_b64` / `open_image`). The mutants are the slips
a student makes: a lazy `Image.open`, `verify()` instead of decoding (JPEG pixels are not decoded), a
lenient base64 decode, an id left a string, a kept newline, a `\r` of a Windows line ending kept, only the
standard base64 alphabet, a whole-line strip() that hides an empty third column.
"""
from __future__ import annotations

import base64
import io

import numpy as np

from .core import Case, Exercise, register
from .nb05_tiny_data import _COLORS, _png_b64
from .tripwire import guarded


# ----------------------------------------------------------------------------- 05.1 one TSV line
def decode_tsv_line(line: str):
    """`image_id<TAB>base64` (trailing newline allowed) -> (int id, fully decoded PIL image).
    Raises ValueError on a bad line, bad base64 (strict alphabet) or a broken/truncated image."""
    from cnclip_edu.data import formats

    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 2:
        raise ValueError(f"expected 'image_id<TAB>base64', found {len(fields)} tab-separated field(s)")
    image_id = int(fields[0])
    return image_id, formats.open_image(formats.decode_b64(fields[1], strict=True), verify=True)


_REFUSED = "抛出了异常（坏数据被拒绝）"


BUILDS_05_1 = ("cnclip_edu.data.formats.decode_b64", "cnclip_edu.data.formats.open_image",
               "cnclip_edu.data.formats.decode_image")


def _run_decode(f, line: str):
    try:
        out = guarded(f, decode_tsv_line, BUILDS_05_1)(line)
    except NotImplementedError:
        raise
    except Exception:  # ValueError, binascii.Error, OSError from PIL: any refusal counts
        return _REFUSED
    if not (isinstance(out, tuple) and len(out) == 2):
        return out
    image_id, img = out
    try:
        pixels = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
    except Exception:
        return image_id, "一张解码不了的图片（返回前没有用 img.load() 验证）"
    return image_id, pixels


def _urlsafe(b64: str) -> str:
    """The same bytes in base64's URL-safe alphabet (must contain a '-' or '_' to be a real case)."""
    out = b64.replace("+", "-").replace("/", "_")
    assert out != b64, "pick an image whose base64 has a '+' or '/'"
    return out


def _cut_jpeg(jpeg_b64: str, keep: float = 0.5) -> str:
    """A JPEG cut inside its entropy-coded scan: the header is intact, so `Image.open` and `verify()`
    (which does not decode JPEG data) both pass; only decoding the pixels finds the truncation."""
    raw = base64.b64decode(jpeg_b64)
    scan = raw.index(b"\xff\xda")                       # start-of-scan marker: the pixel data follows
    return base64.b64encode(raw[: scan + int((len(raw) - scan) * keep)]).decode("ascii")


def _cases_05_1():
    png, jpeg = _png_b64(_COLORS[0]), _png_b64(_COLORS[1], fmt="JPEG")
    raw = base64.b64decode(png)
    truncated = base64.b64encode(raw[: len(raw) * 2 // 3]).decode("ascii")
    junk = png[:20] + "!*" + png[20:]   # characters outside the base64 alphabet
    return [
        Case("从文件读出的一行 PNG（末尾带 \\n）", lambda f: _run_decode(f, f"1000\t{png}\n")),
        Case("一行 PNG，末尾是 \\r\\n（Windows 上写的文件）", lambda f: _run_decode(f, f"1008\t{png}\r\n")),
        Case("一行 JPEG", lambda f: _run_decode(f, f"1001\t{jpeg}")),
        Case("URL 安全字母表的 base64（'-'、'_' 代替 '+'、'/'，cn_clip 读得懂）",
             lambda f: _run_decode(f, f"1005\t{_urlsafe(jpeg)}")),
        Case("截断的 PNG（只有前 2/3 的字节）", lambda f: _run_decode(f, f"1002\t{truncated}")),
        Case("截断的 JPEG（文件头完好，像素数据只剩一半）", lambda f: _run_decode(f, f"1006\t{_cut_jpeg(jpeg)}")),
        Case("base64 里混进了非法字符 '!*'", lambda f: _run_decode(f, f"1003\t{junk}")),
        Case("id 与 base64 之间是空格而不是制表符", lambda f: _run_decode(f, f"1004 {png}")),
        Case("行尾多了一个制表符（第三列是空的）", lambda f: _run_decode(f, f"1007\t{png}\t\n")),
    ]


def _hidden_05_1(seed: int):
    import random

    rng = random.Random(seed)
    color = _COLORS[rng.randrange(len(_COLORS))]
    png, jpeg = _png_b64(color, size=rng.randint(8, 20)), _png_b64(color, fmt="JPEG", size=rng.randint(8, 20))
    raw = base64.b64decode(png)
    cut = base64.b64encode(raw[: rng.randint(len(raw) // 3, len(raw) - 8)]).decode("ascii")
    jpeg_cut = _cut_jpeg(jpeg, keep=rng.uniform(0.4, 0.8))
    at = rng.randint(4, len(png) - 4)
    iid = rng.randint(1, 10**9)
    return [Case("一行 PNG，末尾带换行", lambda f: _run_decode(f, f"{iid}\t{png}\n")),
            Case("一行 JPEG，末尾是 \\r\\n", lambda f: _run_decode(f, f"{iid}\t{jpeg}\r\n")),
            Case("截断的图片", lambda f: _run_decode(f, f"{iid}\t{cut}")),
            Case("截断的 JPEG", lambda f: _run_decode(f, f"{iid}\t{jpeg_cut}")),
            Case("base64 里有非法字符", lambda f: _run_decode(f, f"{iid}\t{png[:at]}#{png[at:]}")),
            Case("URL 安全字母表的 base64", lambda f: _run_decode(f, f"{iid}\t{_urlsafe(jpeg)}")),
            Case("多了一列", lambda f: _run_decode(f, f"{iid}\t{png}\textra")),
            Case("行尾多出空的列", lambda f: _run_decode(f, f"{iid}\t{png}" + "\t" * rng.randint(1, 3)
                                                      + rng.choice(["", "\n", "\r\n"])))]


def _mutants_05_1():
    from PIL import Image

    def lazy(line):
        sid, b64 = line.strip().split("\t")
        return int(sid), Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))

    def standard_only(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return int(sid), img

    def lenient(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        return int(sid), img

    def str_id(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return sid, img

    def keeps_newline(line):
        sid, b64 = line.split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return int(sid), img

    def strips_only_newline(line):
        # otherwise right, but rstrip("\n") leaves the '\r' of a Windows line ending in the base64
        sid, b64 = line.rstrip("\n").split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64.translate(str.maketrans("-_", "+/")), validate=True)))
        img.load()
        return int(sid), img

    def verify_then_reopen(line):
        # the common idiom: verify() checks PNG chunks and CRCs, but does not decode JPEG data
        sid, b64 = line.strip().split("\t")
        raw = base64.b64decode(b64.replace("-", "+").replace("_", "/"), validate=True)
        Image.open(io.BytesIO(raw)).verify()
        return int(sid), Image.open(io.BytesIO(raw))           # verify() leaves the image unusable: open again

    def strips_whole_line(line):
        # otherwise right, but strip() also eats trailing tabs: "id<TAB>b64<TAB>" (3 columns) passes as 2
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64.translate(str.maketrans("-_", "+/")), validate=True)))
        img.load()
        return int(sid), img

    return {"没有 img.load()（Image.open 只读文件头，截断的图混了过去）": lazy,
            "用 img.verify() 代替解码（对 JPEG 不解码像素，截断的 JPEG 混了过去）": verify_then_reopen,
            "b64decode 没有 validate=True（非法字符被悄悄丢掉）": lenient,
            "image_id 没有转成 int": str_id, "没有去掉行尾的换行符": keeps_newline,
            "只去掉 \\n（rstrip(\"\\n\")）：Windows 行尾 \\r\\n 留下的 \\r 被当成非法字符": strips_only_newline,
            "只认标准字母表（URL 安全的 '-'、'_' 被当成非法字符）": standard_only,
            "先 strip() 整行再切分（行尾的制表符也被去掉，空的第三列混了过去）": strips_whole_line}


register(Exercise(
    id="05.1", title="读一行 TSV：解码并验证 base64 图片", points=2,
    hint="一行要恰好是两列，id 是整数，行尾的换行不属于 base64；base64 有两种字母表，第 63、64 个字符不同，两种都要认；"
         "想一想 b64decode 默认怎样对待字母表以外的字符，"
         "以及 Image.open 返回时到底读了多少字节——截断的图片（PNG 和 JPEG）要在你返回之前就暴露出来：只检查文件结构不够，要真的把像素解出来。",
    reference=decode_tsv_line, cases=_cases_05_1, mutants=_mutants_05_1, hidden=_hidden_05_1, builds=BUILDS_05_1))
