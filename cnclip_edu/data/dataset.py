"""Map-style datasets over cn_clip's LMDB layout (ours or the official pre-built MUGE / Flickr30K-CN).

    ds = LMDBDataset("runs/course/data/toy/lmdb/train", resolution=32)
    image, tokens = ds[0]                       # FloatTensor (3, R, R), LongTensor (L,)
    image_id, text_id, text = ds.pair(0)        # what record 0 is
    ds.gold_image_ids(text_id)                  # every image that text matches (known positives)

Worker- and DDP-safe: a dataset holds paths only (it pickles cheaply for spawned workers); each
process (DataLoader worker, torchrun rank) opens its own read-only environment on first access,
and a forked worker drops the handles it inherited instead of using them (LMDB forbids that).
Pickled pairs are read with a restricted unpickler (tuples of int/str only), and a corrupt record
raises an error naming its key, never a silent blank image.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import Dataset

from ..cli import require
from . import formats
from .transforms import ImageTransform, image_transform

lmdb = require("lmdb", "cnclip_edu's LMDB datasets")


def preprocess_text(text: str) -> str:
    """cn_clip's text normalisation before tokenizing: lower case, curly double quotes -> '"'."""
    return text.lower().replace("\u201c", '"').replace("\u201d", '"')


def tokenize(texts: list[str], context_length: int) -> torch.Tensor:
    """Our tokenizer (imported lazily: worker processes pay for the vocabulary only if they need it)."""
    from cnclip_edu.tokenizer import tokenize as _tok

    return _tok(texts, context_length=context_length)


# One read-only environment per LMDB file per process, shared by every dataset that reads it:
# py-lmdb refuses to open the same files twice in one process. The key includes the inode of
# data.mdb, so an LMDB rebuilt in place is opened afresh.
_ENVS: dict[tuple, tuple[lmdb.Environment, lmdb.Transaction]] = {}
_ENVS_PID = os.getpid()
# The path as the caller spelled it -> (st_dev, st_ino, key in _ENVS): a read then costs one stat()
# and two dict lookups. Resolving the path (an lstat per component) only happens on a miss; a stale
# entry is harmless, since a hit is used only while _ENVS still holds its key and the inode matches.
_LOOKUP: dict[str, tuple[int, int, tuple]] = {}


def _forget_inherited_envs() -> None:
    """In a forked child (DataLoader worker), drop the parent's handles and open our own: LMDB
    handles must not cross fork(). Closing our copy is harmless to the parent (read-only, no locks)."""
    global _ENVS_PID
    if _ENVS_PID == os.getpid():
        return
    for env, _ in _ENVS.values():
        try:
            env.close()
        except lmdb.Error:
            pass
    _ENVS.clear()
    _ENVS_PID = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_envs)


def shared_txn(path: str | os.PathLike) -> lmdb.Transaction:
    """A long-lived read transaction on the LMDB folder `path`, opened lazily in this process.
    Called on every read (twice per sample), so the common case is one stat() of data.mdb (to notice
    an LMDB rebuilt in place) and a dict lookup; the path is resolved only when it is not cached."""
    _forget_inherited_envs()
    spelled = os.fspath(path)
    try:
        st = os.stat(os.path.join(spelled, "data.mdb"))
    except OSError:
        raise FileNotFoundError(f"{spelled} is not an LMDB folder (no data.mdb); "
                                "build it with `cnclip-edu build-lmdb`") from None
    hit = _LOOKUP.get(spelled)
    if hit is not None and hit[0] == st.st_dev and hit[1] == st.st_ino and hit[2] in _ENVS:
        return _ENVS[hit[2]][1]
    path = Path(spelled)
    key = (str(path.resolve()), st.st_dev, st.st_ino)
    _LOOKUP[spelled] = (st.st_dev, st.st_ino, key)
    if key not in _ENVS:
        try:
            env = lmdb.open(str(path), readonly=True, create=False, lock=False, readahead=False,
                            meminit=False, max_readers=256)
        except lmdb.Error as e:
            raise RuntimeError(f"cannot open LMDB {path}: {e} (another library in this process, e.g. "
                               "cn_clip's LMDBDataset, holds it open: delete that object first)") from None
        _ENVS[key] = (env, env.begin(buffers=False))
    return _ENVS[key][1]


