"""Validate a MUGE-format dataset, then serialise it into cn_clip's LMDB layout.

    cnclip-edu build-lmdb --data-dir D --splits train,valid,test [--lmdb-dir L] [--on-error fail|skip] [--overwrite]
    (cn_clip's spellings --data_dir / --lmdb_dir work too)

Layout (identical to cn_clip's `preprocess/build_lmdb_dataset.py`, so either side reads the other's):
`L/{split}/imgs`: b"<image_id>" -> base64 bytes, plus b"num_images"; `L/{split}/pairs`:
b"0".."N-1" -> pickle((image_id, text_id, text)), one record per gold image of each text, in file
order, plus b"num_samples". What we do better: everything is validated before anything is
written (errors name file, line and id); the build goes to a temporary folder renamed into place
at the end (an interrupted or failed build leaves the old LMDB untouched, and the next build
removes what a killed one left behind); an existing LMDB is only replaced with `overwrite=True`,
and never by an empty one; and the map grows on demand instead of reserving 1 TiB.

Interruptions: the processes that decode images die with the build, even when it is SIGKILLed
(`pool.py`); Ctrl-C or SIGTERM (`cnclip-edu` turns it into the same exception) stop it cleanly:
workers stopped, temporary folder removed, exit code 130 / 143.
"""
from __future__ import annotations

import argparse
import binascii
import contextlib
import json
import os
import sys
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cnclip_edu import fileio
from cnclip_edu.cli import InRange
from cnclip_edu.cli import require

from . import formats
from .pool import worker_pool

lmdb = require("lmdb", "building an LMDB")

_BOM = b"\xef\xbb\xbf"
MAX_SHOWN_ERRORS = 20


class DataValidationError(ValueError):
    """The dataset has bad records; `.issues` lists them all."""

    def __init__(self, issues: list["Issue"]):
        self.issues = issues
        kinds = Counter(i.kind for i in issues)
        shown = "\n".join(f"  {i}" for i in issues[:MAX_SHOWN_ERRORS])
        more = f"\n  ... and {len(issues) - MAX_SHOWN_ERRORS} more" if len(issues) > MAX_SHOWN_ERRORS else ""
        summary = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()))
        super().__init__(f"{len(issues)} bad record(s) ({summary}); nothing was written.\n{shown}{more}\n"
                         "Fix them, or pass on_error='skip' (--on-error skip) to leave them out.")


class EmptyResultError(ValueError):
    """A split would come out with nothing to train or search on; nothing was written."""


@dataclass
class Issue:
    kind: str
    file: str
    line: int
    message: str
    id: object = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f" (id {self.id})" if self.id is not None else "")
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class SplitPlan:
    """What validation found in one split: which lines to write, and which ids to drop."""
    split: str
    images: int = 0
    texts: int = 0
    pairs: int = 0
    bad_img_lines: set = field(default_factory=set)
    bad_txt_lines: set = field(default_factory=set)
    drop_ids: dict = field(default_factory=dict)  # text line -> image ids to leave out
    issues: list = field(default_factory=list)
    blank_lines: int = 0
    long_texts: int = 0


