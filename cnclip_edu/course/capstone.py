"""The capstone of notebooks 01-05: the student's own pieces run one CLIP training step together.

    mine = capstone.my_pieces(work_dir)          # prints which piece came from where (in Chinese)
    loss = training_step(mine, model, lmdb_split_dir, batch_size)   # the student writes this (exercise 05.4)
    check("05.4", training_step)

The pieces are the `%%my_clip` cells of notebooks 01-05 (`pieces.py`), under the names of the course's
contract: `load_vocab`, `encode`, `tokenize` (01), `encode_image` (02), `encode_text` (03), `clip_loss` (04,
features L2-normalised, logit_scale already exp'd), `MyLMDBDataset` (05). A piece whose notebook has not
run in this work folder is replaced by the library's version, and said so; a piece that is still the
student version's stub stays what it is, so the check names the exercise to finish first.

The check (exercise 05.4) runs the student's step with the student's pieces, and the library's step
(`model.encode_image`, `model.encode_text`, `ClipLoss`, `LMDBDataset`, `cnclip_edu.tokenize`) on the same
batch of a small toy world, and compares what each piece produced, the loss and every gradient.
"""
from __future__ import annotations

import functools
import os
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from . import pieces

# name -> the notebook whose %%my_clip cell defines it
NEEDED: dict[str, str] = {"load_vocab": "01", "encode": "01", "tokenize": "01", "encode_image": "02",
                          "encode_text": "03", "clip_loss": "04", "MyLMDBDataset": "05"}
_STUB = re.compile(r'raise NotImplementedError\("练习 (\d\d\.\d+)"\)')


# ----------------------------------------------------------------------------- the library's pieces
class LibraryDataset:
    """The library's LMDBDataset with the exercise's signature (`tokenizer`: texts, context_length -> (N, L))."""

    def __new__(cls, lmdb_split_dir, resolution, context_length=52, tokenizer=None):
        from cnclip_edu.data.dataset import LMDBDataset

        ds = LMDBDataset(lmdb_split_dir, resolution=resolution, context_length=context_length)
        return ds if tokenizer is None else _WithTokenizer(ds, tokenizer)


class _WithTokenizer:
    """A library dataset whose tokens come from another tokenizer (same preprocessing)."""

    def __init__(self, ds, tokenizer):
        self.ds, self.tokenizer = ds, tokenizer

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, index):
        from cnclip_edu.data.dataset import preprocess_text

        image_id, _, text = self.ds.pair(index)
        image = self.ds.transform(self.ds.load_image(image_id))
        return image, self.tokenizer([preprocess_text(text)], context_length=self.ds.context_length)[0]


def _load_vocab(path) -> dict[str, int]:
    from cnclip_edu.tokenizer import load_vocab

    return load_vocab(path)


def _encode(text: str, vocab) -> list[int]:
    from cnclip_edu.tokenizer import get_tokenizer

    return get_tokenizer().encode(text)


def _tokenize(texts, vocab, context_length: int = 52) -> torch.Tensor:
    from cnclip_edu.tokenizer import tokenize

    return tokenize(texts, context_length=context_length)


def _encode_image(model, images):
    return model.encode_image(images)


def _encode_text(model, tokens):
    return model.encode_text(tokens)


def _clip_loss(image_features, text_features, logit_scale):
    from cnclip_edu.loss import ClipLoss

    return ClipLoss()(image_features, text_features, logit_scale)


def library_pieces() -> SimpleNamespace:
    """The library's version of every piece, under the contract's names and signatures."""
    return SimpleNamespace(load_vocab=_load_vocab, encode=_encode, tokenize=_tokenize, encode_image=_encode_image,
                           encode_text=_encode_text, clip_loss=_clip_loss, MyLMDBDataset=LibraryDataset)


# ----------------------------------------------------------------------------- the student's pieces
def _origin(obj: Any) -> str | None:
    """The file a function (or a class's first method) was compiled from."""
    code = getattr(obj, "__code__", None)
    if code is None and isinstance(obj, type):
        code = next((v.__code__ for v in vars(obj).values() if hasattr(v, "__code__")), None)
    return code.co_filename if code is not None else None


