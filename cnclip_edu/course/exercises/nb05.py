"""Notebook 05's checked exercises: read one line of a `{split}_imgs.tsv` strictly, write cn_clip's LMDB
layout by hand, and the `__getitem__` of a minimal LMDB dataset.

References are the library's own code (`formats.decode_b64` / `open_image`, `lmdb_build.build_lmdb`,
`dataset.LMDBDataset`) run on a tiny dataset written here, in a temporary folder, for every case.
The mutants are the slips a student makes: a lazy `Image.open`, a lenient base64 decode, pairs keyed
by text id, a forgotten `num_samples`, `commit` or `env.close()`, a skipped `preprocess_text`, ...
"""
from __future__ import annotations

import base64
import gc
import io
import json
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .core import Case, Exercise, register


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


def _write_dataset(folder: Path, split: str = "mini") -> tuple[Path, Path]:
    """`{split}_imgs.tsv` (5 PNG/JPEG images) and `{split}_texts.jsonl` (5 texts, 6 pairs) in `folder`."""
    from cnclip_edu.data import formats

    images = [(1001 + k, _png_b64(c, fmt="JPEG" if k == 3 else "PNG")) for k, c in enumerate(_COLORS)]
    tsv, jsonl = formats.imgs_tsv(folder, split), formats.texts_jsonl(folder, split)
    formats.write_imgs_tsv(tsv, images)
    formats.write_texts_jsonl(jsonl, _TEXTS)
    return tsv, jsonl


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


def _run_decode(f, line: str):
    try:
        out = f(line)
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


def _cases_05_1():
    png, jpeg = _png_b64(_COLORS[0]), _png_b64(_COLORS[1], fmt="JPEG")
    raw = base64.b64decode(png)
    truncated = base64.b64encode(raw[: len(raw) * 2 // 3]).decode("ascii")
    junk = png[:20] + "!*" + png[20:]   # characters outside the base64 alphabet
    return [
        Case("从文件读出的一行 PNG（末尾带 \\n）", lambda f: _run_decode(f, f"1000\t{png}\n")),
        Case("一行 JPEG", lambda f: _run_decode(f, f"1001\t{jpeg}")),
        Case("截断的 PNG（只有前 2/3 的字节）", lambda f: _run_decode(f, f"1002\t{truncated}")),
        Case("base64 里混进了非法字符 '!*'", lambda f: _run_decode(f, f"1003\t{junk}")),
        Case("id 与 base64 之间是空格而不是制表符", lambda f: _run_decode(f, f"1004 {png}")),
    ]


def _mutants_05_1():
    from PIL import Image

    def lazy(line):
        sid, b64 = line.strip().split("\t")
        return int(sid), Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))

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

    return {"没有 img.load()（Image.open 只读文件头，截断的图混了过去）": lazy,
            "b64decode 没有 validate=True（非法字符被悄悄丢掉）": lenient,
            "image_id 没有转成 int": str_id, "没有去掉行尾的换行符": keeps_newline}


register(Exercise(
    id="05.1", title="读一行 TSV：解码并验证 base64 图片", points=2,
    hint="先 line.strip() 再 split('\\t')，恰好两列；id 用 int()；base64.b64decode(b64, validate=True) 才会拒绝非法字符；"
         "Image.open(io.BytesIO(raw)) 只读了文件头，要再调用 img.load() 把每个像素解出来，截断的图片才会报错。",
    reference=decode_tsv_line, cases=_cases_05_1, mutants=_mutants_05_1))


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


def _run_writer(f):
    with tempfile.TemporaryDirectory() as tmp:
        tsv, jsonl = _write_dataset(Path(tmp) / "src")
        out = Path(tmp) / "lmdb" / "mini"
        out.mkdir(parents=True)
        returned = f(tsv, jsonl, out, 16 << 20)
        gc.collect()  # an Environment the answer forgot to close stays open until collected
        return {"返回值": returned, "imgs": _read_lmdb(out / "imgs", False), "pairs": _read_lmdb(out / "pairs", True)}


def _cases_05_2():
    return [Case("5 张图、5 条描述（其中一条有 2 张图、一条没有图）", _run_writer)]


def _hand_writer(pairs_key="index", count_keys=True, first_only=False, raw_bytes=False, swap=False,
                 close=True, commit=True):
    """A hand-written builder with one slip switched on (the mutants)."""
    import lmdb

    def write(tsv_path, jsonl_path, out_dir, map_size=64 << 20):
        out_dir = Path(out_dir)
        envs = []
        env = lmdb.open(str(out_dir / "imgs"), map_size=map_size)
        envs.append(env)
        txn = env.begin(write=True)
        n_img = 0
        for line in open(tsv_path, encoding="utf-8"):
            sid, b64 = line.strip().split("\t")
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
            "忘了 env.close()": _hand_writer(close=False)}


