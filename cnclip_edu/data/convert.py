"""Bring your own data: image files + captions -> MUGE format; class folders -> zero-shot layout.

    cnclip-edu convert captions --images DIR --captions caps.csv --out D --split train [--max-side 512] [--quality 95]
    cnclip-edu convert folders --src DIR --out D/zeroshot/mytask [--labels names.txt]
    cnclip-edu build-lmdb --data-dir D --splits train            # then, as for MUGE

Captions: a CSV with a header holding `image` and `caption` (or `text`) columns, or a JSONL with
`{"image": "a.jpg", "caption": "..."}` / `{"image": ..., "captions": [...]}`; one image may appear
on several rows. Images are decoded, EXIF-rotated (phones store portrait photos sideways plus a
rotation tag that the LMDB readers would ignore), converted to 8-bit RGB with `to_rgb`, optionally
shrunk so the longer side is at most `max_side`, and re-encoded as JPEG at `quality` (default 95).
Identical caption texts are merged into one text with several `image_ids` (MUGE style).
`{split}_id_map.tsv` records which file became which image id.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
from pathlib import Path

from PIL import Image, ImageOps
from tqdm.auto import tqdm

from cnclip_edu import fileio
from cnclip_edu.cli import InRange

from . import formats
from .transforms import to_rgb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ConvertError(ValueError):
    pass


def read_captions(path: str | os.PathLike) -> list[tuple[int, str, str]]:
    """(line, image path, caption) rows from a CSV (header: image, caption|text) or a JSONL file."""
    path = Path(path)
    rows: list[tuple[int, str, str]] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConvertError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                caps = obj.get("captions", [obj.get("caption", obj.get("text"))])
                if "image" not in obj or not isinstance(caps, list):
                    raise ConvertError(f"{path}:{n}: expected keys 'image' and 'caption' (or 'captions': [...])")
                rows += [(n, str(obj["image"]), c) for c in caps]
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            col = "caption" if "caption" in fields else "text" if "text" in fields else None
            if "image" not in fields or col is None:
                raise ConvertError(f"{path}:1: the CSV header must name an 'image' and a 'caption' (or 'text') "
                                   f"column, found {fields}")
            rows = [(n, r["image"] or "", r[col]) for n, r in enumerate(reader, 2)]
    for n, img, cap in rows:
        if not isinstance(cap, str) or not cap.strip():
            raise ConvertError(f"{path}:{n}: empty caption for image {img!r}")
        if not img:
            raise ConvertError(f"{path}:{n}: empty image path")
    return rows


def prepare_image(path: str | os.PathLike, max_side: int | None = None, quality: int = 95) -> str:
    """Image file -> base64 JPEG: EXIF orientation applied, RGB, longer side <= max_side."""
    data = Path(path).read_bytes()
    img = formats.open_image(data, verify=True)
    img = ImageOps.exif_transpose(img)
    img = to_rgb(img)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return formats.encode_image(img, "JPEG", quality=quality)


def convert_captions(images_dir: str | os.PathLike, captions: str | os.PathLike, out_dir: str | os.PathLike,
                     split: str = "train", max_side: int | None = None, quality: int = 95, start_image_id: int = 1,
                     start_text_id: int = 1, on_error: str = "fail", progress: bool = True) -> dict[str, int]:
    """Write `{split}_imgs.tsv`, `{split}_texts.jsonl` and `{split}_id_map.tsv` into `out_dir`."""
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    rows = read_captions(captions)
    ids: dict[str, int] = {}
    for _, img, _ in rows:
        ids.setdefault(img, start_image_id + len(ids))
    n_texts = len({cap.strip() for _, _, cap in rows})
    for start, n, what in ((start_image_id, len(ids), "image"), (start_text_id, n_texts, "text")):
        problem = formats.id_problem(start + n - 1, f"the last {what} id")
        if problem:
            raise ConvertError(f"--start-{what}-id {start} with {n} {what}s: {problem}")
    encoded: dict[int, str] = {}
    skipped: dict[str, str] = {}
    for img, iid in tqdm(ids.items(), desc=f"convert {split} images", disable=not progress):
        try:
            encoded[iid] = prepare_image(images_dir / img, max_side, quality)
        except (OSError, ValueError) as e:
            line = next(n for n, i, _ in rows if i == img)
            msg = f"{captions}:{line}: image {img!r}: {e}"
            if on_error != "skip":
                raise ConvertError(msg) from None
            skipped[img] = msg
    if not encoded:
        raise ConvertError(f"{captions}: none of the {len(ids)} images could be converted; nothing was written")
    texts: dict[str, list[int]] = {}
    for _, img, cap in rows:
        if img not in skipped:
            lst = texts.setdefault(cap.strip(), [])
            if ids[img] not in lst:
                lst.append(ids[img])
    out_dir.mkdir(parents=True, exist_ok=True)
    formats.write_imgs_tsv(formats.imgs_tsv(out_dir, split), encoded.items())
    formats.write_texts_jsonl(formats.texts_jsonl(out_dir, split),
                              ((start_text_id + k, t, iids) for k, (t, iids) in enumerate(texts.items())))
    formats.write_lines_atomic(out_dir / f"{split}_id_map.tsv",
                               (f"{iid}\t{img}" for img, iid in ids.items() if img not in skipped))
    for msg in skipped.values():
        print(f"skipped: {msg}", file=sys.stderr)
    return {"images": len(encoded), "texts": len(texts), "pairs": sum(map(len, texts.values())),
            "skipped": len(skipped)}


def convert_class_folders(src: str | os.PathLike, out_dir: str | os.PathLike, labels: str | os.PathLike | None = None,
                          split: str = "test") -> dict[str, int]:
    """`src/<class>/*.jpg` -> `out_dir/label_cn.txt` + `out_dir/<split>/000/...` (cn_clip / ELEVATER layout).

    Class order: the lines of `labels` (`folder<TAB>中文名` or just `folder`), else sorted folder names,
    which then double as the Chinese class names. Files are checked to open as images, then copied.
    """
    src, out_dir = Path(src), Path(out_dir)
    folders = sorted(p.name for p in src.iterdir() if p.is_dir())
    if labels:
        entries = [ln.split("\t") for ln in Path(labels).read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
        order = [(e[0].strip(), (e[1] if len(e) > 1 else e[0]).strip()) for e in entries]
        unknown = [f for f, _ in order if f not in folders]
        if unknown:
            raise ConvertError(f"{labels}: class folder(s) {unknown} not found in {src}")
    else:
        order = [(f, f) for f in folders]
    if not order:
        raise ConvertError(f"{src} has no class sub-folders")
    tmp = fileio.make_temp_dir(out_dir)
    try:
        n_images = 0
        for k, (folder, _) in enumerate(order):
            dst = tmp / split / f"{k:03d}"
            dst.mkdir(parents=True)
            for f in sorted((src / folder).iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                try:
                    formats.open_image(f.read_bytes(), verify=True)
                except ValueError as e:
                    raise ConvertError(f"{f}: {e}") from None
                shutil.copyfile(f, dst / f.name)
                n_images += 1
        formats.write_lines_atomic(tmp / "label_cn.txt", [name for _, name in order])
        if out_dir.exists():
            raise ConvertError(f"{out_dir} already exists; remove it first")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"classes": len(order), "images": n_images}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cnclip-edu convert", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("captions", help="image files + captions (CSV / JSONL) -> MUGE TSV + JSONL")
    c.add_argument("--images", required=True, help="folder the image paths are relative to")
    c.add_argument("--captions", required=True, help="CSV (image,caption) or JSONL")
    c.add_argument("--out", "--data-dir", "--data_dir", dest="out", required=True)
    c.add_argument("--split", default="train")
    c.add_argument("--max-side", "--max_side", dest="max_side", type=int, default=None, action=InRange, lo=1)
    c.add_argument("--quality", type=int, default=95, action=InRange, lo=1, hi=100,
                   help="JPEG quality of the re-encoded images")
    ids = dict(type=int, default=1, action=InRange, lo=formats.ID_MIN, hi=formats.ID_MAX)
    c.add_argument("--start-image-id", "--start_image_id", dest="start_image_id", **ids)
    c.add_argument("--start-text-id", "--start_text_id", dest="start_text_id", **ids)
    c.add_argument("--on-error", "--on_error", dest="on_error", choices=("fail", "skip"), default="fail")
    f = sub.add_parser("folders", help="class folders -> zero-shot layout (label_cn.txt + test/000/...)")
    f.add_argument("--src", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--labels", default=None, help="lines 'folder<TAB>中文名' giving order and names")
    f.add_argument("--split", default="test")
    a = p.parse_args(argv)
    try:
        if a.what == "captions":
            r = convert_captions(a.images, a.captions, a.out, a.split, a.max_side, a.quality, a.start_image_id,
                                 a.start_text_id, a.on_error)
        else:
            r = convert_class_folders(a.src, a.out, a.labels, a.split)
    except (ConvertError, FileNotFoundError) as e:
        print(f"cnclip-edu convert: {e}", file=sys.stderr)
        return 1
    print(", ".join(f"{k}: {v}" for k, v in r.items()) + f" -> {a.out}")
    return 0
