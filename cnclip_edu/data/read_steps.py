"""Where a training sample's time goes: `LMDBDataset`'s `ds[i]` written out one step per line (notebook 05).

`read_sample_timed(ds, index, lap)` does what `ds[index]` does with the read cache off (the cache only
changes a repeated read), calling `lap(step)` after each step; tests/test_read_steps.py checks that it
returns the same tensors as `ds[index]`, so this twin cannot drift from the Dataset. `sample_steps`
runs it with `course.timing.step_breakdown` (every sample whole, one mark per step, the median of
`repeat` runs, CPU time), so that the steps of a run add up to that run.

The step names are the labels notebook 05 prints and draws; `LMDB_STEPS` are the ones that talk to
LMDB (finding this process's handles, `txn.get`, the restricted unpickling), `DECODE_STEPS` the rest.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from cnclip_edu.course.timing import Clock, StepBreakdown, step_breakdown

from . import formats
from .dataset import LMDBDataset, preprocess_text, shared_txn, tokenize

FIND = "找句柄（拼路径、stat、查缓存）"
GET = "txn.get（含拼键）"
UNPICKLE = "受限反序列化"
B64 = "base64 解码"
IMAGE = "图片解码"
TRANSFORM = "变换"
TOKENIZE = "分词"
STEPS = (FIND, GET, UNPICKLE, B64, IMAGE, TRANSFORM, TOKENIZE)   # in the order a read meets them (FIND, GET twice)
LMDB_STEPS = (FIND, GET, UNPICKLE)
DECODE_STEPS = (B64, IMAGE, TRANSFORM, TOKENIZE)
STEP_COLORS = {FIND: "#a1d99b", GET: "#238b45", UNPICKLE: "#74c476",        # greens: the LMDB side
               B64: "#fdd0a2", IMAGE: "#f16913", TRANSFORM: "#3182bd", TOKENIZE: "#9e9ac8"}


def read_sample_timed(ds: LMDBDataset, index: int, lap: Callable[[str], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """`ds[index]` (cache off) one step per line, `lap(name)` after each: (image (3, R, R), tokens (L,))."""
    if not 0 <= index < len(ds):
        raise IndexError(f"index {index} out of range for {len(ds)} pairs in {ds.root}")
    pairs_txn = shared_txn(ds.root / "pairs");                                  lap(FIND)
    raw = pairs_txn.get(str(index).encode("utf-8"));                            lap(GET)
    image_id, _, text = formats.load_pair(raw, key=str(index));                 lap(UNPICKLE)
    imgs_txn = shared_txn(ds.root / "imgs");                                    lap(FIND)
    b64 = imgs_txn.get(str(image_id).encode("utf-8"));                          lap(GET)
    data = formats.decode_b64(b64, strict=False);                               lap(B64)        # both alphabets
    pil = formats.open_image(data);                                             lap(IMAGE)      # open + load() + size check
    image = ds.transform(pil);                                                  lap(TRANSFORM)  # (3, R, R)
    tokens = tokenize([preprocess_text(text)], ds.context_length)[0].clone();   lap(TOKENIZE)   # (L,)
    return image, tokens


def sample_steps(ds: LMDBDataset, items: Sequence[int], repeat: int = 5,
                 clock: Clock = time.process_time) -> StepBreakdown:
    """Seconds per sample of each step of `ds[i]` over `items` (and of the plain `ds[i]`, timed in the same
    loop: `.whole`), CPU time by default. See `course.timing.step_breakdown` for how the runs are kept."""
    return step_breakdown(lambda i, lap: read_sample_timed(ds, i, lap), lambda i: ds[i], items, repeat, clock)


def share(breakdown: StepBreakdown, names: Sequence[str]) -> float:
    """The fraction of a sample's time (the steps' total) spent in the steps `names`."""
    return sum(breakdown.steps.get(name, 0.0) for name in names) / breakdown.total