def _lines(path: Path):
    """(line number, bytes without line ending); BOM and CRLF tolerated."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            yield n, raw.rstrip(b"\r\n")


def _check_payload(b64: bytes, max_pixels: int) -> tuple[str, str] | None:
    """(kind, message) if the base64 or the image inside is bad, else None."""
    try:
        data = formats.decode_b64(b64, strict=True)
    except (binascii.Error, ValueError) as e:
        return "bad_base64", f"invalid base64 ({e})"
    try:
        formats.open_image(data, max_pixels=max_pixels, verify=True)
    except ValueError as e:
        return "bad_image", str(e)
    return None


def _check_chunk(args: tuple[list[bytes], int]) -> list[tuple[str, str] | None]:
    chunk, max_pixels = args
    return [_check_payload(b, max_pixels) for b in chunk]


def _check_images(path: Path, plan: SplitPlan, max_pixels: int, progress: bool, workers: int) -> set[int]:
    """Structure (line, id, duplicates) in order here; base64 + full image decode, the slow part,
    in chunks, in `workers` processes for big files (a MUGE train TSV holds ~10 GB of JPEG)."""
    first_line: dict[int, int] = {}
    valid: set[int] = set()
    name = path.name
    chunk: list[tuple[int, int, bytes]] = []
    in_flight: deque = deque()

    def bad(n, kind, msg, id_=None):
        plan.issues.append(Issue(kind, name, n, msg, id_))
        plan.bad_img_lines.add(n)

    def collect(block, results):
        for (n, iid, _), res in zip(block, results):
            if res is None:
                valid.add(iid)
            else:
                bad(n, res[0], res[1], iid)

    def submit():
        nonlocal chunk
        args = ([b for _, _, b in chunk], max_pixels)
        in_flight.append((chunk, pool.submit(_check_chunk, args) if pool else _check_chunk(args)))
        chunk = []
        while in_flight and (not pool or len(in_flight) > 2 * workers):
            block, fut = in_flight.popleft()
            collect(block, fut.result() if pool else fut)

    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"check {name}", disable=not progress)
    with bar, worker_pool(workers) if workers > 1 else contextlib.nullcontext() as pool:
        for n, raw in _lines(path):
            bar.update(len(raw) + 1)
            if not raw.strip():
                plan.blank_lines += 1
                continue
            parts = raw.split(b"\t")
            if len(parts) != 2:
                bad(n, "bad_line", f"expected 'image_id<TAB>base64', found {len(parts)} tab-separated field(s)")
                continue
            problem = formats.id_problem(parts[0], "image id", text=True)
            if problem:
                bad(n, "bad_id", problem)
                continue
            iid = int(parts[0])
            if iid in first_line:
                bad(n, "duplicate_image_id", f"image id {iid} already on line {first_line[iid]}", iid)
                continue
            first_line[iid] = n
            chunk.append((n, iid, parts[1]))
            if len(chunk) >= 256:
                submit()
        submit()
        while in_flight:
            block, fut = in_flight.popleft()
            collect(block, fut.result() if pool else fut)
    plan.issues.sort(key=lambda i: i.line)
    plan.images = len(valid)
    return valid


def _check_texts(path: Path, plan: SplitPlan, image_ids: set[int]) -> None:
    name = path.name
    seen: dict[int, int] = {}
    for n, raw in _lines(path):
        if not raw.strip():
            plan.blank_lines += 1
            continue

        def bad(kind, msg, id_=None):
            plan.issues.append(Issue(kind, name, n, msg, id_))
            plan.bad_txt_lines.add(n)

        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            bad("bad_utf8", f"not valid UTF-8 ({e.reason} at byte {e.start})")
            continue
        except json.JSONDecodeError as e:
            bad("bad_json", f"not valid JSON ({e.msg}, column {e.colno})")
            continue
        if not isinstance(obj, dict):
            bad("bad_json", f"expected a JSON object, got {type(obj).__name__}")
            continue
        tid = obj.get("text_id")
        problem = formats.id_problem(tid, "text_id")
        if problem:
            bad("bad_text_id", problem)
            continue
        if tid in seen:
            bad("duplicate_text_id", f"text_id {tid} already on line {seen[tid]}", tid)
            continue
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            bad("empty_text", f"text must be a non-empty string, got {text!r:.40}", tid)
            continue
        ids = obj.get("image_ids")
        if not isinstance(ids, list):
            bad("bad_image_ids", f"image_ids must be a list of integers, got {ids!r:.60}", tid)
            continue
        problem = next((p for p in (formats.id_problem(i, "image id") for i in ids) if p), None)
        if problem:
            bad("bad_image_ids", f"image_ids: {problem}", tid)
            continue
        missing = [i for i in ids if i not in image_ids]
        for i in missing:
            plan.issues.append(Issue("missing_image", name, n, f"text {tid} refers to image {i}, "
                                     f"absent from (or invalid in) {plan.split}_imgs.tsv", i))
        if missing:
            plan.drop_ids[n] = set(missing)
        seen[tid] = n
        plan.texts += 1
        plan.pairs += len(ids) - len(missing)
        plan.long_texts += len(text) > 50


def validate_split(data_dir: str | os.PathLike, split: str, max_pixels: int = formats.MAX_IMAGE_PIXELS,
                   progress: bool = True, workers: int = 0) -> SplitPlan:
    """Check one split's TSV and JSONL; every problem becomes an `Issue` in the returned plan."""
    plan = SplitPlan(split)
    tsv, jsonl = formats.imgs_tsv(data_dir, split), formats.texts_jsonl(data_dir, split)
    for p in (tsv, jsonl):
        if not p.is_file():
            raise FileNotFoundError(f"{p} does not exist (expected MUGE layout: {{split}}_imgs.tsv + {{split}}_texts.jsonl)")
    if workers <= 0:  # processes pay off only when there is a lot to decode
        workers = min(4, os.cpu_count() or 1) if tsv.stat().st_size > 32 << 20 else 1
    image_ids = _check_images(tsv, plan, max_pixels, progress, workers)
    _check_texts(jsonl, plan, image_ids)
    return plan


