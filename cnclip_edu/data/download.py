"""Download the real evaluation data that cn_clip's authors publish (needs network).

    cnclip-edu download muge --out ${DATAPATH}/datasets             # MUGE, pre-built LMDB + TSV/JSONL
    cnclip-edu download flickr30k-cn --out ${DATAPATH}/datasets
    cnclip-edu download cifar-100 --out ${DATAPATH}/datasets         # any ELEVATER zero-shot set
    cnclip-edu download muge --from-zip ~/Downloads/MUGE.zip --out ...   # offline: just unpack

They live as zip files in the Hugging Face dataset repo `OFA-Sys/chinese-clip-eval` (MUGE.zip,
Flickr30k-CN.zip, cifar-100.zip, ...), unpacked they give the MUGE layout (with `lmdb/`) or the
zero-shot layout (`label_cn.txt` + `test/000/...`). Offline (`HF_HUB_OFFLINE=1` or no network)
we fail fast with a message saying where to get the file by hand.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import zipfile
from pathlib import Path

from cnclip_edu import fileio
from cnclip_edu.model.hub import DownloadError, _offline

REPO_ID = "OFA-Sys/chinese-clip-eval"
RETRIEVAL = {"muge": "MUGE.zip", "flickr30k-cn": "Flickr30k-CN.zip"}
# The 20 ELEVATER image-classification sets as named in cn_clip's zero-shot docs and scripts.
ELEVATER = ["caltech-101", "cifar-10", "cifar-100", "country211", "dtd", "eurosat_clip", "fer-2013",
            "fgvc-aircraft-2013b-variants102", "food-101", "gtsrb", "hateful-memes", "kitti-distance", "mnist",
            "oxford-flower-102", "oxford-iiit-pets", "patch-camelyon", "rendered-sst2", "resisc45_clip",
            "stanford-cars", "voc-2007-classification"]


def zip_name(name: str) -> str:
    key = name.lower()
    if key in RETRIEVAL:
        return RETRIEVAL[key]
    if key in ELEVATER:
        return f"{key}.zip"
    raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(RETRIEVAL) + ELEVATER}")


def _manual_hint(filename: str) -> str:
    url = f"https://huggingface.co/datasets/{REPO_ID}/resolve/main/{filename}"
    return (f"Download {url} on a machine with network, then unpack it here with "
            f"`cnclip-edu download <name> --from-zip /path/to/{filename} --out DIR`.")


def extract_zip(zip_path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Unpack `zip_path` into `out_dir` (through a temporary folder, refusing paths that escape it).
    Returns the top-level entries created."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = fileio.make_temp_dir(out_dir / "unzip")
    try:
        with zipfile.ZipFile(zip_path) as zf:
            root = tmp.resolve()
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if target != root and root not in target.parents:
                    raise DownloadError(f"{zip_path}: entry {member!r} would be written outside {out_dir}")
            zf.extractall(tmp)
        created = []
        for entry in sorted(tmp.iterdir()):
            if entry.name == "__MACOSX":
                continue
            dest = out_dir / entry.name
            if dest.exists():
                raise DownloadError(f"{dest} already exists; remove it (or choose another --out) first")
            os.replace(entry, dest)
            created.append(dest)
        return created
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(name: str, out_dir: str | os.PathLike, repo_id: str = REPO_ID, from_zip: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Fetch (or take `from_zip`) the zip of dataset `name` and unpack it into `out_dir`."""
    filename = zip_name(name)
    if from_zip is None:
        if _offline():
            raise DownloadError(f"cannot download {filename}: HF_HUB_OFFLINE is set. {_manual_hint(filename)}")
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise DownloadError(f"downloading needs `huggingface_hub`. {_manual_hint(filename)}") from None
        try:
            from_zip = hf_hub_download(repo_id, filename=filename, repo_type="dataset", cache_dir=cache_dir,
                                       etag_timeout=10)
        except Exception as e:  # no network, proxy, 404 ...: one clear message instead of retries
            raise DownloadError(f"could not download {filename} from {repo_id} ({type(e).__name__}: {e}). "
                                f"{_manual_hint(filename)}") from e
    return extract_zip(from_zip, out_dir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cnclip-edu download", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help=f"one of {sorted(RETRIEVAL) + ELEVATER}")
    p.add_argument("--out", "--data-dir", "--data_dir", dest="out", required=True, help="folder to unpack into")
    p.add_argument("--from-zip", "--from_zip", dest="from_zip", default=None, help="a zip you downloaded by hand")
    p.add_argument("--repo-id", "--repo_id", dest="repo_id", default=REPO_ID)
    a = p.parse_args(argv)
    try:
        created = download(a.name, a.out, a.repo_id, a.from_zip)
    except (DownloadError, ValueError, FileNotFoundError, zipfile.BadZipFile) as e:
        print(f"cnclip-edu download: {e}", file=sys.stderr)
        return 1
    for c in created:
        print(f"unpacked {c}")
    return 0
