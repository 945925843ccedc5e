"""Feature extraction: encode an image or text set once, keep the L2-normalized features on disk.

    cnclip-edu extract-features --extract-image-feats --extract-text-feats \
        --image-data data/toy/lmdb/test/imgs --text-data data/toy/test_texts.jsonl --resume model_dir

Retrieval and recall then work on these files only, so the model runs once per split.
Two on-disk forms:
- cn_clip's JSONL, one `{"image_id": 7, "feature": [...]}` (or `"text_id"`) per line, with cn_clip's
  file names (`test_imgs.img_feat.jsonl`, `test_texts.txt_feat.jsonl`): readable, and what
  cn_clip's `make_topk_predictions.py` reads;
- a compact binary form for large galleries: `<stem>.npy` (float16 or float32, shape (N, D)) plus
  `<stem>.ids.npy` (int64, shape (N,)). It is memory-mapped on read, so a million-image gallery
  costs no RAM until top-k touches a chunk of it (float16 halves the disk and page-cache size).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from cnclip_edu.cli import InRange
from cnclip_edu.data.formats import UniqueIds, check_id
from cnclip_edu.fileio import atomic_open

ID_KEYS = ("image_id", "text_id")
PRECISIONS = ("amp", "fp16", "bf16", "fp32")


# ----------------------------------------------------------------------------- save / load
def _npy_ids_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(".npy")] + ".ids.npy")


def save_features(path: str | os.PathLike, ids, feats, kind: str = "image", dtype: str = "float32") -> Path:
    """Write features to `path`: `.jsonl` (cn_clip's format) or `.npy` (+ `.ids.npy`).

    kind: "image" or "text" (the JSONL id key); dtype: on-disk dtype of the `.npy` form.
    """
    path = Path(path)
    ids = np.asarray(ids, dtype=np.int64)
    feats = np.asarray(feats)
    if feats.ndim != 2 or len(ids) != len(feats):
        raise ValueError(f"{path}: need ids (N,) and feats (N, D); got {ids.shape} and {feats.shape}")
    if kind not in ("image", "text"):
        raise ValueError(f"kind must be 'image' or 'text', not {kind!r}")
    if path.suffix == ".npy":
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be float16 or float32, not {dtype!r}")
        with atomic_open(_npy_ids_path(path), "wb") as f:
            np.save(f, ids)
        with atomic_open(path, "wb") as f:
            np.save(f, feats.astype(dtype, copy=False))
        return path
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: feature files end in .jsonl or .npy")
    key = f"{kind}_id"
    with atomic_open(path) as f:
        for i, row in zip(ids.tolist(), feats.astype(np.float32, copy=False).tolist()):
            f.write(json.dumps({key: i, "feature": row}) + "\n")
    return path


def _duplicate_rows(ids: np.ndarray) -> tuple[int, int] | None:
    """Two rows holding the same id (the first such pair in id order), or None."""
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    return (int(order[same[0]]), int(order[same[0] + 1])) if len(same) else None


def first_nonfinite_row(feats: np.ndarray, chunk: int = 65536) -> int | None:
    """Index of the first row holding NaN or inf (read chunk by chunk: `feats` may be a memmap)."""
    for start in range(0, len(feats), chunk):
        bad = np.flatnonzero(~np.isfinite(np.asarray(feats[start:start + chunk])).all(axis=1))
        if len(bad):
            return start + int(bad[0])
    return None


def _load_npy(path: Path, mmap: bool) -> tuple[np.ndarray, np.ndarray]:
    ids_path = _npy_ids_path(path)
    if not ids_path.exists():
        raise FileNotFoundError(f"{path}: its ids file {ids_path.name} is missing")
    feats = np.load(path, mmap_mode="r" if mmap else None)
    ids = np.load(ids_path)
    if feats.ndim != 2 or ids.shape != (len(feats),):
        raise ValueError(f"{path}: feats {feats.shape} and ids {ids.shape} ({ids_path.name}) do not match")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{ids_path}: ids must be integers, not {ids.dtype}")
    if ids.dtype.kind == "u" and len(ids) and ids.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(ids > np.iinfo(np.int64).max))
        check_id(int(ids[row]), f"{ids_path}: row {row}")  # raises: the id does not fit in 64 bits
    ids = ids.astype(np.int64, copy=False)
    dup = _duplicate_rows(ids)
    if dup:
        raise ValueError(f"{ids_path}: rows {dup[0]} and {dup[1]} hold the same id {ids[dup[0]]}")
    return ids, feats


def load_features(path: str | os.PathLike, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read a feature file -> (ids int64 (N,), feats (N, D)). `.npy` is memory-mapped (read-only).

    Ids are checked as they enter (integers within int64, each once), naming file and line (row for
    `.npy`); a JSONL feature holding NaN or inf is refused here too (for a memory-mapped `.npy`,
    `topk` names the row when it meets one: checking here would read the whole gallery twice).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"feature file not found: {path}")
    if path.suffix == ".npy":
        return _load_npy(path, mmap)
    ids, rows, lines, key, dim, seen = [], [], [], None, None, None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
            if key is None:
                key = next((k for k in ID_KEYS if k in obj), None)
                if key is None:
                    raise ValueError(f"{where}: expected an 'image_id' or 'text_id' field")
                seen = UniqueIds(key)
            if key not in obj or "feature" not in obj:
                raise ValueError(f"{where}: expected fields {key!r} and 'feature'")
            ids.append(seen.add(obj[key], where))
            feat = obj["feature"]
            if not isinstance(feat, list) or (dim is not None and len(feat) != dim):
                raise ValueError(f"{where}: feature must be a list of {dim or 'D'} numbers")
            dim = len(feat)
            rows.append(feat)
            lines.append(lineno)
    if not ids:
        raise ValueError(f"{path}: no features in file")
    try:
        feats = np.asarray(rows, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: a feature holds something that is not a number") from None
    bad = first_nonfinite_row(feats)
    if bad is not None:
        raise ValueError(f"{path}:{lines[bad]}: the feature of {key} {ids[bad]} holds NaN or inf "
                         "(re-extract it: a zero-norm feature gives NaN)")
    return np.asarray(ids, dtype=np.int64), feats


# ----------------------------------------------------------------------------- extraction
def _autocast(device: str, precision: str):
    """Mixed precision where it exists (CUDA); fp32 elsewhere, saying what was skipped."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if not str(device).startswith("cuda"):
        warnings.warn(f"precision {precision!r} is for CUDA; on {device} we skip it and compute in fp32", stacklevel=3)
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _extract(encode, dataset, batch_size: int, device: str, precision: str, num_workers: int,
             desc: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=str(device).startswith("cuda"))
    ids, feats = [], []
    with torch.no_grad(), _autocast(device, precision):
        for batch_ids, x in tqdm(loader, desc=desc, unit="batch", disable=not progress):
            f = encode(x.to(device, non_blocking=True)).float()  # (B, D)
            f = f / f.norm(dim=-1, keepdim=True)
            ids.append(torch.as_tensor(batch_ids).reshape(-1).long().numpy())
            feats.append(f.cpu().numpy())
    if not ids:
        raise ValueError(f"{desc}: the dataset is empty")
    return np.concatenate(ids), np.concatenate(feats).astype(np.float32, copy=False)


def extract_image_features(model, dataset, batch_size: int = 64, device: str = "cpu", precision: str = "fp32",
                           num_workers: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Encode every `(image_id, image_tensor)` of `dataset` -> (ids (N,), L2-normalized feats (N, D)).

    progress: a tqdm bar (the CLI); notebooks pass False for work of a few seconds, whose bar would
    stay frozen at 0 % in a saved notebook.
    """
    model.eval()
    return _extract(model.encode_image, dataset, batch_size, device, precision, num_workers, "image features",
                    progress)


def extract_text_features(model, dataset, batch_size: int = 64, device: str = "cpu", precision: str = "fp32",
                          num_workers: int = 0, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Encode every `(text_id, tokens)` of `dataset` -> (ids (N,), L2-normalized feats (N, D)); progress as above."""
    model.eval()
    return _extract(model.encode_text, dataset, batch_size, device, precision, num_workers, "text features",
                    progress)


def image_resolution(model) -> int:
    """The square input size of the model's vision tower (to build the eval transform)."""
    for path in ("image_resolution", "config.vision.image_resolution", "visual.input_resolution",
                 "visual.image_size"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return int(obj[0] if isinstance(obj, (tuple, list)) else obj)
    raise AttributeError("cannot tell the model's image resolution (no config.vision.image_size)")


def load_model(resume: str | None, vision_model: str | None = None, text_model: str | None = None,
               device: str = "cpu"):
    """The command-line tools' model: `cc.load(resume)` (a checkpoint path or a model name), else a
    random `vision_model@text_model` with a warning (only useful to test a pipeline); a vision model
    alone means its released pairing (ViT-Course -> ViT-Course@RBT-Course)."""
    import cnclip_edu as cc
    from cnclip_edu.model.clip import model_name_from_flags

    if resume:
        model, _ = cc.load(resume, device=device)
        return model.eval()
    name = model_name_from_flags(vision_model, text_model)
    warnings.warn(f"no --resume given: using a RANDOMLY initialized {name}; "
                  "its features are meaningless except for testing the pipeline", stacklevel=2)
    return cc.create_model(name).to(device).eval()


# ----------------------------------------------------------------------------- output names
def default_feature_path(data_path: str | os.PathLike, kind: str, fmt: str = "jsonl") -> Path:
    """cn_clip's names: `<dir>/test_texts.jsonl` -> `<dir>/test_texts.txt_feat.jsonl`, and the image
    features of `<dir>/lmdb/test/imgs` (or `<dir>/test_imgs.tsv`) -> `<dir>/test_imgs.img_feat.jsonl`."""
    p = Path(data_path)
    if kind == "text":
        stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
        return p.with_name(f"{stem}.txt_feat.{fmt}")
    if p.suffix == ".tsv":
        return p.with_name(f"{p.stem}.img_feat.{fmt}")
    # LMDB layout <dataset>/lmdb/<split>/imgs
    split_dir = p.parent if p.name == "imgs" else p
    dataset_dir = split_dir.parent.parent if split_dir.parent.name == "lmdb" else split_dir.parent
    return dataset_dir / f"{split_dir.name}_imgs.img_feat.{fmt}"


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cnclip-edu extract-features", description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract-image-feats", "--extract_image_feats", action="store_true")
    ap.add_argument("--extract-text-feats", "--extract_text_feats", action="store_true")
    ap.add_argument("--image-data", "--image_data", help="LMDB images dir (<ds>/lmdb/<split>/imgs) or <split>_imgs.tsv")
    ap.add_argument("--text-data", "--text_data", help="<split>_texts.jsonl")
    ap.add_argument("--image-feat-output-path", "--image_feat_output_path", default=None)
    ap.add_argument("--text-feat-output-path", "--text_feat_output_path", default=None)
    ap.add_argument("--img-batch-size", "--img_batch_size", type=int, default=64, action=InRange, lo=1)
    ap.add_argument("--text-batch-size", "--text_batch_size", type=int, default=64, action=InRange, lo=1)
    ap.add_argument("--context-length", "--context_length", type=int, default=52, action=InRange, lo=2)
    ap.add_argument("--resume", default=None,
                    help="checkpoint to load (cn_clip .pt, HF folder, ours, or a model name for cc.load)")
    ap.add_argument("--vision-model", "--vision_model", default="ViT-B-16")
    ap.add_argument("--text-model", "--text_model", default=None,
                    help="default: the vision model's released pairing (RoBERTa-wwm-ext-base-chinese for ViT-B-16)")
    ap.add_argument("--precision", choices=PRECISIONS, default=None,
                    help="amp/fp16/bf16 apply on CUDA only (default: amp on CUDA, fp32 elsewhere; "
                         "asking for one on a CPU warns that it is skipped)")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    ap.add_argument("--format", choices=("jsonl", "npy"), default="jsonl")
    ap.add_argument("--npy-dtype", choices=("float16", "float32"), default="float16",
                    help="on-disk dtype of the npy form")
    ap.add_argument("--num-workers", "--num_workers", type=int, default=0, action=InRange, lo=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if not (args.extract_image_feats or args.extract_text_feats):
        print("extract-features: give --extract-image-feats and/or --extract-text-feats", file=sys.stderr)
        return 2
    for flag, on, data in (("image", args.extract_image_feats, args.image_data),
                           ("text", args.extract_text_feats, args.text_data)):
        if on and not (data and Path(data).exists()):
            print(f"extract-features: --{flag}-data {data!r} does not exist", file=sys.stderr)
            return 2
    import torch

    from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.precision is None:  # the default warns about nothing: amp where it exists, fp32 where it does not
        args.precision = "amp" if str(device).startswith("cuda") else "fp32"
    try:  # the input files first (ids checked: integers within int64, each once), then the model
        texts = EvalTextDataset(args.text_data, args.context_length) if args.extract_text_feats else None
        model = load_model(args.resume, args.vision_model, args.text_model, device)
        images = EvalImageDataset(args.image_data, image_resolution(model)) if args.extract_image_feats else None
    except ValueError as e:
        print(f"extract-features: {e}", file=sys.stderr)
        return 1
    if texts is not None and args.context_length > model.max_context_length:
        ap.exit(2, f"{ap.prog}: --context-length must be <= {model.max_context_length} (the positions of the "
                   f"model's text tower), got {args.context_length}\n")
    dtype = args.npy_dtype if args.format == "npy" else "float32"
    if texts is not None:
        ids, feats = extract_text_features(model, texts, args.text_batch_size, device, args.precision, args.num_workers)
        out = args.text_feat_output_path or default_feature_path(args.text_data, "text", args.format)
        save_features(out, ids, feats, "text", dtype)
        print(f"{len(ids)} text features ({feats.shape[1]}-d) -> {out}")
    if images is not None:
        ids, feats = extract_image_features(model, images, args.img_batch_size, device, args.precision,
                                            args.num_workers)
        out = args.image_feat_output_path or default_feature_path(
            args.image_data if not args.text_data else args.text_data.replace("_texts.jsonl", "_imgs.tsv"),
            "image", args.format)
        save_features(out, ids, feats, "image", dtype)
        print(f"{len(ids)} image features ({feats.shape[1]}-d) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
