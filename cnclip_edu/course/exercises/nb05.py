"""Notebook 05's checked exercises: read one line of a `{split}_imgs.tsv` strictly, write cn_clip's LMDB
layout by hand, a Dataset that is safe under DataLoader workers (a capstone piece), and the capstone:
the student's own tokenizer, towers, loss and Dataset in one training step (`capstone.py`).

References are the library's own code (`formats.decode_b64` / `open_image`, `lmdb_build.build_lmdb`,
`dataset.LMDBDataset`) run on a tiny dataset written here, in a temporary folder, for every case.
The mutants are the slips a student makes: a lazy `Image.open`, a lenient base64 decode, pairs keyed
by text id, a forgotten `num_samples`, `commit` or `env.close()`, an LMDB opened in `__init__`, a Dataset that
decodes only the standard base64 alphabet, ...
"""
from __future__ import annotations

import base64
import contextlib
import gc
import io
import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .core import Case, Exercise, register
from ..capstone import LibraryDataset
from .tripwire import armed, guarded


# ----------------------------------------------------------------------------- a tiny fixed dataset
def _png_b64(color: tuple[int, int, int], size: int = 12, fmt: str = "PNG", mode: str = "RGB") -> str:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (250, 250, 250))
    ImageDraw.Draw(img).rectangle([2, 3, size - 3, size - 2], fill=color)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_COLORS = [(220, 30, 30), (30, 60, 220), (240, 200, 20), (40, 160, 60), (140, 40, 180)]
_TEXTS = [  # (text_id, text, image_ids): several images per text, one text without images, curly quotes
    (7001, "一个红色的正方形", [1001]),
    (7002, "左边是蓝色的方块，右边是黄色的方块", [1002, 1003]),
    (7003, "一张没有匹配图片的描述", []),
    (7004, "LOGO 上写着“绿色”", [1004]),
    (7005, "紫色的小方块", [1005, 1001]),
]


def _write_dataset(folder: Path, split: str = "mini", texts=None, urlsafe: bool = False) -> tuple[Path, Path]:
    """`{split}_imgs.tsv` (5 PNG/JPEG images) and `{split}_texts.jsonl` (by default 5 texts, 6 pairs) in `folder`.
    `urlsafe`: the TSV's base64 in the URL-safe alphabet ('-_' for '+/'), which cn_clip and build_lmdb accept."""
    from cnclip_edu.data import formats

    images = [(1001 + k, _png_b64(c, fmt="JPEG" if k == 3 else "PNG")) for k, c in enumerate(_COLORS)]
    if urlsafe:
        images = [(i, b64.replace("+", "-").replace("/", "_")) for i, b64 in images]
        assert any("-" in b64 or "_" in b64 for _, b64 in images), "no '+' or '/' to translate: not a real case"
    tsv, jsonl = formats.imgs_tsv(folder, split), formats.texts_jsonl(folder, split)
    formats.write_imgs_tsv(tsv, images)
    formats.write_texts_jsonl(jsonl, _TEXTS if texts is None else texts)
    return tsv, jsonl


def _random_texts(seed: int) -> list[tuple[int, str, list[int]]]:
    """4-7 texts over the 5 images, each with 0-3 images (a hidden case's dataset)."""
    import random

    rng = random.Random(seed)
    words = ["红色", "蓝色", "黄色", "“绿色”", "紫色", "方块", "正方形", "小", "大", "LOGO"]
    return [(8000 + t, "".join(rng.sample(words, 3)), sorted(rng.sample(range(1001, 1006), rng.randint(0, 3))))
            for t in range(rng.randint(4, 7))]


# ----------------------------------------------------------------------------- 05.1 one TSV line
def decode_tsv_line(line: str):
    """`image_id<TAB>base64` (trailing newline allowed) -> (int id, fully decoded PIL image).
    Raises ValueError on a bad line, bad base64 (strict alphabet) or a broken/truncated image."""
    from cnclip_edu.data import formats

    fields = line.rstrip("\r\n").split("\t")
    if len(fields) != 2:
        raise ValueError(f"expected 'image_id<TAB>base64', found {len(fields)} tab-separated field(s)")
    image_id = int(fields[0])
    return image_id, formats.open_image(formats.decode_b64(fields[1], strict=True), verify=True)


_REFUSED = "抛出了异常（坏数据被拒绝）"