register(Exercise(
    id="05.2", title="亲手写一个 LMDB（cn_clip 的 imgs / pairs 布局）", points=3,
    hint="imgs：键 str(image_id).encode()，值是 base64 原样的字节，最后 put(b'num_images', 数量)；pairs：每条描述的"
         "每张图各一条，键是从 0 开始的连续编号 str(n).encode()，值 pickle.dumps((image_id, text_id, text))，最后 "
         "put(b'num_samples', 数量)。写在 with env.begin(write=True) as txn: 里（正常结束时自动 commit），写完 env.close()。",
    reference=write_split_lmdb, cases=_cases_05_2, mutants=_mutants_05_2))


# ----------------------------------------------------------------------------- 05.3 __getitem__
def _lmdb_dataset():
    from cnclip_edu.data.dataset import LMDBDataset

    return LMDBDataset


class _Reference:
    """Calls the library's LMDBDataset (imported lazily) with the exercise's signature."""

    def __new__(cls, lmdb_split_dir, resolution, context_length=52):
        return _lmdb_dataset()(lmdb_split_dir, resolution=resolution, context_length=context_length)


def _run_dataset(cls):
    import torch

    from cnclip_edu.data.dataset import close_shared_envs

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        _write_dataset(src)
        from cnclip_edu.data.lmdb_build import build_lmdb

        build_lmdb(src, ["mini"], progress=False, verbose=False)
        root = src / "lmdb" / "mini"
        ds = cls(root, 16, 12)
        try:
            items = [ds[i] for i in range(len(ds))]
            if not all(isinstance(it, tuple) and len(it) == 2 for it in items):
                return {"每条样本": items[0] if items else None}
            images, tokens = zip(*items)

            def stacked(xs):  # (N, ...) if every item is a tensor, else the first item (the mistake to report)
                return torch.stack(xs) if all(isinstance(x, torch.Tensor) for x in xs) else xs[0]

            return {"样本数": len(ds), "图片 (N, 3, 16, 16)": stacked(images), "tokens (N, 12)": stacked(tokens)}
        finally:
            if hasattr(ds, "close"):
                ds.close()
            del ds
            gc.collect()
            close_shared_envs(root)


def _cases_05_3():
    return [Case("5 条描述、6 个图文对的小 LMDB，分辨率 16，context_length 12", _run_dataset)]


def _mini_dataset(slip: str | None = None):
    """A correct minimal dataset, or one with `slip` (the mutants)."""
    import lmdb
    from PIL import Image
    from torch.utils.data import Dataset

    from cnclip_edu.data.dataset import preprocess_text
    from cnclip_edu.data.transforms import image_transform
    from cnclip_edu.tokenizer import tokenize

    class Mini(Dataset):
        def __init__(self, lmdb_split_dir, resolution, context_length=52):
            root = Path(lmdb_split_dir)
            self.env_pairs = lmdb.open(str(root / "pairs"), readonly=True, lock=False, readahead=False)
            self.env_imgs = lmdb.open(str(root / "imgs"), readonly=True, lock=False, readahead=False)
            self.txn_pairs, self.txn_imgs = self.env_pairs.begin(), self.env_imgs.begin()
            self.num_samples = int(self.txn_pairs.get(b"num_samples"))
            self.transform = image_transform(resolution)
            self.context_length = context_length

        def __len__(self):
            return self.num_samples

        def __getitem__(self, index):
            key = str(index + 1 if slip == "off_by_one" else index).encode("utf-8")
            image_id, text_id, text = pickle.loads(self.txn_pairs.get(key))
            b64 = self.txn_imgs.get(str(text_id if slip == "text_id" else image_id).encode("utf-8"))
            image = Image.open(io.BytesIO(base64.b64decode(b64)))
            if slip != "no_transform":
                image = self.transform(image)
            text = text if slip == "no_preprocess" else preprocess_text(text)
            tokens = tokenize([text], context_length=self.context_length)
            return image, (tokens if slip == "no_index" else tokens[0])

        def close(self):
            self.env_pairs.close()
            self.env_imgs.close()

    return Mini


def _mutants_05_3():
    return {"忘了 preprocess_text（中文引号变成 [UNK]）": _mini_dataset("no_preprocess"),
            "用 text_id 去 imgs 库里取图": _mini_dataset("text_id"),
            "图片没有经过 transform（返回的是 PIL 图片）": _mini_dataset("no_transform"),
            "tokens 没有取 [0]（形状是 (1, L)）": _mini_dataset("no_index"),
            "编号从 1 开始（str(index + 1)）": _mini_dataset("off_by_one")}


register(Exercise(
    id="05.3", title="最小的 LMDB Dataset：__getitem__", points=2,
    hint="pairs 的键是 str(index).encode()，pickle.loads 得到 (image_id, text_id, text)；用 image_id（不是 text_id）去 imgs "
         "取 base64，base64.b64decode → io.BytesIO → Image.open → self.transform 得到 (3, R, R)；文本先 preprocess_text 再 "
         "tokenize([text], context_length=...)，它返回 (1, L)，取 [0] 得到 (L,)。",
    reference=_Reference, cases=_cases_05_3, mutants=_mutants_05_3))
