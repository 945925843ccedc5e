"""Bring your own data: image files + captions -> MUGE format; class folders -> zero-shot layout.

    cnclip-edu convert captions --images DIR --captions caps.csv --out D [--split train] [--max-side 512] [--quality 95]
    cnclip-edu convert folders --src DIR --out D/zeroshot/mytask [--labels names.txt]
    cnclip-edu build-lmdb --data-dir D --splits train,valid      # then, as for MUGE

Captions: a CSV with a header holding `image` and `caption` (or `text`) columns, or a JSONL with
`{"image": "a.jpg", "caption": "..."}` / `{"image": ..., "captions": [...]}`; one image may appear
on several rows. An optional `split` column (JSONL key) says which split each row belongs to, so one
folder with one captions file gives train, valid and test at once; without it, `--split` (default
train) takes every row. Images are decoded, EXIF-rotated (phones store portrait photos sideways plus a
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
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple

from PIL import Image, ImageOps
from tqdm.auto import tqdm

from cnclip_edu import fileio
from cnclip_edu.cli import InRange

from . import formats
from .transforms import to_rgb

_SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ConvertError(ValueError):
    pass


class CaptionRow(NamedTuple):
    line: int          # line in the captions file (for error messages)
    image: str         # image path, relative to the images folder
    caption: str
    split: str | None  # from a `split` column / key; None when the file has none


def read_captions(path: str | os.PathLike) -> list[CaptionRow]:
    """Rows of a CSV (header: image, caption|text[, split]) or a JSONL file ({"image", "caption"|"captions"[, "split"]})."""
    path = Path(path)
    try:
        return _read_captions(path)
    except UnicodeDecodeError as e:  # e.g. a CSV saved by Excel in a legacy code page (GBK)
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ConvertError(f"{path}:{line}: not UTF-8 text ({e.reason}); save the file as UTF-8 "
                           "(Excel: 'CSV UTF-8')") from None


def _read_captions(path: Path) -> list[CaptionRow]:
    rows: list[CaptionRow] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        with open(path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConvertError(f"{path}:{n}: not valid JSON ({e.msg})") from None
                caps = obj.get("captions", [obj.get("caption", obj.get("text"))]) if isinstance(obj, dict) else None
                if caps is None or "image" not in obj or not isinstance(caps, list):
                    raise ConvertError(f"{path}:{n}: expected keys 'image' and 'caption' (or 'captions': [...])")
                rows += [CaptionRow(n, str(obj["image"]), c, obj.get("split")) for c in caps]
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            col = "caption" if "caption" in fields else "text" if "text" in fields else None
            if "image" not in fields or col is None:
                raise ConvertError(f"{path}:1: the CSV header must name an 'image' and a 'caption' (or 'text') "
                                   f"column, found {fields}")
            has_split = "split" in fields
            for n, r in enumerate(reader, 2):
                if r.get(None):  # DictReader puts fields beyond the header under the key None
                    raise ConvertError(f"{path}:{n}: {len(fields) + len(r[None])} fields for a {len(fields)}-column "
                                       "header (a caption with a comma must be quoted: \"a, b\")")
                rows.append(CaptionRow(n, r["image"] or "", r[col], (r["split"] or "") if has_split else None))
    for n, img, cap, split in rows:
        if not isinstance(cap, str) or not cap.strip():
            raise ConvertError(f"{path}:{n}: empty caption for image {img!r}")
        if not img:
            raise ConvertError(f"{path}:{n}: empty image path")
        if split is not None and not (isinstance(split, str) and _SPLIT_NAME.fullmatch(split)):
            raise ConvertError(f"{path}:{n}: bad split {split!r} (letters, digits, '_' or '-', e.g. train / valid)")
    return rows


def caption_records(rows: Iterable[tuple[str, str]], image_ids: Mapping[str, int],
                    start_text_id: int = 1) -> list[dict]:
    """(image, caption) rows in file order -> MUGE text records `{"text_id", "text", "image_ids"}`.

    Identical captions (after stripping spaces) become one text listing every image they describe,
    in the order first seen, each image once; text ids count up from `start_text_id` in that order.
    """
    texts: dict[str, list[int]] = {}
    for img, cap in rows:
        iids = texts.setdefault(cap.strip(), [])
        if image_ids[img] not in iids:
            iids.append(image_ids[img])
    return [{"text_id": start_text_id + k, "text": t, "image_ids": iids} for k, (t, iids) in enumerate(texts.items())]


def prepare_image(path: str | os.PathLike, max_side: int | None = None, quality: int = 95) -> str:
    """Image file -> base64 JPEG: EXIF orientation applied, RGB, longer side <= max_side."""
    data = Path(path).read_bytes()
    img = formats.open_image(data, verify=True)
    img = ImageOps.exif_transpose(img)
    img = to_rgb(img)
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return formats.encode_image(img, "JPEG", quality=quality)


def write_splits(out_dir: str | os.PathLike, rows: Iterable[tuple[str, str, str]], image_ids: Mapping[str, int],
                 encode: Callable[[str], str], start_text_id: int = 1,
                 splits: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """(image, caption, split) rows in file order -> `{split}_imgs.tsv`, `_texts.jsonl`, `_id_map.tsv` per split.

    Splits in the order first seen (or `splits`: one whose rows all went is written empty). Each split's
    images are its own, in the order first seen there, as `image_ids[image]<TAB>encode(image)`; its texts are
    `caption_records` of its rows, text ids running on from the previous split; the id map lists
    `id<TAB>file` in the imgs.tsv order. -> per split {"images", "texts", "pairs"}.
    """
    out_dir = Path(out_dir)
    rows = list(rows)
    report: dict[str, dict[str, int]] = {}
    next_text_id = start_text_id
    for name in dict.fromkeys(r[2] for r in rows) if splits is None else splits:
        kept = [(img, cap) for img, cap, split in rows if split == name]
        images = list(dict.fromkeys(img for img, _ in kept))
        texts = caption_records(kept, image_ids, next_text_id)
        next_text_id += len(texts)
        formats.write_imgs_tsv(formats.imgs_tsv(out_dir, name), ((image_ids[img], encode(img)) for img in images))
        formats.write_texts_jsonl(formats.texts_jsonl(out_dir, name),
                                  ((t["text_id"], t["text"], t["image_ids"]) for t in texts))
        formats.write_lines_atomic(out_dir / f"{name}_id_map.tsv", (f"{image_ids[img]}\t{img}" for img in images))
        report[name] = {"images": len(images), "texts": len(texts), "pairs": sum(len(t["image_ids"]) for t in texts)}
    return report


def convert_captions(images_dir: str | os.PathLike, captions: str | os.PathLike, out_dir: str | os.PathLike,
                     split: str | None = None, max_side: int | None = None, quality: int = 95,
                     start_image_id: int = 1, start_text_id: int = 1, on_error: str = "fail",
                     progress: bool = True) -> dict[str, dict[str, int]]:
    """Write `{split}_imgs.tsv`, `{split}_texts.jsonl` and `{split}_id_map.tsv` into `out_dir`; -> counts per split.

    Splits: a `split` column in the captions file routes each row (all splits are written, or only
    `split` if given); without that column every row goes to `split` (default "train"). Ids are
    numbered over the whole file in the order first seen, so a photo used in two splits keeps one id.
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    rows = [r if r.split is not None else r._replace(split=split or "train") for r in read_captions(captions)]
    if split is not None:
        rows = [r for r in rows if r.split == split]
        if not rows:
            raise ConvertError(f"{captions}: no row has split {split!r}")
    ids: dict[str, int] = {}
    for r in rows:
        ids.setdefault(r.image, start_image_id + len(ids))
    n_texts = len({(r.split, r.caption.strip()) for r in rows})  # text ids run on across splits
    for start, n, what in ((start_image_id, len(ids), "image"), (start_text_id, n_texts, "text")):
        problem = formats.id_problem(start + n - 1, f"the last {what} id")
        if problem:
            raise ConvertError(f"--start-{what}-id {start} with {n} {what}s: {problem}")
    encoded: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for img in tqdm(ids, desc="convert images", disable=not progress):
        try:
            encoded[img] = prepare_image(images_dir / img, max_side, quality)
        except (OSError, ValueError) as e:
            line = next(r.line for r in rows if r.image == img)
            msg = f"{captions}:{line}: image {img!r}: {e}"
            if on_error != "skip":
                raise ConvertError(msg) from None
            skipped[img] = msg
    if not encoded:
        raise ConvertError(f"{captions}: none of the {len(ids)} images could be converted; nothing was written")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = write_splits(out_dir, [(r.image, r.caption, r.split) for r in rows if r.image not in skipped], ids,
                          encoded.__getitem__, start_text_id, splits=dict.fromkeys(r.split for r in rows))
    for name, counts in report.items():
        counts["skipped"] = len({r.image for r in rows if r.split == name and r.image in skipped})
    for msg in skipped.values():
        print(f"skipped: {msg}", file=sys.stderr)
    return report


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
    c.add_argument("--split", default=None, help="only this split of a file with a 'split' column; "
                   "without that column, the split every row goes to (default: train)")
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
    for name, counts in (r.items() if a.what == "captions" else [(None, r)]):
        print((f"{name}: " if name else "") + ", ".join(f"{k}: {v}" for k, v in counts.items()) + f" -> {a.out}")
    return 0