def collect(work_dir: str | os.PathLike | None = None) -> tuple[SimpleNamespace, list[tuple[str, str, str]]]:
    """(namespace of pieces, rows (name, notebook, status in Chinese)). Missing pieces are the library's."""
    folder = pieces.piece_dir(work_dir) if (work_dir is not None or pieces._dir is not None) else None
    namespace: dict[str, Any] = {"__name__": "my_clip"}
    broken: dict[str, str] = {}
    for exercise_id in (pieces.saved(work_dir) if folder is not None else []):
        path = pieces.piece_path(exercise_id, work_dir)
        try:
            pieces.run_into(path, namespace)
        except Exception as e:  # a piece that does not even run: say which, go on with the others
            broken[exercise_id] = f"{type(e).__name__}: {e}"
    library = library_pieces()
    rows, chosen = [], {}
    for name, notebook in NEEDED.items():
        obj, origin = namespace.get(name), _origin(namespace.get(name))
        if obj is None:
            bad = [i for i in broken if i.startswith(notebook)]
            why = f"练习 {bad[0]} 的格子运行出错（{broken[bad[0]]}）" if bad else \
                f"没找到：先运行第 {notebook} 节里以 %%my_clip 开头的格子"
            rows.append((name, notebook, f"{why}；这次先用库里的版本代替"))
            chosen[name] = getattr(library, name)
        elif origin is None or Path(origin).parent.name != pieces.DIRNAME:
            rows.append((name, notebook, "⚠️ 这是从库里导入的对象，不是你写的代码"))
            chosen[name] = obj
        else:
            stub = _STUB.search(Path(origin).read_text(encoding="utf-8"))
            rows.append((name, notebook, f"还是空的：练习 {stub.group(1)} 还没有完成" if stub
                         else f"你写的（{Path(origin).name}）"))
            chosen[name] = obj
    return SimpleNamespace(**chosen), rows


def own_pieces(mine: SimpleNamespace) -> dict[str, bool]:
    """name -> True when that piece is the student's own finished code (a %%my_clip file, not a stub), False
    when it is a library stand-in or an object imported from the library. Lets a conclusion say what ran."""
    own = {}
    for name in NEEDED:
        origin = _origin(getattr(mine, name, None))
        own[name] = (origin is not None and Path(origin).parent.name == pieces.DIRNAME
                     and Path(origin).is_file() and not _STUB.search(Path(origin).read_text(encoding="utf-8")))
    return own


def my_pieces(work_dir: str | os.PathLike) -> SimpleNamespace:
    """The student's pieces for the capstone, with a printed table of where each came from."""
    mine, rows = collect(work_dir)
    print("你的零件（综合练习用到的名字 ← 在哪一节写的）：")
    for name, notebook, status in rows:
        print(f"  {name:14s} ← 第 {notebook} 节：{status}")
    return mine


# ----------------------------------------------------------------------------- the step and its check
def training_step(mine, model, lmdb_split_dir, batch_size: int) -> torch.Tensor:
    """One CLIP training step built from pieces: the first `batch_size` records of the LMDB, the loss of
    that batch, its gradients in the model's .grad (zeroed first). -> the loss (0-d tensor)."""
    from torch.utils.data import DataLoader

    from cnclip_edu.tokenizer import VOCAB_PATH

    vocab = mine.load_vocab(VOCAB_PATH)

    def tokenizer(texts, context_length):
        return mine.tokenize(texts, vocab, context_length)

    dataset = mine.MyLMDBDataset(lmdb_split_dir, model.image_resolution, context_length=model.context_length,
                                 tokenizer=tokenizer)
    images, tokens = next(iter(DataLoader(dataset, batch_size=batch_size)))          # (B, 3, R, R), (B, L)
    model.zero_grad()
    image_features = F.normalize(mine.encode_image(model, images), dim=-1)         # (B, D)
    text_features = F.normalize(mine.encode_text(model, tokens), dim=-1)           # (B, D)
    loss = mine.clip_loss(image_features, text_features, model.logit_scale.exp())
    loss.backward()
    return loss