def close_shared_envs(path: str | os.PathLike | None = None) -> None:
    """Close this process's handles on `path` (all if None), e.g. before handing the LMDB to another
    reader in the same process (cn_clip's LMDBDataset opens it eagerly and py-lmdb allows one)."""
    root = None if path is None else str(Path(path).resolve())
    for key in [k for k in _ENVS if root is None or k[0] == root or k[0].startswith(root + os.sep)]:
        env, txn = _ENVS.pop(key)
        txn.abort()
        env.close()


def _read_count(path: Path, key: bytes) -> int:
    raw = shared_txn(path).get(key)
    if raw is None:
        raise ValueError(f"{path}: key {key.decode()!r} is missing (not a cn_clip LMDB?)")
    return int(raw.decode("utf-8"))


def _load_image_record(txn: lmdb.Transaction, image_id: int, where: str):
    key = str(image_id)
    b64 = txn.get(key.encode("utf-8"))
    if b64 is None:
        raise KeyError(f"{where}: image {key!r} is missing from the imgs LMDB")
    try:
        return formats.decode_image(b64)
    except ValueError as e:
        raise ValueError(f"{where}: image {key!r} is corrupt: {e}") from None


def cache_mb() -> float:
    """Per-process budget of `_ReadCache` in MiB: env CNCLIP_DATA_CACHE_MB (0 turns it off), default 256."""
    raw = os.environ.get("CNCLIP_DATA_CACHE_MB", "")
    try:
        return max(0.0, float(raw)) if raw else 256.0
    except ValueError:
        raise ValueError(f"CNCLIP_DATA_CACHE_MB={raw!r} is not a number of MiB") from None


class _ReadCache:
    """Decoded images (uint8, after the resize) and token rows already read, up to a byte budget.

    An epoch reads each image once per caption it has (the toy world: 58k pairs over 10k images), and
    the same caption under several images; decoding, resizing and tokenising again gives the same bytes,
    so we keep them. Filled until the budget is spent, then only read (a large LMDB such as MUGE then
    caches its first images, nothing more). One per process (a DataLoader worker fills its own).
    """

    def __init__(self, budget_mb: float):
        self.budget, self.used, self.items, self.source = int(budget_mb * 2**20), 0, {}, None

    def follow(self, source) -> None:
        """Empty the cache when the LMDB behind it is another one (`shared_txn` gives a new
        transaction when the files were rebuilt in place, or in a forked worker)."""
        if source is not self.source:
            self.items.clear()
            self.used, self.source = 0, source

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def get(self, key):
        return self.items.get(key)

    def put(self, key, value: torch.Tensor) -> torch.Tensor:
        size = value.numel() * value.element_size() + 200  # + the tensor object and the dict entry
        if self.used + size <= self.budget:
            self.items[key] = value
            self.used += size
        return value