BUILDS_05_1 = ("cnclip_edu.data.formats.decode_b64", "cnclip_edu.data.formats.open_image",
               "cnclip_edu.data.formats.decode_image")


def _run_decode(f, line: str):
    try:
        out = guarded(f, decode_tsv_line, BUILDS_05_1)(line)
    except NotImplementedError:
        raise
    except Exception:  # ValueError, binascii.Error, OSError from PIL: any refusal counts
        return _REFUSED
    if not (isinstance(out, tuple) and len(out) == 2):
        return out
    image_id, img = out
    try:
        pixels = np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
    except Exception:
        return image_id, "一张解码不了的图片（返回前没有用 img.load() 验证）"
    return image_id, pixels


def _urlsafe(b64: str) -> str:
    """The same bytes in base64's URL-safe alphabet (must contain a '-' or '_' to be a real case)."""
    out = b64.replace("+", "-").replace("/", "_")
    assert out != b64, "pick an image whose base64 has a '+' or '/'"
    return out


def _cut_jpeg(jpeg_b64: str, keep: float = 0.5) -> str:
    """A JPEG cut inside its entropy-coded scan: the header is intact, so `Image.open` and `verify()`
    (which does not decode JPEG data) both pass; only decoding the pixels finds the truncation."""
    raw = base64.b64decode(jpeg_b64)
    scan = raw.index(b"\xff\xda")                       # start-of-scan marker: the pixel data follows
    return base64.b64encode(raw[: scan + int((len(raw) - scan) * keep)]).decode("ascii")


