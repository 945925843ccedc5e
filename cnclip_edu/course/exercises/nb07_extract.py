"""Exercise 07.0 of notebook 07 (retrieval evaluation): the feature-extraction loop.

07.0 is compared with the library's `eval.features._extract` (what `extract_text_features` and
`extract_image_features` run) on a tiny tower with parameters, over a list of `(id, input)` pairs whose
ids are neither sorted nor 0..N-1 and whose length a batch does not divide: the ids must come from the
dataset, in order, the last partial batch must be kept, and every row must have length 1. The tower
notes whether it was called with gradients recorded, so the case also reports "no_grad used".
"""
from __future__ import annotations

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.0 feature extraction
def _library_extract(encode, dataset, batch_size, device):
    """The library's loop (no progress bar): (ids (N,) int64, L2-normalised feats (N, D) float32)."""
    from cnclip_edu.eval.features import _extract

    return _extract(encode, dataset, batch_size, device, "fp32", 0, "features", progress=False)


def _toy_tower(kind: str, seed: int):
    """A tiny tower with trainable parameters; `encode` gives rows of different lengths, as a real tower does."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(seed)
            if kind == "text":
                self.table = torch.nn.Parameter(torch.randn(30, 8, generator=g))     # token id -> (8,)
            self.proj = torch.nn.Parameter(torch.randn(8 if kind == "text" else 48, 6, generator=g))
            self.grad_seen = False

        def encode(self, x):   # text (B, L) int64 / image (B, 3, 4, 4) -> (B, 6), not unit length
            self.grad_seen |= torch.is_grad_enabled()
            h = self.table[x].mean(dim=1) if kind == "text" else x.flatten(1)
            return (h @ self.proj) * (1 + x.reshape(len(x), -1)[:, :1].float().abs())
    return Tower()


def _toy_set(kind: str, n: int, seed: int) -> list:
    """n (id, input) pairs: ids large, unsorted and unique; text inputs (7,) token ids, images (3, 4, 4)."""
    import random

    import torch

    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    ids = rng.sample(range(3_000_000, 3_000_000 + 10 * n), n)
    if kind == "text":
        return [(i, torch.randint(1, 30, (7,), generator=g)) for i in ids]
    return [(i, torch.rand(3, 4, 4, generator=g)) for i in ids]


def _run_extract(answer, kind: str, n: int, batch_size: int, seed: int) -> dict:
    tower = _toy_tower(kind, seed)
    import numpy as np

    ids, feats = answer(tower.encode, _toy_set(kind, n, seed), batch_size, "cpu")
    # the contract names the types: the comparison of values alone would let torch tensors and float64 through
    return {"ids": ids, "feats": feats, "编码时关掉了梯度记录 (no_grad)": not tower.grad_seen,
            "ids 是整数 numpy 数组": isinstance(ids, np.ndarray) and ids.dtype.kind in "iu",
            "feats 是 float32 的 numpy 数组": isinstance(feats, np.ndarray) and feats.dtype == np.float32}


def _extract_cases():
    return [Case(label, lambda f, k=k, n=n, b=b, s=s: _run_extract(f, k, n, b, s))
            for label, k, n, b, s in [("10 句描述，每批 4 句（最后一批只有 2 句）", "text", 10, 4, 0),
                                      ("9 张图，每批 3 张（恰好整除）", "image", 9, 3, 1),
                                      ("5 句描述，每批 8 句（一批就装下）", "text", 5, 8, 2)]]


def _extract_hidden(seed: int):
    import random

    rng = random.Random(seed)
    out = []
    for kind, label in (("text", "描述，批大小不整除"), ("image", "图片，批大小不整除")):
        b = rng.randint(2, 6)
        n = b * rng.randint(1, 4) + rng.randint(1, b - 1)
        out.append(Case(label, lambda f, k=kind, n=n, b=b, s=rng.randrange(10 ** 6): _run_extract(f, k, n, b, s)))
    return out


def _extract_mistake(kind: str):
    def extract_features(encode, dataset, batch_size, device):
        import contextlib

        import numpy as np
        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=batch_size, shuffle=kind == "shuffle", drop_last=kind == "drop_last")
        ids, feats = [], []
        with contextlib.nullcontext() if kind == "grad" else torch.no_grad():
            for batch_ids, x in loader:
                f = encode(x.to(device)).detach()
                if kind != "no_norm":
                    f = f / f.norm(dim=0 if kind == "norm_dim0" else -1, keepdim=True)
                ids.append(batch_ids.numpy())
                feats.append(f.cpu().numpy())
        ids, feats = np.concatenate(ids), np.concatenate(feats)
        if kind == "torch":
            return torch.from_numpy(ids), torch.from_numpy(feats)
        if kind == "float64":
            feats = np.array(feats.tolist())
        return (np.arange(len(ids)) if kind == "positions" else ids), feats
    return extract_features


register(Exercise(
    id="07.0", title="特征提取：一批一批地编码、归一化、拼起来", points=2,
    hint="按批取数据集（顺序不能打乱，最后不满的一批也要留下）；每批在不记录计算图的情况下送进编码函数，每一行除以它自己的长度；"
         "id 用数据集给的（不是 0、1、2……的位置），和特征一批一批地按原来的顺序拼起来，各自变成 numpy 数组。",
    reference=_library_extract,
    cases=_extract_cases,
    hidden=_extract_hidden,
    builds=("cnclip_edu.eval.features._extract", "cnclip_edu.eval.features.extract_text_features",
            "cnclip_edu.eval.features.extract_image_features"),
    mutants=lambda: {
        "忘了归一化": _extract_mistake("no_norm"),
        "沿 dim=0（批那一维）归一化": _extract_mistake("norm_dim0"),
        "DataLoader 用了 shuffle=True（顺序打乱）": _extract_mistake("shuffle"),
        "DataLoader 用了 drop_last=True（丢了最后不满的一批）": _extract_mistake("drop_last"),
        "id 写成了 0、1、2……的位置": _extract_mistake("positions"),
        "没有 torch.no_grad()（用 .detach() 绕过去）": _extract_mistake("grad"),
        "返回的是 torch 张量（用 torch.cat 拼），不是 numpy 数组": _extract_mistake("torch"),
        "特征经过 .tolist() 再变回数组，成了 float64": _extract_mistake("float64"),
    },
))
