"""Data loading throughput: read + decode + transform (224 px) + tokenize, samples/s.

    .venv/bin/python bench/bench_data.py            # ~1-2 min on 2 cores
    .venv/bin/python bench/bench_data.py --full     # more samples per measurement

Same LMDB, same DataLoader (batch 64, shuffled = random access), 0 / 1 / 2 workers:
- ours: `cnclip_edu.data.dataset.LMDBDataset`
- cn_clip: `cn_clip.training.data.LMDBDataset` (the reference)
- TSV: a naive map-style dataset over `{split}_imgs.tsv` + `_texts.jsonl` (line offsets, seek per item)
on two image sets: the toy world (64 px PNG) and "photo-like" JPEGs (384 px, quality 90, closer
to MUGE), because decoding cost depends on the format. Warm page cache; startup time excluded.
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import machine_info, markdown_table, write_section  # noqa: E402
from cnclip_edu.data import formats, toy  # noqa: E402
from cnclip_edu.data.dataset import LMDBDataset, close_shared_envs, preprocess_text, tokenize  # noqa: E402
from cnclip_edu.data.lmdb_build import build_lmdb  # noqa: E402
from cnclip_edu.data.transforms import image_transform  # noqa: E402

RES = 224


class TsvDataset(Dataset):
    """The baseline without LMDB: byte offsets of every TSV line, one seek + read per image."""

    def __init__(self, data_dir: Path, split: str, resolution: int, context_length: int = 52):
        self.tsv = formats.imgs_tsv(data_dir, split)
        self.offsets: dict[int, int] = {}
        with open(self.tsv, "rb") as f:
            pos = 0
            for line in f:
                self.offsets[int(line.split(b"\t", 1)[0])] = pos
                pos += len(line)
        self.pairs = [(i, t["text"]) for t in formats.iter_texts_jsonl(formats.texts_jsonl(data_dir, split))
                      for i in t["image_ids"]]
        self.transform, self.context_length, self._f = image_transform(resolution), context_length, None

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, i):
        if self._f is None:
            self._f = open(self.tsv, "rb")
        iid, text = self.pairs[i]
        self._f.seek(self.offsets[iid])
        b64 = self._f.readline().split(b"\t", 1)[1]
        image = self.transform(formats.decode_image(b64))
        return image, tokenize([preprocess_text(text)], self.context_length)[0]

    def __getstate__(self):
        return {**self.__dict__, "_f": None}


def _photo_like(src: Path, dst: Path, n: int) -> Path:
    """First `n` toy images, upscaled to 384 px with some texture, as JPEG q90; same captions."""
    dst.mkdir(parents=True, exist_ok=True)
    items = []
    for k, (iid, b64) in enumerate(formats.iter_imgs_tsv(formats.imgs_tsv(src, "train"))):
        if k == n:
            break
        img = formats.decode_image(b64).resize((384, 384), Image.BICUBIC)
        items.append((iid, formats.encode_image(img, "JPEG", quality=90)))
    keep = {i for i, _ in items}
    formats.write_imgs_tsv(formats.imgs_tsv(dst, "train"), items)
    texts = [(t["text_id"], t["text"], [i for i in t["image_ids"] if i in keep])
             for t in formats.iter_texts_jsonl(formats.texts_jsonl(src, "train"))]
    formats.write_texts_jsonl(formats.texts_jsonl(dst, "train"), [t for t in texts if t[2]])
    build_lmdb(dst, "train", progress=False, verbose=False)
    return dst


def measure(ds, workers: int, n_samples: int, batch: int = 64) -> float:
    """Steady-state samples/s over `n_samples` shuffled samples (after the first batch)."""
    g = torch.Generator().manual_seed(0)
    dl = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, generator=g,
                    persistent_workers=False, drop_last=True)
    it = iter(dl)
    next(it)  # start-up (worker fork, first opens) is not what we measure
    n, t0 = 0, time.perf_counter()
    for img, tok in it:
        n += img.shape[0]
        if n >= n_samples:
            break
    dt = time.perf_counter() - t0
    del it, dl
    return n / dt


def _cn_clip(lmdb_split: Path):
    from cn_clip.training.data import LMDBDataset as CnLMDBDataset

    class _TwoOutputs(Dataset):  # cn_clip returns (image, tokens, eos_index); drop the index for the loop
        def __init__(self):
            self.ds = CnLMDBDataset(str(lmdb_split), split="val", max_txt_length=52, resolution=RES)

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            return self.ds[i][:2]

    return _TwoOutputs()


def run(full: bool) -> str:
    # One intra-op thread, as in a DataLoader worker: on a busy 2-core machine, multi-threaded
    # ToTensor/Normalize on one small image spends more time synchronising threads than computing.
    torch.set_num_threads(1)
    n = 1536 if full else 512
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    toy_dir = toy.ensure_toy_data(work, toy.ToyConfig(n_train=2000, n_valid=50, n_test=50, zeroshot_per_class=1))
    photo_dir = _photo_like(toy_dir, work / "photo", 1000)
    rows = []
    for label, data_dir in (("toy 64 px PNG", toy_dir), ("photo-like 384 px JPEG", photo_dir)):
        split = data_dir / "lmdb" / "train"
        for workers in (0, 1, 2):
            cn = _cn_clip(split)
            r_cn = measure(cn, workers, n)
            del cn
            gc.collect()  # cn_clip's dataset holds its environments until deleted
            ours = LMDBDataset(split, RES)
            r_ours = measure(ours, workers, n)
            close_shared_envs(split)
            r_tsv = measure(TsvDataset(data_dir, "train", RES), workers, n)
            rows.append([label, workers, round(r_ours), round(r_cn), round(r_tsv), f"{r_ours / r_cn:.2f}x"])
            print(rows[-1], flush=True)
    cmd = "`.venv/bin/python bench/bench_data.py" + (" --full`" if full else "`")
    md = "\n".join([
        "## data: LMDB read + decode + transform (224 px) + tokenize",
        "",
        f"Command: {cmd}. Machine: {machine_info()}.",
        f"DataLoader batch 64, shuffled (random access), {n} samples per cell after the first batch, warm page cache, "
        "1 torch thread per process.",
        "",
        markdown_table(["images", "workers", "ours (samples/s)", "cn_clip LMDBDataset", "TSV seek baseline",
                        "ours / cn_clip"], rows),
        "",
        "Reading is not the bottleneck: LMDB lookups cost microseconds; decoding and the bicubic resize to "
        "224 px dominate, so ours and cn_clip's are within noise of each other (same work per item; ours "
        "adds a restricted unpickler and a full decode check). The TSV baseline needs the index of line "
        "offsets (built at start-up) and a file handle per worker; LMDB gives both for free and is shared "
        "through the page cache. Timings on a 2-core machine vary from run to run by 10-20 %; compare within a row.",
    ])
    return md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true")
    a = p.parse_args()
    t0 = time.perf_counter()
    md = run(a.full)
    write_section("data", md)
    print(md)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
