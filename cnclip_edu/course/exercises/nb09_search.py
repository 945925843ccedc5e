"""Exercise 09.9 of notebook 09 (deployment): text-to-image search from two .onnx files alone, every
preprocessing number (resolution, mean, std, context length) read from the files' metadata.

The two sessions hold tiny towers (09.2's image tower, `_tiny_image_onnx`, and a padding-free text
tower over the whole BERT vocabulary) whose metadata are written per case, with a mean and std that
are not CLIP's, so an answer that uses the library's constants or a fixed context length differs.
"""
from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path

from .core import Case, Exercise, register
from .nb09_run import _tiny_image_onnx


# ----------------------------------------------------------------------------- 09.9 search from two files alone
_SEARCH_CONTEXT = 12  # the tiny text tower's position rows: the context length its metadata states


def _tiny_search_text_tower():
    """(B, L) BERT ids -> (B, 5): the mean of token + position vectors over the real tokens (padding-free)."""
    import torch
    from torch import nn

    class TinySearchText(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(21128, 4)                                   # the whole BERT vocabulary
            self.pos = nn.Parameter(torch.randn(_SEARCH_CONTEXT, 4))           # (context, 4)
            self.proj = nn.Linear(4, 5)

        def forward(self, x):
            h = self.tok(x) + self.pos[: x.shape[1]]                           # (B, L, 4)
            real = (x != 0).unsqueeze(-1).to(h.dtype)                          # (B, L, 1): [PAD] counts for nothing
            return self.proj((h * real).sum(1) / real.sum(1))                  # (B, 5)

    torch.manual_seed(3)
    return TinySearchText().eval()


@functools.lru_cache(maxsize=1)
def _search_models() -> tuple[bytes, bytes]:
    """The tiny image tower (B, 3, 8, 8) and text tower as ONNX bytes, without metadata (added per case)."""
    import cnclip_edu as cc
    from cnclip_edu.deploy.export import export_program

    text_example = cc.tokenize(["红色的圆形", "两个蓝色的三角形"], context_length=_SEARCH_CONTEXT)  # (2, 12)
    with tempfile.TemporaryDirectory() as tmp:
        export_program(_tiny_search_text_tower(), "text", text_example).save(str(Path(tmp) / "txt.onnx"))
        return _tiny_image_onnx(), (Path(tmp) / "txt.onnx").read_bytes()


def _search_sessions(mean, std):
    """Two CPU sessions whose files carry the metadata a deployed pair carries (this mean and std)."""
    import json

    import onnx
    import onnxruntime as ort

    out = []
    for blob, meta in zip(_search_models(), (
            {"tower": "image", "image_resolution": "8", "image_mean": json.dumps(mean), "image_std": json.dumps(std),
             "features": "unnormalized (L2-normalize before cosine similarity)"},
            {"tower": "text", "context_length": str(_SEARCH_CONTEXT), "pad_id": "0",
             "features": "unnormalized (L2-normalize before cosine similarity)"})):
        proto = onnx.load_from_string(blob)
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        out.append(ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]))
    return out


