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
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from PIL import Image

SPLITS = ("train", "valid", "test")
NUM_IMAGES_KEY = b"num_images"
NUM_SAMPLES_KEY = b"num_samples"
PICKLE_PROTOCOL = 4  # what cn_clip's Python 3.8+ writes by default; readable by every Python 3.4+
# Decompression-bomb guard: a 64-px PNG can declare 100000 x 100000 pixels. PIL warns at 89M
# pixels; we refuse earlier, before decoding anything.
MAX_IMAGE_PIXELS = 64_000_000
_URLSAFE = bytes.maketrans(b"-_", b"+/")


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
    `urlsafe_b64decode`, which accepts both); `strict` rejects any other character."""
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
    return obj


# ----------------------------------------------------------------------------- writing files atomically
def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A fresh folder in `parent` for an atomic build, with normal permissions (mkdtemp gives 0700)."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> Path:
    """Put the finished folder `tmp` in place of `final` (which may exist).

    The old folder is first renamed aside, then the new one renamed in, then the old one deleted:
    at every moment `final` is either the complete old folder or the complete new one.
    """
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_lines_atomic(path: str | os.PathLike, lines: Iterable[str]) -> int:
    """Write `lines` (each without its newline) to `path` via a temporary file; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
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
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            line = line.strip()
            if line:
                image_id, b64 = line.split("\t", 1)
                yield int(image_id), b64
