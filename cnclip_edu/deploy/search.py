"""Text-to-image search from two ONNX sessions and nothing else: what a deployed service does.

    idx, scores = search_from_metadata(image_session, text_session, pictures, ["一个红色的圆形"], top_k=3)

Everything the two files need at run time is in their metadata (`export.py` writes it; ONNX Runtime
shows it as `session.get_modelmeta().custom_metadata_map`): the image resolution, mean and std, and
the text context length. So preprocessing is plain numpy + PIL, no library transform, no config file:
RGB, bicubic resize to R x R, bytes / 255, channels first, (x - mean) / std -- the same floats as
`data.transforms.image_transform` (notebook 09 prints the difference). Captions are tokenized to the
context length, trailing all-[PAD] columns cut (same features, less work). Features come out
unnormalized (metadata "features"), so both sides are L2-normalized before the dot product: ranking by
the raw dot product would favour images whose features happen to be long. Notebook 09's exercise 09.9
builds this function; this is its reference.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np


def preprocess_from_metadata(pictures: Sequence, meta: dict[str, str]) -> np.ndarray:
    """PIL images (any mode, any size) -> (N, 3, R, R) float32, with R, mean and std from the image metadata."""
    from PIL import Image

    from cnclip_edu.data.transforms import to_rgb

    r = int(meta["image_resolution"])
    mean = np.asarray(json.loads(meta["image_mean"]), dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(json.loads(meta["image_std"]), dtype=np.float32).reshape(1, 3, 1, 1)
    pixels = np.stack([np.asarray(to_rgb(p).resize((r, r), Image.Resampling.BICUBIC)) for p in pictures])  # (N, R, R, 3)
    return ((pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255) - mean) / std               # (N, 3, R, R)


def search_from_metadata(image_session, text_session, pictures: Sequence, queries: Sequence[str],
                         top_k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """For each query, the `top_k` best pictures: (indices (Q, k) int64, cosine scores (Q, k) float32), best first."""
    import cnclip_edu as cc

    from .onnx_runner import run_session, trim_padding

    image_meta = image_session.get_modelmeta().custom_metadata_map
    text_meta = text_session.get_modelmeta().custom_metadata_map
    x = preprocess_from_metadata(pictures, image_meta)                                           # (N, 3, R, R)
    ids = trim_padding(cc.tokenize(list(queries), context_length=int(text_meta["context_length"])))  # (Q, L')
    img = run_session(image_session, x)                                                          # (N, E)
    txt = run_session(text_session, ids.numpy())                                                 # (Q, E)
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    sims = txt @ img.T                                                                           # (Q, N) cosine
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_k]                                  # (Q, k) best first
    return order.astype(np.int64), np.take_along_axis(sims, order, axis=1).astype(np.float32)