class _Recorder:
    """The pieces, seen through a window: which ones the step calls, and what each one returns."""

    LABELS = {"images": "一批图片（05 的 Dataset）", "tokens": "一批 tokens（01 的 tokenize，经 05 的 Dataset）",
              "encode_image": "图片特征（02 的 encode_image）", "encode_text": "文本特征（03 的 encode_text）",
              "clip_loss": "损失（04 的 clip_loss）"}

    def __init__(self, parts: SimpleNamespace):
        self._parts, self.called, self.records = parts, set(), {}

    def _keep(self, key: str, value: Any) -> None:
        if key not in self.records and isinstance(value, torch.Tensor):
            self.records[key] = value.detach().clone()

    def __getattr__(self, name: str):
        piece = getattr(self._parts, name)

        def call(*args, **kwargs):
            self.called.add(name)
            if name == "encode_image":
                self._keep("images", args[1] if len(args) > 1 else kwargs.get("images"))
            if name == "encode_text":
                self._keep("tokens", args[1] if len(args) > 1 else kwargs.get("tokens"))
            out = piece(*args, **kwargs)
            if name in ("encode_image", "encode_text", "clip_loss"):
                self._keep(name, out)
            return out

        return call


@functools.lru_cache(maxsize=4)
def _toy_split(seed: int, n_images: int) -> tuple[tuple, tuple]:
    """A small valid split of the toy world: ((image_id, png_b64), ...), ((text_id, text, image_ids), ...)."""
    import base64

    from cnclip_edu.data.toy import ToyConfig, _make_split, _split_combos
    from cnclip_edu.data.toy_draw import render_batch

    cfg = ToyConfig(n_valid=n_images)
    image_ids, scenes, texts = _make_split(cfg, "valid", _split_combos(cfg, "valid"), seed=f"capstone-{seed}")
    pngs = render_batch(scenes, cfg.image_size, workers=1)
    return (tuple(zip(image_ids, (base64.b64encode(p).decode("ascii") for p in pngs))),
            tuple((t, text, list(ids)) for t, text, ids in texts))


def toy_lmdb(folder: Path, seed: int, n_images: int = 8) -> Path:
    """Write that split into `folder` and build its LMDB; -> the LMDB split folder."""
    from cnclip_edu.data import formats
    from cnclip_edu.data.lmdb_build import build_lmdb

    images, texts = _toy_split(seed, n_images)
    formats.write_imgs_tsv(formats.imgs_tsv(folder, "valid"), images)
    formats.write_texts_jsonl(formats.texts_jsonl(folder, "valid"), texts)
    build_lmdb(folder, ["valid"], progress=False, verbose=False)
    return folder / "lmdb" / "valid"


def run_step(step, parts: SimpleNamespace, seed: int, batch_size: int, stale_grads: bool = False) -> dict:
    """`step(parts, model, lmdb, batch_size)` on a seeded course-size model and a toy batch -> plain data:
    the pieces it called, what each produced, the loss it returned and every parameter's gradient."""
    import cnclip_edu as cc
    from cnclip_edu.data.dataset import close_shared_envs

    torch.manual_seed(seed)
    model = cc.create_model("course").eval()   # no dropout: both steps see the same function
    if stale_grads:  # what the previous optimizer step left behind
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.1)
    rec = _Recorder(parts)
    with tempfile.TemporaryDirectory() as tmp:
        root = toy_lmdb(Path(tmp), seed)
        try:
            loss = step(rec, model, root, batch_size)
        finally:
            close_shared_envs(root)
    out: dict[str, Any] = {"用到的零件": sorted(rec.called)}
    out.update({label: rec.records.get(key) for key, label in _Recorder.LABELS.items()})
    out["返回的损失"] = loss.detach() if isinstance(loss, torch.Tensor) else loss
    for name, p in model.named_parameters():
        out[f"梯度 {name}"] = None if p.grad is None else p.grad.detach().clone()
    return out