def _pictures(seed: int, n: int, gray: bool = True):
    """`n` random pictures of different sizes (none 8 x 8), RGB except one grayscale ('L') one."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pics = []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(5, 24, 2))
        base = rng.integers(0, 256, 3) * rng.uniform(0.1, 1.0)                 # a colour, dark to bright
        arr = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        pics.append(Image.fromarray(arr[..., 0], mode="L") if gray and i == 1 else Image.fromarray(arr, mode="RGB"))
    return pics


def _search_case(label: str, seed: int, n_pictures: int, queries: list[str], top_k: int,
                 mean=(0.2, 0.5, 0.7), std=(0.3, 0.2, 0.15)) -> Case:
    def run(f):
        image_session, text_session = _search_sessions(list(mean), list(std))
        idx, scores = f(image_session, text_session, _pictures(seed, n_pictures), list(queries), top_k)
        import numpy as np

        return {"每个查询选中的图片（下标，最好的在前）": np.asarray(idx).astype(np.int64).tolist(),
                "余弦相似度": np.asarray(scores, dtype=np.float32)}
    return Case(label, run)


def _search_cases():
    return [_search_case("6 张大小不一的图（有一张灰度图），3 个查询，top 2", 0, 6, ["红色的圆形", "一个蓝色的方块", "绿"], 2),
            _search_case("一个超过 context_length 的长查询，top 1", 1, 4, ["一个黄色的正方形在绿色的星星左边", "紫色"], 1),
            _search_case("另一组均值和标准差，5 个查询，top 3", 2, 5, ["圆", "三角形", "星星", "两个", "白色的背景"], 3,
                         mean=(0.6, 0.1, 0.4), std=(0.1, 0.35, 0.2))]


def _search_hidden(seed: int):
    rng = random.Random(seed)
    chars = "红橙黄绿青蓝紫黑白灰圆形方三角星两个一在左右上下的和"
    queries = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(2, 6))]
    mean = tuple(round(rng.uniform(0.1, 0.9), 3) for _ in range(3))
    std = tuple(round(rng.uniform(0.1, 0.4), 3) for _ in range(3))
    n = rng.randint(3, 9)
    return [_search_case("随机的图片、查询和均值、标准差", rng.randrange(1 << 30), n, queries, rng.randint(1, n), mean, std),
            _search_case("混进一个很长的查询", rng.randrange(1 << 30), n,
                         queries[:1] + ["".join(rng.choice(chars) for _ in range(rng.randint(15, 30)))], 1, mean, std)]


def _reference_search(image_session, text_session, pictures, queries, top_k):
    from cnclip_edu.deploy.search import search_from_metadata

    return search_from_metadata(image_session, text_session, pictures, queries, top_k)


def _search_mutants() -> dict:
    import json

    import numpy as np
    from PIL import Image

    import cnclip_edu as cc
    from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD

    def make(*, no_255=False, no_norm=False, clip_constants=False, reshape_chw=False, no_l2=False, l2_images_only=False,
             ascending=False, per_image=False, context_52=False, bilinear=False, no_rgb=False):
        def answer(image_session, text_session, pictures, queries, top_k):
            im = image_session.get_modelmeta().custom_metadata_map
            tm = text_session.get_modelmeta().custom_metadata_map
            r = int(im["image_resolution"])
            mean = np.array(CLIP_MEAN if clip_constants else json.loads(im["image_mean"]), dtype=np.float32)
            std = np.array(CLIP_STD if clip_constants else json.loads(im["image_std"]), dtype=np.float32)
            xs = []
            for p in pictures:
                p = p if no_rgb else p.convert("RGB")
                a = np.asarray(p.resize((r, r), Image.Resampling.BILINEAR if bilinear else Image.Resampling.BICUBIC),
                               dtype=np.float32)                               # (R, R, 3)
                a = a if no_255 else a / 255
                a = a if no_norm else (a - mean) / std
                xs.append(a.reshape(3, r, r) if reshape_chw else a.transpose(2, 0, 1))
            x = np.stack(xs).astype(np.float32)
            ids = cc.tokenize(list(queries), context_length=52 if context_52 else int(tm["context_length"]))
            ids = ids[:, :int((ids != 0).any(0).nonzero().max()) + 1].numpy()
            img = image_session.run(None, {image_session.get_inputs()[0].name: x})[0]
            txt = text_session.run(None, {text_session.get_inputs()[0].name: ids})[0]
            if not no_l2:
                img = img / np.linalg.norm(img, axis=1, keepdims=True)
                if not l2_images_only:
                    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
            sims = img @ txt.T if per_image else txt @ img.T
            order = np.argsort(sims if ascending else -sims, axis=1)[:, :top_k]
            return order, np.take_along_axis(sims, order, axis=1)
        return answer

    return {"像素没有除以 255": make(no_255=True), "没有减均值、除以标准差": make(no_norm=True),
            "用了库里 CLIP 的均值和标准差，而不是元数据里的": make(clip_constants=True),
            "用 reshape 而不是 transpose 把 (R, R, 3) 变成 (3, R, R)": make(reshape_chw=True),
            "特征没有 L2 归一化（按点积排序）": make(no_l2=True),
            "只归一化了图像特征（分数不是余弦）": make(l2_images_only=True),
            "从小到大排序（选中了最不像的）": make(ascending=True),
            "给每张图找查询（方向反了）": make(per_image=True),
            "文本长度写死成 52（长查询超出位置向量表）": make(context_52=True),
            "用双线性 (bilinear) 而不是元数据写的双三次 (bicubic) 缩放": make(bilinear=True),
            "没有转成 RGB（灰度图只有一个通道）": make(no_rgb=True)}


register(Exercise(
    id="09.9", title="只靠两个 .onnx 文件做以文搜图（预处理全从元数据来）", points=5,
    hint="需要的数都在两个 session 的元数据里：分辨率、均值、标准差 (std)、文本长度，别写死，也别用库的预处理；"
         "图片先统一成 RGB、按元数据写的方式缩放，再变成 (N, 3, R, R) 的 float32；两边的特征都要 L2 归一化，"
         "分数才是余弦；每个查询按分数从大到小取前 top_k 张图。",
    reference=_reference_search,
    cases=_search_cases,
    mutants=_search_mutants,
    hidden=_search_hidden,
    builds=("cnclip_edu.deploy.search.search_from_metadata", "cnclip_edu.deploy.search.preprocess_from_metadata"),
    needs=("09.2", "09.3"),
))
