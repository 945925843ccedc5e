"""Exercise 05.3 of notebook 05: a Dataset that is safe under DataLoader workers (a capstone piece).

The reference is the library's `dataset.LMDBDataset` with the exercise's signature (`capstone.LibraryDataset`),
run on an LMDB built from the tiny dataset (nb05_tiny_data.py): fresh, with forked workers, read first in
the parent, pickled after a read (what spawn / forkserver do), out of range, with another tokenizer.
The mutants are a hand-written dataset with one slip switched on (`_Mini`): an LMDB opened in `__init__`,
no process check, no `__getstate__`, a Dataset that decodes only the standard base64 alphabet, ...
"""
from __future__ import annotations

import base64
import contextlib
import gc
import io
import multiprocessing
import os
import pickle
import tempfile
from pathlib import Path

from .core import Case, Exercise, register
from ..capstone import LibraryDataset
from .nb05_tiny_data import _random_texts, _write_dataset
from .tripwire import armed


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


NO_FORK = "跳过：这台机器没有 fork（Windows），用 fork 启动 DataLoader worker 的 ②、③ 两条查不了；在 Linux / macOS 上再运行检查"
_SAID_NO_FORK: list = []


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
            if "fork" not in multiprocessing.get_all_start_methods():  # Windows: no fork, so these two cases cannot run
                if not _SAID_NO_FORK:  # said once per process, not once per case
                    print(NO_FORK)
                    _SAID_NO_FORK.append(True)
                return NO_FORK
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
        if self.slip != "standard_only":  # both alphabets: '-_' -> '+/', then the strict standard decoder
            b64 = b64.translate(bytes.maketrans(b"-_", b"+/"))
        image = self.transform(Image.open(io.BytesIO(base64.b64decode(b64, validate=True))))
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
    hint="回到上面三种失败：对象里什么时候有打开的句柄，什么时候就不能 pickle——句柄能不能晚一点打开，pickle 时能不能只交出"
         "对象状态的一部分？fork 出的子进程拿到的对象和父进程的一模一样：对象怎样发现读它的进程已经不是打开句柄的那个？"
         "发现以后，想想子进程里那个 “already open” 的报错，重新打开之前先要做什么。第 index 条样本的键、越界时抛什么异常，"
         "都照 cn_clip 的约定来；imgs 里的 base64 可能用两种字母表中的任何一种，解码时都要认（同练习 05.1）。"
         "还卡住就按顺序打开练习说明里的提示 2、3、4。",
    reference=_Reference, cases=_cases_05_3, mutants=_mutants_05_3, hidden=_hidden_05_3, builds=BUILDS_05_3))
