"""Download the official cn_clip checkpoints (`clip_cn_*.pt`) from the Hugging Face Hub.

The released `.pt` files live next to the transformers weights in the OFA-Sys repos
(e.g. https://huggingface.co/OFA-Sys/chinese-clip-vit-base-patch16/blob/main/clip_cn_vit-b-16.pt).
We store them where cn_clip does (`~/.cache/clip`), so both libraries share one download.
Offline (`HF_HUB_OFFLINE=1`, or no network) we fail fast and say how to pass a local file.
"""
from __future__ import annotations

import os
from pathlib import Path

HF_ORG = "OFA-Sys"
# released name -> (Hub repo, file name), as cn_clip's download table
OFFICIAL_FILES = {
    "ViT-B-16": ("chinese-clip-vit-base-patch16", "clip_cn_vit-b-16.pt"),
    "ViT-L-14": ("chinese-clip-vit-large-patch14", "clip_cn_vit-l-14.pt"),
    "ViT-L-14-336": ("chinese-clip-vit-large-patch14-336px", "clip_cn_vit-l-14-336.pt"),
    "ViT-H-14": ("chinese-clip-vit-huge-patch14", "clip_cn_vit-h-14.pt"),
    "RN50": ("chinese-clip-rn50", "clip_cn_rn50.pt"),
}
DEFAULT_ROOT = "~/.cache/clip"


class DownloadError(RuntimeError):
    pass


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def official_url(name: str) -> str:
    repo, filename = OFFICIAL_FILES[name]
    return f"https://huggingface.co/{HF_ORG}/{repo}/resolve/main/{filename}"


def download(name: str, download_root: str | os.PathLike | None = None) -> Path:
    """Path of the official `.pt` for `name` in `download_root`, downloading it first if needed."""
    if name not in OFFICIAL_FILES:
        raise ValueError(f"no official checkpoint named {name!r}; released: {list(OFFICIAL_FILES)}")
    repo, filename = OFFICIAL_FILES[name]
    root = Path(download_root or DEFAULT_ROOT).expanduser()
    target = root / filename
    if target.is_file():
        return target
    how = (f"Download {official_url(name)} yourself (or `huggingface-cli download {HF_ORG}/{repo} {filename}`) "
           f"and pass the file: cc.load('/path/to/{filename}'), or put it in {root}/.")
    if _offline():
        raise DownloadError(f"cannot download {name!r}: HF_HUB_OFFLINE is set. {how}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError(f"downloading {name!r} needs `huggingface_hub` (pip install 'cnclip-edu[hub]'). {how}") from None
    root.mkdir(parents=True, exist_ok=True)
    try:
        # hf_hub_download writes to a temporary file and renames it: an interrupted download leaves no half file
        path = hf_hub_download(f"{HF_ORG}/{repo}", filename=filename, local_dir=str(root), etag_timeout=10)
    except Exception as e:  # network down, proxy, 404 ...: one clear message instead of a stack of retries
        raise DownloadError(f"could not download {name!r} from {HF_ORG}/{repo} ({type(e).__name__}: {e}). {how}") from e
    return Path(path)
