"""Exercise 05.2 of notebook 05: write cn_clip's LMDB layout (`imgs` / `pairs`) by hand.

The reference is the library's builder (`lmdb_build.build_lmdb`) run on the tiny dataset
(nb05_tiny_data.py) in a temporary folder; the two databases are compared key by key. The mutants are
a hand-written builder with one slip switched on: pairs keyed by text id, a forgotten `num_samples`,
`commit` or `env.close()`, decoded bytes stored instead of base64, a `\r` kept from a Windows TSV, ...
"""
from __future__ import annotations

import base64
import gc
import json
import pickle
import shutil
import tempfile
from pathlib import Path

from .core import Case, Exercise, register
from .nb05_tiny_data import _random_texts, _write_dataset
from .tripwire import guarded


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