# ----------------------------------------------------------------------------- writing
class _GrowingWriter:
    """Batched puts into an LMDB whose map doubles whenever it is full (MapFullError -> retry)."""

    def __init__(self, path: Path, map_size: int, batch: int = 1000):
        self.env = lmdb.open(str(path), map_size=map_size, subdir=True, meminit=False, map_async=True)
        self.buf: list[tuple[bytes, bytes]] = []
        self.batch = batch

    def put(self, key: bytes, value: bytes) -> None:
        self.buf.append((key, value))
        if len(self.buf) >= self.batch:
            self.flush()

    def flush(self) -> None:
        while self.buf:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in self.buf:
                        txn.put(k, v)
                self.buf = []
            except lmdb.MapFullError:  # the transaction was aborted: grow the map and redo it
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def close(self) -> None:
        self.flush()
        self.env.sync(True)
        self.env.close()


def _write_split(data_dir: Path, plan: SplitPlan, out: Path, progress: bool) -> None:
    tsv, jsonl = formats.imgs_tsv(data_dir, plan.split), formats.texts_jsonl(data_dir, plan.split)
    start = max(1 << 20, int(tsv.stat().st_size * 1.3))
    imgs = _GrowingWriter(out / "imgs", start)
    n_img = 0
    for n, raw in tqdm(_lines(tsv), desc=f"write {plan.split} imgs", total=None, disable=not progress, unit=" img"):
        if n in plan.bad_img_lines or not raw.strip():
            continue
        sid, b64 = raw.split(b"\t")
        imgs.put(str(int(sid)).encode("utf-8"), b64.strip())
        n_img += 1
    imgs.put(formats.NUM_IMAGES_KEY, str(n_img).encode("utf-8"))
    imgs.close()
    pairs = _GrowingWriter(out / "pairs", max(1 << 20, jsonl.stat().st_size * 4), batch=5000)
    n_pair = 0
    for n, raw in _lines(jsonl):
        if n in plan.bad_txt_lines or not raw.strip():
            continue
        obj = json.loads(raw.decode("utf-8"))
        drop = plan.drop_ids.get(n, ())
        for iid in obj["image_ids"]:
            if iid not in drop:
                pairs.put(str(n_pair).encode("utf-8"), formats.dump_pair(iid, obj["text_id"], obj["text"]))
                n_pair += 1
    pairs.put(formats.NUM_SAMPLES_KEY, str(n_pair).encode("utf-8"))
    pairs.close()
    assert (n_img, n_pair) == (plan.images, plan.pairs), "files changed during the build"


def _empty_reason(plan: SplitPlan) -> str | None:
    """Why `plan` would give an LMDB nobody can use, or None. A split of images and texts without
    gold pairs is fine (cn_clip's test split: `"image_ids": []`); no images, no texts, or pairs
    that all had to be dropped, is not."""
    if plan.images == 0:
        return "no valid image"
    if plan.texts == 0:
        return "no valid text"
    if plan.pairs == 0 and plan.drop_ids:
        return "no pair left (every image the texts refer to is missing or bad)"
    return None


def _clear_stale_temporaries(lmdb_dir: Path, split: str, verbose: bool) -> None:
    """Remove the temporary folders a killed build of `split` left (its process is gone); name the
    ones that may still be in use."""
    removed, kept = fileio.remove_stale_temporaries(lmdb_dir, split)
    if verbose and removed:
        print(f"removed {len(removed)} temporary folder(s) left by an interrupted build: "
              f"{', '.join(map(str, removed))}", file=sys.stderr)
    for p in kept:
        print(f"warning: {p} looks like the temporary folder of another build of {split!r} (still running, or "
              "left by an older version): left alone; delete it if no build is running", file=sys.stderr)