@dataclass
class _PairIndex:
    """image_ids[i], text_ids[i]: the ids of record i (LongTensor (N,) each, -1 / -1 where the record
    is missing), and every (image id, text id) record of the split as sorted codes over the distinct
    ids (any int64 id), for the vectorised "is this a pair" test of `contains`."""
    image_ids: torch.Tensor
    text_ids: torch.Tensor
    present: torch.Tensor     # (N,) bool: record i exists
    images: torch.Tensor      # (I,) sorted distinct image ids of all records
    texts: torch.Tensor       # (T,) sorted distinct text ids
    codes: torch.Tensor       # (P,) sorted distinct image_rank * T + text_rank

    @classmethod
    def read(cls, path: Path, num_samples: int) -> "_PairIndex":
        image_ids = torch.full((num_samples,), -1, dtype=torch.long)
        text_ids = torch.full((num_samples,), -1, dtype=torch.long)
        present = torch.zeros(num_samples, dtype=torch.bool)
        all_img, all_txt = [], []
        with shared_txn(path).cursor() as cur:
            for key, raw in cur:
                if key == formats.NUM_SAMPLES_KEY:
                    continue
                name = key.decode("utf-8", "replace")
                iid, tid, _ = formats.load_pair(raw, key=name)
                all_img.append(iid)
                all_txt.append(tid)
                if name.isdigit() and int(name) < num_samples:
                    image_ids[int(name)], text_ids[int(name)], present[int(name)] = iid, tid, True
        img, txt = torch.tensor(all_img, dtype=torch.long), torch.tensor(all_txt, dtype=torch.long)
        images, img_rank = torch.unique(img, return_inverse=True)
        texts, txt_rank = torch.unique(txt, return_inverse=True)
        return cls(image_ids, text_ids, present, images, texts, torch.unique(img_rank * len(texts) + txt_rank))

    @staticmethod
    def _rank(sorted_ids: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.searchsorted(sorted_ids, ids).clamp(max=max(len(sorted_ids) - 1, 0))
        return pos, (sorted_ids[pos] == ids) if len(sorted_ids) else torch.zeros_like(ids, dtype=torch.bool)

    def contains(self, image_ids: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        """Bool, the broadcast shape of the two: whether (image_ids[...], text_ids[...]) is a record."""
        ri, found_i = self._rank(self.images, image_ids)
        rt, found_t = self._rank(self.texts, text_ids)
        _, found = self._rank(self.codes, ri * len(self.texts) + rt)
        return found_i & found_t & found


class LMDBDataset(Dataset):
    """cn_clip's training dataset: record i -> (image (3, R, R), tokens (L,)).

    `use_augment=True` applies `augment.train_transform(R)` (random resized crop, no colour
    changes: colour is a label in the toy world) instead of the eval transform.
    """

    def __init__(self, lmdb_split_dir: str | os.PathLike, resolution: int, context_length: int = 52,
                 use_augment: bool = False, transform: Callable | None = None):
        self.root = Path(lmdb_split_dir)
        self.num_samples = _read_count(self.root / "pairs", formats.NUM_SAMPLES_KEY)
        self.num_images = _read_count(self.root / "imgs", formats.NUM_IMAGES_KEY)
        self.resolution, self.context_length, self.use_augment = resolution, context_length, use_augment
        if transform is None:
            if use_augment:
                from .augment import train_transform

                transform = train_transform(resolution)
            else:
                transform = image_transform(resolution)
        self.transform = transform
        self._gold: dict[int, frozenset[int]] | None = None  # built on first use, never pickled
        self._index: _PairIndex | None = None                 # likewise
        self._index_source = None                             # the transaction it was read from
        self._cache = _ReadCache(cache_mb())                  # likewise

    def __getstate__(self):
        return {**self.__dict__, "_gold": None, "_index": None, "_index_source": None, "_cache": _ReadCache(cache_mb())}

    def __len__(self) -> int:
        return self.num_samples

    def pair(self, index: int) -> tuple[int, int, str]:
        """(image_id, text_id, text) of record `index`."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} pairs in {self.root}")
        key = str(index)
        raw = shared_txn(self.root / "pairs").get(key.encode("utf-8"))
        if raw is None:
            raise KeyError(f"{self.root}/pairs: record {key!r} is missing (num_samples says {self.num_samples})")
        return formats.load_pair(raw, key=f"{self.root}/pairs:{key}")

    def load_image(self, image_id: int):
        """The PIL image stored under `image_id` (before any transform)."""
        return _load_image_record(shared_txn(self.root / "imgs"), image_id, f"{self.root}/imgs")

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id, _, text = self.pair(index)
        return self._image(image_id), self._tokens(text)                              # (3, R, R), (L,)

    def _image(self, image_id: int) -> torch.Tensor:
        """The transformed image. With the (deterministic) eval transform, the decoded and resized bytes
        are kept (`_ReadCache`), so a second read of the image only normalises them: the same floats."""
        if type(self.transform) is not ImageTransform or not self._cache.enabled:
            return self.transform(self.load_image(image_id))
        self._cache.follow(shared_txn(self.root / "imgs"))
        pixels = self._cache.get(("img", image_id))
        if pixels is None:
            pixels = self._cache.put(("img", image_id), self.transform.resized(self.load_image(image_id)))
        return self.transform.normalize(pixels)

    def _tokens(self, text: str) -> torch.Tensor:
        """The token row of a caption (a caption repeated under several images is tokenised once)."""
        row = self._cache.get(("txt", text))
        if row is None:
            row = self._cache.put(("txt", text), tokenize([preprocess_text(text)], self.context_length)[0])
        return row.clone()

    # ------------------------------------------------------------------ known positives
    def gold_image_ids(self, text_id: int) -> frozenset[int]:
        """All image ids paired with `text_id` in this split (its gold matches)."""
        if self._gold is None:
            gold: dict[int, set[int]] = {}
            with shared_txn(self.root / "pairs").cursor() as cur:
                for key, raw in cur:
                    if key != formats.NUM_SAMPLES_KEY:
                        iid, tid, _ = formats.load_pair(raw, key=key.decode("utf-8", "replace"))
                        gold.setdefault(tid, set()).add(iid)
            self._gold = {t: frozenset(s) for t, s in gold.items()}
        return self._gold.get(text_id, frozenset())

    def pair_index(self) -> "_PairIndex":
        """(image id, text id) of every record, read once in one pass over the pairs LMDB."""
        txn = shared_txn(self.root / "pairs")
        if self._index is None or self._index_source is not txn:  # first use, or the LMDB was rebuilt
            self._index, self._index_source = _PairIndex.read(self.root / "pairs", self.num_samples), txn
        return self._index

    def ids(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """image ids and text ids of records `indices`: LongTensor (B,), LongTensor (B,)."""
        idx = [int(i) for i in indices]
        index = self.pair_index()
        for i in idx:
            if not 0 <= i < self.num_samples or not index.present[i]:
                self.pair(i)  # raises the IndexError / KeyError that names the record
        rows = torch.tensor(idx, dtype=torch.long)
        return index.image_ids[rows], index.text_ids[rows]

    def positive_mask(self, image_ids, text_ids) -> torch.Tensor:
        """BoolTensor (B_img, B_txt): True where image i is a gold match of text j (incl. the diagonal
        of a batch of pairs) - the in-batch false negatives a contrastive loss may want to mask.
        Image i is a gold match of text j exactly when (i, j) is one of the split's pairs."""
        img = torch.as_tensor([int(i) for i in image_ids], dtype=torch.long)
        txt = torch.as_tensor([int(t) for t in text_ids], dtype=torch.long)
        return self.pair_index().contains(img[:, None], txt[None, :])


class EvalImageDataset(Dataset):
    """Images for feature extraction: index -> (image_id, FloatTensor (3, R, R)).

    Takes an `imgs` LMDB folder (cn_clip's `--image-data`) or a `{split}_imgs.tsv` file. Ids come in
    key order for an LMDB (like cn_clip's cursor), in file order for a TSV.
    """

    def __init__(self, lmdb_imgs_dir_or_tsv: str | os.PathLike, resolution: int):
        self.path = Path(lmdb_imgs_dir_or_tsv)
        self.transform = image_transform(resolution)
        self._tsv: list[str] | None = None
        if self.path.is_file():
            self._tsv, ids = [], []
            for iid, b64 in formats.iter_imgs_tsv(self.path):
                ids.append(iid)
                self._tsv.append(b64)
            self.image_ids = ids
        else:  # keys are unique in an LMDB; an official or foreign one may still hold any bytes
            with shared_txn(self.path).cursor() as cur:
                self.image_ids = [formats.check_id(k, f"{self.path}: key {k[:40]!r}", "image id", text=True)
                                  for k in cur.iternext(keys=True, values=False) if k != formats.NUM_IMAGES_KEY]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        iid = self.image_ids[index]
        if self._tsv is not None:
            try:
                img = formats.decode_image(self._tsv[index])
            except ValueError as e:
                raise ValueError(f"{self.path}: image {iid} is corrupt: {e}") from None
        else:
            img = _load_image_record(shared_txn(self.path), iid, str(self.path))
        return iid, self.transform(img)                                              # (3, R, R)


class EvalTextDataset(Dataset):
    """Texts for feature extraction: index -> (text_id, LongTensor (L,)), from `{split}_texts.jsonl`."""

    def __init__(self, jsonl_path: str | os.PathLike, context_length: int = 52):
        self.path = Path(jsonl_path)
        self.context_length = context_length
        self.items: list[tuple[int, str]] = []
        seen = formats.UniqueIds("text_id")
        with open(self.path, encoding="utf-8-sig") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    text_id, text = obj["text_id"], obj["text"]
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{self.path}:{n}: bad text record ({type(e).__name__}: {e})") from None
                if not isinstance(text, str):
                    raise ValueError(f"{self.path}:{n}: text of text_id {text_id!r:.40} must be a string")
                self.items.append((seen.add(text_id, f"{self.path}:{n}"), text))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        text_id, text = self.items[index]
        return text_id, tokenize([preprocess_text(text)], self.context_length)[0]   # (L,)