def _cases_05_1():
    png, jpeg = _png_b64(_COLORS[0]), _png_b64(_COLORS[1], fmt="JPEG")
    raw = base64.b64decode(png)
    truncated = base64.b64encode(raw[: len(raw) * 2 // 3]).decode("ascii")
    junk = png[:20] + "!*" + png[20:]   # characters outside the base64 alphabet
    return [
        Case("从文件读出的一行 PNG（末尾带 \\n）", lambda f: _run_decode(f, f"1000\t{png}\n")),
        Case("一行 JPEG", lambda f: _run_decode(f, f"1001\t{jpeg}")),
        Case("URL 安全字母表的 base64（'-'、'_' 代替 '+'、'/'，cn_clip 读得懂）",
             lambda f: _run_decode(f, f"1005\t{_urlsafe(jpeg)}")),
        Case("截断的 PNG（只有前 2/3 的字节）", lambda f: _run_decode(f, f"1002\t{truncated}")),
        Case("截断的 JPEG（文件头完好，像素数据只剩一半）", lambda f: _run_decode(f, f"1006\t{_cut_jpeg(jpeg)}")),
        Case("base64 里混进了非法字符 '!*'", lambda f: _run_decode(f, f"1003\t{junk}")),
        Case("id 与 base64 之间是空格而不是制表符", lambda f: _run_decode(f, f"1004 {png}")),
    ]


def _hidden_05_1(seed: int):
    import random

    rng = random.Random(seed)
    color = _COLORS[rng.randrange(len(_COLORS))]
    png, jpeg = _png_b64(color, size=rng.randint(8, 20)), _png_b64(color, fmt="JPEG", size=rng.randint(8, 20))
    raw = base64.b64decode(png)
    cut = base64.b64encode(raw[: rng.randint(len(raw) // 3, len(raw) - 8)]).decode("ascii")
    jpeg_cut = _cut_jpeg(jpeg, keep=rng.uniform(0.4, 0.8))
    at = rng.randint(4, len(png) - 4)
    iid = rng.randint(1, 10**9)
    return [Case("一行 PNG，末尾带换行", lambda f: _run_decode(f, f"{iid}\t{png}\n")),
            Case("一行 JPEG，末尾是 \\r\\n", lambda f: _run_decode(f, f"{iid}\t{jpeg}\r\n")),
            Case("截断的图片", lambda f: _run_decode(f, f"{iid}\t{cut}")),
            Case("截断的 JPEG", lambda f: _run_decode(f, f"{iid}\t{jpeg_cut}")),
            Case("base64 里有非法字符", lambda f: _run_decode(f, f"{iid}\t{png[:at]}#{png[at:]}")),
            Case("URL 安全字母表的 base64", lambda f: _run_decode(f, f"{iid}\t{_urlsafe(jpeg)}")),
            Case("多了一列", lambda f: _run_decode(f, f"{iid}\t{png}\textra"))]


def _mutants_05_1():
    from PIL import Image

    def lazy(line):
        sid, b64 = line.strip().split("\t")
        return int(sid), Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))

    def standard_only(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return int(sid), img

    def lenient(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        return int(sid), img

    def str_id(line):
        sid, b64 = line.strip().split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return sid, img

    def keeps_newline(line):
        sid, b64 = line.split("\t")
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        img.load()
        return int(sid), img

    def verify_then_reopen(line):
        # the common idiom: verify() checks PNG chunks and CRCs, but does not decode JPEG data
        sid, b64 = line.strip().split("\t")
        raw = base64.b64decode(b64.replace("-", "+").replace("_", "/"), validate=True)
        Image.open(io.BytesIO(raw)).verify()
        return int(sid), Image.open(io.BytesIO(raw))           # verify() leaves the image unusable: open again

    return {"没有 img.load()（Image.open 只读文件头，截断的图混了过去）": lazy,
            "用 img.verify() 代替解码（对 JPEG 不解码像素，截断的 JPEG 混了过去）": verify_then_reopen,
            "b64decode 没有 validate=True（非法字符被悄悄丢掉）": lenient,
            "image_id 没有转成 int": str_id, "没有去掉行尾的换行符": keeps_newline,
            "只认标准字母表（URL 安全的 '-'、'_' 被当成非法字符）": standard_only}


register(Exercise(
    id="05.1", title="读一行 TSV：解码并验证 base64 图片", points=2,
    hint="一行要恰好是两列，id 是整数，行尾的换行不属于 base64；base64 有两种字母表，第 63、64 个字符不同，两种都要认；"
         "想一想 b64decode 默认怎样对待字母表以外的字符，"
         "以及 Image.open 返回时到底读了多少字节——截断的图片（PNG 和 JPEG）要在你返回之前就暴露出来：只检查文件结构不够，要真的把像素解出来。",
    reference=decode_tsv_line, cases=_cases_05_1, mutants=_mutants_05_1, hidden=_hidden_05_1, builds=BUILDS_05_1))


# ----------------------------------------------------------------------------- 05.2 an LMDB by hand
def write_split_lmdb(tsv_path, jsonl_path, out_dir, map_size: int = 64 << 20) -> tuple[int, int]:
    """The library's builder on one split: `out_dir/imgs` and `out_dir/pairs` in cn_clip's layout.
    Returns (num_images, num_samples). (`map_size` is unused: build_lmdb grows the map on demand.)"""
    from cnclip_edu.data.lmdb_build import build_lmdb

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:  # build_lmdb reads {split}_imgs.tsv / {split}_texts.jsonl
        shutil.copy(tsv_path, Path(tmp) / f"{out_dir.name}_imgs.tsv")
        shutil.copy(jsonl_path, Path(tmp) / f"{out_dir.name}_texts.jsonl")
        report = build_lmdb(tmp, [out_dir.name], lmdb_dir=out_dir.parent, overwrite=True,
                            progress=False, verbose=False)
    return report[out_dir.name]["images"], report[out_dir.name]["pairs"]


def _read_lmdb(path: Path, pickled: bool):
    """Every key -> value of one LMDB, or the reason it cannot be opened."""
    import lmdb

    from cnclip_edu.data import formats

    try:
        env = lmdb.open(str(path), readonly=True, lock=False, create=False)
    except lmdb.Error as e:
        if "already open" in str(e):
            return "LMDB 还开着：函数结束前没有 env.close()（同一进程里别人就再也打不开它）"
        return f"打不开：{e}"
    out = {}
    with env.begin() as txn:
        for k, v in txn.cursor():
            key = k.decode("utf-8", "replace")
            out[key] = formats.load_pair(v, key) if pickled and key != "num_samples" else bytes(v)
    env.close()
    return out


BUILDS_05_2 = ("cnclip_edu.data.lmdb_build.build_lmdb",)


def _run_writer(f, texts=None, crlf=False):
    with tempfile.TemporaryDirectory() as tmp:
        tsv, jsonl = _write_dataset(Path(tmp) / "src", texts=texts)
        if crlf:  # a TSV written on Windows: every line ends in \r\n
            tsv.write_bytes(tsv.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        out = Path(tmp) / "lmdb" / "mini"
        out.mkdir(parents=True)
        returned = guarded(f, write_split_lmdb, BUILDS_05_2)(tsv, jsonl, out, 16 << 20)
        gc.collect()  # an Environment the answer forgot to close stays open until collected
        return {"返回值": returned, "imgs": _read_lmdb(out / "imgs", False), "pairs": _read_lmdb(out / "pairs", True)}


def _cases_05_2():
    return [Case("5 张图、5 条描述（其中一条有 2 张图、一条没有图）", _run_writer),
            Case("同样的数据，TSV 的行尾是 \\r\\n", lambda f: _run_writer(f, crlf=True))]


def _hidden_05_2(seed: int):
    return [Case("5 张图、随机的 4-7 条描述（每条 0-3 张图）", lambda f: _run_writer(f, _random_texts(seed))),
            Case("随机的描述，TSV 的行尾是 \\r\\n", lambda f: _run_writer(f, _random_texts(seed), crlf=True))]


def _hand_writer(pairs_key="index", count_keys=True, first_only=False, raw_bytes=False, swap=False,
                 close=True, commit=True, keep_cr=False):
    """A hand-written builder with one slip switched on (the mutants)."""
    import lmdb

    def write(tsv_path, jsonl_path, out_dir, map_size=64 << 20):
        out_dir = Path(out_dir)
        envs = []
        env = lmdb.open(str(out_dir / "imgs"), map_size=map_size)
        envs.append(env)
        txn = env.begin(write=True)
        n_img = 0
        # keep_cr: the file read as bytes (no newline translation), only b"\n" stripped
        lines = (raw.decode("utf-8").rstrip("\n") for raw in open(tsv_path, "rb")) if keep_cr else \
            (line.strip() for line in open(tsv_path, encoding="utf-8"))
        for line in lines:
            sid, b64 = line.split("\t")
            value = base64.b64decode(b64) if raw_bytes else b64.encode("utf-8")
            txn.put(str(int(sid)).encode("utf-8"), value)
            n_img += 1
        if count_keys:
            txn.put(b"num_images", str(n_img).encode("utf-8"))
        if commit:
            txn.commit()
        env = lmdb.open(str(out_dir / "pairs"), map_size=map_size)
        envs.append(env)
        n_pair = 0
        with env.begin(write=True) as txn:
            for line in open(jsonl_path, encoding="utf-8"):
                obj = json.loads(line)
                ids = obj["image_ids"][:1] if first_only else obj["image_ids"]
                for image_id in ids:
                    key = str(obj["text_id"] if pairs_key == "text_id" else n_pair)
                    record = (obj["text_id"], image_id, obj["text"]) if swap else (image_id, obj["text_id"], obj["text"])
                    txn.put(key.encode("utf-8"), pickle.dumps(record))
                    n_pair += 1
            if count_keys:
                txn.put(b"num_samples", str(n_pair).encode("utf-8"))
        if close:
            for e in envs:
                e.close()
        else:
            _LEAKED.extend(envs)  # keep them open, as a forgotten close() does
        return n_img, n_pair

    return write


_LEAKED: list = []


def _mutants_05_2():
    return {"忘了写 num_images / num_samples": _hand_writer(count_keys=False),
            "pairs 的键用了 text_id（同一描述的多张图互相覆盖）": _hand_writer(pairs_key="text_id"),
            "每条描述只写了第一张图": _hand_writer(first_only=True),
            "imgs 里存的是解码后的图片字节，不是 base64": _hand_writer(raw_bytes=True),
            "pickle 的顺序写成了 (text_id, image_id, text)": _hand_writer(swap=True),
            "写事务没有 commit（图片一张也没写进去）": _hand_writer(commit=False),
            "忘了 env.close()": _hand_writer(close=False),
            "按字节读 TSV、只去掉了行尾的 \\n（\\r\\n 的行把 \\r 写进了 base64）": _hand_writer(keep_cr=True)}


register(Exercise(
    id="05.2", title="亲手写一个 LMDB（cn_clip 的 imgs / pairs 布局）", points=3,
    hint="检查逐个键、逐个值地比较两个库，所以格式要和上面的布局一字不差：键和两个计数都是十进制数字的 UTF-8 字节，"
         "imgs 的值是 TSV 里那段 base64 文本本身。pairs 的条数等于所有描述的图片数之和（没有图的描述一条也不写），编号连续。"
         "写事务只有提交了才算数；一个进程里同一个库只能打开一次，用完要关。",
    reference=write_split_lmdb, cases=_cases_05_2, mutants=_mutants_05_2, hidden=_hidden_05_2, builds=BUILDS_05_2))


# ----------------------------------------------------------------------------- 05.3 a worker-safe Dataset
_Reference = LibraryDataset   # the library's LMDBDataset with the exercise's signature


BUILDS_05_3 = ("cnclip_edu.data.dataset.LMDBDataset.__getitem__", "cnclip_edu.data.dataset.LMDBDataset.pair",
               "cnclip_edu.data.dataset.shared_txn")


def _lmdb_handles(ds) -> list:
    """The LMDB environments / transactions a dataset object holds (in its attributes, one level deep)."""
    import lmdb

    found = []
    for value in vars(ds).values():
        values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        found += [v for v in values if isinstance(v, (lmdb.Environment, lmdb.Transaction))]
    return found


class _Probe:
    """Wraps a dataset for DataLoader workers: item i -> (image, tokens, whether this worker read it through
    handles of its own, not ones inherited from the parent process)."""

    def __init__(self, ds, parent_handles: list):
        self.ds, self.parent_handles = ds, parent_handles  # kept alive: their ids cannot be reused

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, index):
        image, tokens = self.ds[index]
        inherited = any(h is p for h in _lmdb_handles(self.ds) for p in self.parent_handles)
        return image, tokens, not inherited


def _toy_tokenizer(texts, context_length):
    """Not BERT: one id per character (a case that shows the Dataset really uses the tokenizer it is given)."""
    import torch

    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [ord(ch) % 1000 + 1 for ch in text][:context_length]
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def _run_dataset(cls, mode: str, texts=None, urlsafe: bool = False):
    import pickle as _pickle

    import torch
    from torch.utils.data import DataLoader

    from cnclip_edu.data.dataset import close_shared_envs
    from cnclip_edu.data.lmdb_build import build_lmdb

    ctx = contextlib.nullcontext() if cls is _Reference else armed(BUILDS_05_3)
    with tempfile.TemporaryDirectory() as tmp, ctx:
        src = Path(tmp) / "src"
        _write_dataset(src, texts=texts, urlsafe=urlsafe)
        build_lmdb(src, ["mini"], progress=False, verbose=False)
        root = src / "lmdb" / "mini"
        ds = cls(root, 16, 12, tokenizer=_toy_tokenizer) if mode == "tokenizer" else cls(root, 16, 12)
        try:
            if mode == "fresh":
                try:
                    _pickle.dumps(ds)
                    picklable = True
                except Exception as e:  # an lmdb.Environment cannot be pickled
                    picklable = f"pickle.dumps 失败：{type(e).__name__}: {e}"
                return {"len(ds)": len(ds), "刚创建的 Dataset 能 pickle": picklable,
                        "刚创建的 Dataset 持有打开的 LMDB": bool(_lmdb_handles(ds))}
            if mode == "end":
                try:
                    ds[len(ds)]
                    return "ds[len(ds)] 没有报错"
                except IndexError:
                    return "IndexError"
                except Exception as e:
                    return f"{type(e).__name__}（应当是 IndexError）"
            if mode == "main":  # every sample read in this process, in order
                items = [ds[i] for i in range(len(ds))]
                if not items:  # a hidden draw may pair no image with any text
                    return {"样本数": 0}
                return {"样本数": len(items), "图片 (N, 3, 16, 16)": torch.stack([im for im, _ in items]),
                        "tokens (N, 12)": torch.stack([tok for _, tok in items])}
            if mode == "pickle_after_read":  # what spawn / forkserver do: the worker gets pickle.loads(pickle.dumps(ds))
                ds[0]
                out = {"读过 ds[0] 之后 pickle.dumps(ds)": True, "pickle 出来的副本持有打开的 LMDB": None,
                       "副本读出的图片 (N, 3, 16, 16)": None, "副本读出的 tokens (N, 12)": None}
                try:
                    blob = _pickle.dumps(ds)
                except Exception as e:  # an lmdb.Environment / Transaction cannot be pickled
                    out["读过 ds[0] 之后 pickle.dumps(ds)"] = f"失败：{type(e).__name__}: {e}"
                    return out
                copy = _pickle.loads(blob)
                out["pickle 出来的副本持有打开的 LMDB"] = bool(_lmdb_handles(copy))
                ds = None
                gc.collect()  # the parent's handles are gone, as in a freshly spawned process
                items = [copy[i] for i in range(len(copy))]
                out["副本读出的图片 (N, 3, 16, 16)"] = torch.stack([im for im, _ in items])
                out["副本读出的 tokens (N, 12)"] = torch.stack([tok for _, tok in items])
                copy = None
                return out
            if mode == "parent_first":
                ds[0]
            loader = DataLoader(_Probe(ds, _lmdb_handles(ds)), batch_size=2, num_workers=2,
                                multiprocessing_context="fork")
            images, tokens, own = zip(*loader)
            return {"样本数": sum(len(b) for b in images), "图片 (N, 3, 16, 16)": torch.cat(images),
                    "tokens (N, 12)": torch.cat(tokens), "每个 worker 都用自己打开的 LMDB": bool(torch.cat(own).all())}
        finally:
            ds = None
            gc.collect()
            close_shared_envs(root)


def _cases_05_3():
    return [Case("刚创建（还没读过样本）的 Dataset：长度、能否 pickle、是否已经打开了 LMDB", lambda c: _run_dataset(c, "fresh")),
            Case("DataLoader(num_workers=2) 读出全部 6 条样本", lambda c: _run_dataset(c, "workers")),
            Case("主进程先读过 ds[0]，再 fork 出 2 个 worker 读", lambda c: _run_dataset(c, "parent_first")),
            Case("主进程先读过 ds[0]，再 pickle（spawn / forkserver 的 worker 拿到的就是 pickle 出来的副本）",
                 lambda c: _run_dataset(c, "pickle_after_read")),
            Case("越界的下标 ds[len(ds)]", lambda c: _run_dataset(c, "end")),
            Case("传入别的 tokenizer（每个字一个 id）", lambda c: _run_dataset(c, "tokenizer")),
            Case("用 URL 安全字母表（'-'、'_'）写的 TSV 建成的 LMDB，主进程按顺序读出全部样本",
                 lambda c: _run_dataset(c, "main", urlsafe=True))]


def _hidden_05_3(seed: int):
    return [Case(f"随机的描述与配对，{kind}", (lambda m: lambda c: _run_dataset(c, m, _random_texts(seed)))(mode))
            for kind, mode in (("2 个 worker", "workers"), ("主进程先读过", "parent_first"), ("越界下标", "end"),
                               ("长度", "fresh"), ("读过之后 pickle", "pickle_after_read"))] + \
        [Case("随机的描述与配对，URL 安全字母表的 base64",  # one text reaches every image: all of them are read
              lambda c: _run_dataset(c, "main", _random_texts(seed) + [(8100, "五张图都是它的标准匹配", [1005, 1003, 1001, 1004, 1002])],
                                     urlsafe=True))]


class _Mini:
    """A hand-written worker-safe dataset; `slip` switches on one mistake (the mutants)."""

    def __init__(self, lmdb_split_dir, resolution, context_length=52, tokenizer=None, slip=None):
        import lmdb

        from cnclip_edu.data.transforms import image_transform
        from cnclip_edu.tokenizer import tokenize

        self.root, self.slip = Path(lmdb_split_dir), slip
        self.transform, self.context_length = image_transform(resolution), context_length
        self.tokenizer = tokenize if tokenizer is None or slip == "ignores_tokenizer" else tokenizer
        env = lmdb.open(str(self.root / "pairs"), readonly=True, lock=False)
        with env.begin() as txn:
            self.num_samples = int(txn.get(b"num_samples"))
            if slip == "entries":  # counts every key, num_samples included
                self.num_samples = txn.stat()["entries"]
        env.close()
        self.pid, self.txns = None, None
        if slip == "eager":
            self._open()

    def _open(self):
        import lmdb

        for env in getattr(self, "envs", []):  # inherited from the parent: py-lmdb refuses a second open
            env.close()
        envs = [lmdb.open(str(self.root / db), readonly=True, lock=False, readahead=False) for db in ("pairs", "imgs")]
        self.envs, self.txns, self.pid = envs, [e.begin() for e in envs], os.getpid()

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.slip == "no_getstate":  # pickles the handles along: fails once a read has opened them
            return state
        if self.slip == "getstate_keeps_envs":  # drops the transactions only
            return {**state, "txns": None}
        state.pop("envs", None)
        if self.slip == "getstate_drops_attr":  # the copy has no txns attribute at all
            state.pop("txns", None)
            return state
        return {**state, "txns": None, "pid": None}  # the copy opens its own handles on its first read

    def __len__(self):
        return self.num_samples

    def __getitem__(self, index):
        from PIL import Image

        from cnclip_edu.data.dataset import preprocess_text

        if self.txns is None or (self.pid != os.getpid() and self.slip != "no_pid"):
            self._open()
        if index >= self.num_samples and self.slip != "no_bound":
            raise IndexError(index)
        pairs, imgs = self.txns
        key = bytes(index) if self.slip == "bytes_key" else str(index).encode("utf-8")
        image_id, text_id, text = pickle.loads(pairs.get(key))
        b64 = imgs.get(str(text_id if self.slip == "text_id" else image_id).encode("utf-8"))
        decode = base64.b64decode if self.slip == "standard_only" else base64.urlsafe_b64decode  # urlsafe: both alphabets
        image = self.transform(Image.open(io.BytesIO(decode(b64))))
        if self.slip == "raw_text":
            return image, text
        text = text if self.slip == "no_preprocess" else preprocess_text(text)
        tokens = self.tokenizer([text], context_length=self.context_length)
        return image, (tokens if self.slip == "no_index" else tokens[0])


def _mutants_05_3():
    import functools

    slips = {"eager": "在 __init__ 里就打开了 LMDB（spawn 的 worker 无法 pickle，fork 的 worker 共用父进程的句柄）",
             "no_pid": "懒打开，但没有检查进程号：fork 出的 worker 用的是父进程打开的句柄",
             "entries": "len 用了 stat()['entries']（把 num_samples 这个键也数进去了）",
             "bytes_key": "键写成 bytes(index)（那是 index 个零字节，不是数字的字符）",
             "no_bound": "越界的下标没有抛 IndexError", "text_id": "用 text_id 去 imgs 库里取图",
             "raw_text": "返回了文本，而不是 token", "no_preprocess": "忘了 preprocess_text（中文引号变成 [UNK]）",
             "no_index": "tokens 没有取 [0]（形状是 (1, L)）", "ignores_tokenizer": "没有用传进来的 tokenizer",
             "no_getstate": "没有 __getstate__：读过一次之后，对象连同打开的 LMDB 一起 pickle，spawn / forkserver 的 worker 失败",
             "getstate_keeps_envs": "__getstate__ 只去掉了事务，LMDB 环境对象还留在要 pickle 的状态里",
             "getstate_drops_attr": "__getstate__ 把 txns 整个删掉了：副本第一次读取时没有这个属性",
             "standard_only": "base64 用 b64decode 解码：URL 安全字母表的 '-'、'_' 被悄悄丢掉（练习 05.1 讲过）"}
    return {desc: functools.partial(_Mini, slip=slip) for slip, desc in slips.items()}


register(Exercise(
    id="05.3", title="在多个 worker 里也安全的 LMDB Dataset", points=3,
    hint="__init__ 里只能留下能被 pickle 的东西（路径、数字、变换）：样本数可以打开一下读出来，但要马上关掉。句柄在第一次"
         "读取时才打开，并记下是哪个进程打开的；进程号变了（fork 出来的 worker），先关掉继承来的那份、再在本进程里打开。"
         "读过一次之后，对象里就有了句柄：spawn / forkserver 的 worker 拿到的是 pickle 出来的副本，所以 pickle 时要把句柄"
         "从对象的状态里拿掉（Python 在 pickle 一个对象时会问它要哪些状态），副本在自己的进程里第一次读取时再打开。"
         "第 index 条样本的键、它指向的图片、越界时抛什么异常，都照 cn_clip 的约定来；imgs 里的 base64 和 TSV 里的一样，"
         "可能用两种字母表中的任何一种，解码时都要认（练习 05.1 讲过默认的 b64decode 怎样对待字母表以外的字符）。",
    reference=_Reference, cases=_cases_05_3, mutants=_mutants_05_3, hidden=_hidden_05_3, builds=BUILDS_05_3))


# ----------------------------------------------------------------------------- 05.4 the capstone
def _capstone_step(mine, model, lmdb_split_dir, batch_size):
    from cnclip_edu.course.capstone import training_step

    return training_step(mine, model, lmdb_split_dir, batch_size)


def _run_capstone(f, seed: int, batch_size: int, stale_grads: bool = False):
    """The reference step runs on the library's pieces, the student's step on the student's own
    (`%%my_clip` cells of this work folder; the library's where a notebook has not run)."""
    from cnclip_edu.course import capstone

    if f is _capstone_step:
        return capstone.run_step(f, capstone.library_pieces(), seed, batch_size, stale_grads)
    return capstone.run_step(guarded(f, _capstone_step, ("cnclip_edu.course.capstone.training_step",)),
                             capstone.collect()[0], seed, batch_size, stale_grads)


def _cases_05_4():
    return [Case("玩具世界的前 8 个图文对", lambda f: _run_capstone(f, 0, 8)),
            Case("另一批（4 对），模型的 .grad 里还留着上一步的梯度", lambda f: _run_capstone(f, 1, 4, stale_grads=True))]


def _hidden_05_4(seed: int):
    import random

    rng = random.Random(seed)
    return [Case("另一份玩具数据、另一个批大小", lambda f, s=rng.randrange(10**6), b=rng.randint(3, 8): _run_capstone(f, s, b)),
            Case(".grad 里留着上一步的梯度", lambda f, s=rng.randrange(10**6): _run_capstone(f, s, 5, stale_grads=True))]


def _mutants_05_4():
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from cnclip_edu.tokenizer import VOCAB_PATH, tokenize

    def step(normalize=True, exp=True, zero=True, backward=True, own_tokenizer=True, shuffle=False, no_grad=False):
        def run(mine, model, root, batch_size):
            vocab = mine.load_vocab(VOCAB_PATH)
            tok = (lambda texts, context_length: mine.tokenize(texts, vocab, context_length)) if own_tokenizer else None
            ds = mine.MyLMDBDataset(root, model.image_resolution, context_length=model.context_length, tokenizer=tok)
            images, tokens = next(iter(DataLoader(ds, batch_size=batch_size, shuffle=shuffle)))
            if zero:
                model.zero_grad()
            with torch.no_grad() if no_grad else torch.enable_grad():
                img, txt = mine.encode_image(model, images), mine.encode_text(model, tokens)
            if normalize:
                img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
            loss = mine.clip_loss(img, txt, model.logit_scale.exp() if exp else model.logit_scale)
            if backward and loss.requires_grad:
                loss.backward()
            return loss
        return run

    del tokenize
    return {"特征没有 L2 归一化": step(normalize=False), "logit_scale 没有取 exp": step(exp=False),
            "没有先把梯度清零": step(zero=False), "没有 backward": step(backward=False),
            "Dataset 用了库里的分词器，而不是你在 01 写的 tokenize": step(own_tokenizer=False),
            "DataLoader 打乱了顺序（shuffle=True）：和库比较的不是同一批": step(shuffle=True),
            "两个塔在 torch.no_grad() 里前向（梯度传不到塔里）": step(no_grad=True)}


register(Exercise(
    id="05.4", title="终点：用你自己的零件跑一步 CLIP 训练", points=4,
    hint="每一步都用 mine 里的零件：词表和分词器（01）、Dataset（05，把你的分词器交给它）、两个塔（02、03）、损失（04）。"
         "想一想：损失要的特征是什么样的（04 说过），logit_scale 在模型里存的是什么，.grad 里原来可能有什么，"
         "以及要和库比较的是不是同一批样本。如果提示说某个零件不一致，回到那个 notebook 去改。",
    reference=_capstone_step, cases=_cases_05_4, mutants=_mutants_05_4, hidden=_hidden_05_4, needs=("04.1", "05.3"),
    builds=("cnclip_edu.model.clip.CLIP.encode_image", "cnclip_edu.model.clip.CLIP.encode_text",
            "cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.data.dataset.LMDBDataset.__getitem__",
            "cnclip_edu.tokenizer.tokenize", "cnclip_edu.course.capstone.training_step")))
