"""MUGE file formats, in one place: `{split}_imgs.tsv`, `{split}_texts.jsonl`, and the LMDB keys.

    {split}_imgs.tsv     image_id<TAB>base64(jpeg|png)          one image per line
    {split}_texts.jsonl  {"text_id": int, "text": str, "image_ids": [int, ...]}
    lmdb/{split}/imgs    b"<image_id>" -> base64 bytes, plus b"num_images" -> b"<count>"
    lmdb/{split}/pairs   b"0".."N-1" -> pickle((image_id, text_id, text)), plus b"num_samples"

Why base64 inside a TSV: one big text file instead of millions of small image files (file systems
and copies hate those), still greppable and splittable line by line. Readers and writers elsewhere
in `cnclip_edu.data` go through these helpers, so the format has exactly one definition.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

from cnclip_edu.fileio import atomic_open

SPLITS = ("train", "valid", "test")
NUM_IMAGES_KEY = b"num_images"
NUM_SAMPLES_KEY = b"num_samples"
PICKLE_PROTOCOL = 4  # what cn_clip's Python 3.8+ writes by default; readable by every Python 3.4+
# Decompression-bomb guard: a 64-px PNG can declare 100000 x 100000 pixels. PIL warns at 89M
# pixels; we refuse earlier, before decoding anything.
MAX_IMAGE_PIXELS = 64_000_000
_URLSAFE = bytes.maketrans(b"-_", b"+/")
# Ids are 64-bit signed integers: cn_clip (and we) hold them in LongTensors (features, known
# positives), so a larger id would pass a build and crash much later with "Overflow when
# unpacking long long" and no id. They are checked where they enter, with file and line.
ID_MIN, ID_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"^-?\d+$")


def imgs_tsv(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / f"{split}_imgs.tsv"


def texts_jsonl(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / f"{split}_texts.jsonl"


# ----------------------------------------------------------------------------- images <-> base64
def encode_image(img: Image.Image, fmt: str = "PNG", quality: int = 95) -> str:
    """PIL image -> standard base64 text (PNG lossless, or JPEG at `quality`)."""
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format=fmt, optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_b64(b64: str | bytes, strict: bool = True) -> bytes:
    """Base64 text -> bytes. Accepts the standard and the URL-safe alphabet (cn_clip decodes with
    `urlsafe_b64decode`, which accepts both up to Python 3.14); `strict` rejects any other character.
    Translating '-_' to '+/' first and then decoding the standard alphabet keeps both working: from
    Python 3.15 `urlsafe_b64decode` and `b64decode(altchars=...)` warn on '+' and '/' (gh-125346),
    and later versions drop or reject them."""
    if isinstance(b64, str):
        b64 = b64.encode("ascii", errors="strict") if strict else b64.encode("ascii", "ignore")
    b64 = bytes(b64).strip().translate(_URLSAFE)
    return base64.b64decode(b64, validate=strict)


def open_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, verify: bool = True) -> Image.Image:
    """Open image bytes with PIL, refusing decompression bombs; with `verify`, decode every pixel
    (PIL's `verify()` misses truncated JPEGs, a full `load()` does not). Raises ValueError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ValueError(f"decompression bomb refused by PIL ({e})") from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"not an image PIL can open (unknown format; data starts with {data[:12]!r})") from None
    except Exception as e:  # SyntaxError, OSError, ... from a broken header
        raise ValueError(f"not an image PIL can open ({type(e).__name__}: {e})") from None
    w, h = img.size
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise ValueError(f"declared size {w}x{h} exceeds the limit of {max_pixels} pixels "
                         "(decompression-bomb guard)")
    if verify:
        try:
            img.load()
        except Exception as e:
            raise ValueError(f"image data is corrupt or truncated ({type(e).__name__}: {e})") from None
    return img


def decode_image(b64: str | bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Base64 text -> loaded PIL image (ValueError if either step fails)."""
    try:
        raw = decode_b64(b64, strict=False)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid base64 ({e})") from None
    return open_image(raw, max_pixels=max_pixels, verify=True)


# ----------------------------------------------------------------------------- ids
def id_problem(value: object, what: str = "id", text: bool = False) -> str | None:
    """Why `value` is not a valid id, or None. An id is a JSON int (not a bool, a float or a quoted
    number) or, with `text`, decimal text (a TSV field, an LMDB key), within int64."""
    if text and isinstance(value, (str, bytes)):
        value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        if not _INT_TEXT.match(value.strip()):
            return f"{what} {value[:40]!r} is not an integer"
        value = int(value)
    elif type(value) is not int:  # noqa: E721 (bool is an int subclass: refuse it too)
        return f"{what} must be an integer, got {value!r:.40}"
    if not ID_MIN <= value <= ID_MAX:
        return f"{what} {value} does not fit in 64 bits (ids must lie in [-2**63, 2**63 - 1])"
    return None


def check_id(value: object, where: str, what: str = "id", text: bool = False) -> int:
    """`value` as an int id, else ValueError `"<where>: <what> ..."` (where: file:line, or a key)."""
    problem = id_problem(value, what, text)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return int(value)


class UniqueIds:
    """The ids met so far in one file: `add` refuses the second occurrence, naming both places."""

    def __init__(self, what: str = "id", text: bool = False):
        self.what, self.text, self.first = what, text, {}

    def add(self, value: object, where: str) -> int:
        i = check_id(value, where, self.what, self.text)
        if i in self.first:
            raise ValueError(f"{where}: {self.what} {i} is a duplicate (already at {self.first[i]})")
        self.first[i] = where
        return i


# ----------------------------------------------------------------------------- pickled pairs
class _TupleOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused (no code runs)."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: pairs hold only (int, int, str)")


def dump_pair(image_id: int, text_id: int, text: str) -> bytes:
    return pickle.dumps((int(image_id), int(text_id), str(text)), protocol=PICKLE_PROTOCOL)


def load_pair(data: bytes, key: str = "?") -> tuple[int, int, str]:
    """Restricted load of a pickled `(image_id, text_id, text)`; ValueError naming `key` otherwise."""
    try:
        obj = _TupleOnlyUnpickler(io.BytesIO(bytes(data))).load()
    except Exception as e:
        raise ValueError(f"pairs record {key!r}: cannot unpickle ({type(e).__name__}: {e})") from None
    if (not isinstance(obj, tuple) or len(obj) != 3 or not all(isinstance(v, int) for v in obj[:2])
            or not isinstance(obj[2], str)):
        raise ValueError(f"pairs record {key!r}: expected (int image_id, int text_id, str text), got {obj!r:.80}")
    for value, what in zip(obj[:2], ("image_id", "text_id")):
        check_id(value, f"pairs record {key!r}", what)
    return obj


# ----------------------------------------------------------------------------- writing files atomically
def write_lines_atomic(path: str | os.PathLike, lines: Iterable[str]) -> int:
    """Write `lines` (each without its newline) to `path` via a temporary file; returns the count."""
    n = 0
    with atomic_open(path, "w", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
            n += 1
    return n


def write_imgs_tsv(path: str | os.PathLike, items: Iterable[tuple[int, str]]) -> int:
    return write_lines_atomic(path, (f"{int(i)}\t{b64}" for i, b64 in items))


def text_record(text_id: int, text: str, image_ids: list[int]) -> str:
    return json.dumps({"text_id": int(text_id), "text": text, "image_ids": [int(i) for i in image_ids]},
                      ensure_ascii=False)


def write_texts_jsonl(path: str | os.PathLike, items: Iterable[tuple[int, str, list[int]]]) -> int:
    return write_lines_atomic(path, (text_record(t, s, ids) for t, s, ids in items))


def iter_texts_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Lenient reader for files we trust (our own output): skips blank lines, tolerates BOM/CRLF."""
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def iter_imgs_tsv(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(image_id, base64) per line; a malformed line, a bad or repeated id raises ValueError naming
    file, line and id (the full validation with every image decoded is `cnclip-edu build-lmdb`)."""
    seen = UniqueIds("image id", text=True)
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                where = f"{path}:{n}"
                if "\t" not in line:
                    raise ValueError(f"{where}: expected 'image_id<TAB>base64'")
                image_id, b64 = line.split("\t", 1)
                yield seen.add(image_id, where), b64