def build_lmdb(data_dir: str | os.PathLike, splits, lmdb_dir: str | os.PathLike | None = None,
               on_error: str = "fail", overwrite: bool = False, max_pixels: int = formats.MAX_IMAGE_PIXELS,
               progress: bool = True, verbose: bool = True, workers: int = 0) -> dict[str, dict]:
    """Validate every split, then build `lmdb_dir/{split}/{imgs,pairs}`. Returns per-split counts.

    workers: processes decoding images during validation (0: up to 4 for TSVs over 32 MB, else 1).
    on_error="fail" raises DataValidationError (listing file, line and id of each problem) before
    anything is written; "skip" leaves bad records out and reports how many of each kind. A split
    left empty raises EmptyResultError, also before anything is written.
    """
    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be >= 1, got {max_pixels}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist")
    splits = [s for s in (splits.split(",") if isinstance(splits, str) else splits) if s.strip()]
    splits = list(dict.fromkeys(s.strip() for s in splits))
    if not splits:
        raise ValueError("no split given (e.g. splits='train,valid,test')")
    lmdb_dir = Path(lmdb_dir) if lmdb_dir else data_dir / "lmdb"
    with contextlib.ExitStack() as locks:  # one builder per split folder, from the existence check to the swap
        for split in splits:
            locks.enter_context(fileio.output_lock(lmdb_dir / split, "LMDB"))
        return _build_locked(data_dir, splits, lmdb_dir, on_error, overwrite, max_pixels, progress, verbose, workers)


def _build_locked(data_dir: Path, splits: list[str], lmdb_dir: Path, on_error: str, overwrite: bool,
                  max_pixels: int, progress: bool, verbose: bool, workers: int) -> dict[str, dict]:
    existing = [lmdb_dir / s for s in splits if (lmdb_dir / s).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"LMDB already exists: {', '.join(map(str, existing))}; "
                              "pass overwrite=True (--overwrite) to replace it")
    for split in splits:
        _clear_stale_temporaries(lmdb_dir, split, verbose)
    plans = [validate_split(data_dir, s, max_pixels, progress, workers) for s in splits]
    issues = [i for p in plans for i in p.issues]
    if issues and on_error == "fail":
        raise DataValidationError(issues)
    empty = [(p, r) for p in plans if (r := _empty_reason(p))]
    if empty:
        lines = [f"  {p.split}: {r} ({p.images} images, {p.texts} texts, {p.pairs} pairs; skipped "
                 f"{dict(Counter(i.kind for i in p.issues)) or 'nothing'})" for p, r in empty]
        kept = f"; {', '.join(map(str, existing))} left as it was" if existing else ""
        raise EmptyResultError("nothing usable to write, so nothing was written" + kept + ":\n" + "\n".join(lines))
    report = {}
    for plan in plans:
        with fileio.atomic_dir(lmdb_dir / plan.split) as tmp:
            _write_split(data_dir, plan, tmp, progress)
        skipped = dict(Counter(i.kind for i in plan.issues))
        report[plan.split] = {"images": plan.images, "texts": plan.texts, "pairs": plan.pairs,
                              "skipped": skipped, "blank_lines": plan.blank_lines, "path": str(lmdb_dir / plan.split)}
        if verbose:
            extra = f"; skipped {skipped}" if skipped else ""
            extra += f"; {plan.long_texts} text(s) over 50 characters (the tokenizer truncates)" if plan.long_texts else ""
            extra += "; no gold pairs (fine for a test split, not for training)" if not plan.pairs else ""
            print(f"{plan.split}: {plan.images} images, {plan.texts} texts, {plan.pairs} pairs -> "
                  f"{lmdb_dir / plan.split}{extra}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cnclip-edu build-lmdb", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", "--data_dir", dest="data_dir", required=True,
                   help="folder with {split}_imgs.tsv and {split}_texts.jsonl")
    p.add_argument("--splits", required=True, help="comma-separated, e.g. train,valid,test")
    p.add_argument("--lmdb-dir", "--lmdb_dir", dest="lmdb_dir", default=None, help="default: DATA_DIR/lmdb")
    p.add_argument("--on-error", "--on_error", dest="on_error", choices=("fail", "skip"), default="fail")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LMDB of the same split")
    p.add_argument("--max-pixels", "--max_pixels", dest="max_pixels", type=int, default=formats.MAX_IMAGE_PIXELS,
                   action=InRange, lo=1)
    p.add_argument("--workers", type=int, default=0, action=InRange, lo=0, help="processes checking images (0: auto)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    a = p.parse_args(argv)
    if not any(s.strip() for s in a.splits.split(",")):
        p.exit(2, f"{p.prog}: --splits must name at least one split, e.g. train,valid,test\n")
    try:
        build_lmdb(a.data_dir, a.splits, a.lmdb_dir, a.on_error, a.overwrite, a.max_pixels, a.progress,
                   workers=a.workers)
    except (DataValidationError, EmptyResultError, FileExistsError, FileNotFoundError, fileio.OutputError,
            fileio.OutputLocked) as e:
        print(f"{p.prog}: {e}", file=sys.stderr)
        return 1
    return 0
