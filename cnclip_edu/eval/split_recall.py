"""Text -> image Recall@K of a model on one split of a MUGE-layout folder, in memory.

    r = t2i_recall(model, data_dir, "test")     # {"r1", "r5", "r10", "mean_recall"}

Notebook 07's pipeline (features -> exact top-k -> cn_clip's recall arithmetic) without the files
in between, for a quick before / after comparison (notebook 06's finetune). The image features
depend only on the image tower: pass `image_feats` from an earlier call to skip recomputing them
when only the text tower changed (a finetune with the image tower frozen).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cnclip_edu.data import formats


def image_features(model, data_dir: str | os.PathLike, split: str, device: str = "cpu",
                   batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(image ids (N,), unit-length features (N, D)) of `<data_dir>/lmdb/<split>/imgs`."""
    from cnclip_edu.data.dataset import EvalImageDataset

    from . import features

    dataset = EvalImageDataset(Path(data_dir) / "lmdb" / split / "imgs", model.image_resolution)
    return features.extract_image_features(model, dataset, batch_size, device, progress=False)


def t2i_recall(model, data_dir: str | os.PathLike, split: str, device: str = "cpu", batch_size: int = 128,
               image_feats: tuple[np.ndarray, np.ndarray] | None = None, k: int = 10,
               ranked_out: dict[int, list[int]] | None = None) -> dict[str, float]:
    """Recall@1/5/10 of every caption of `<split>_texts.jsonl` against every image of the split.
    ranked_out: a dict to fill with text id -> its top-k image ids (best first), to look at the hits."""
    from cnclip_edu.data.dataset import EvalTextDataset

    from . import features, recall, topk

    texts = formats.texts_jsonl(data_dir, split)
    text_ids, text_feats = features.extract_text_features(model, EvalTextDataset(texts, 52), batch_size, device,
                                                          progress=False)
    image_ids, feats = image_feats if image_feats is not None else image_features(model, data_dir, split, device,
                                                                                   batch_size)
    _, idx = topk.topk_predictions(text_feats, feats, min(k, len(image_ids)), device=device)
    ranked = {int(t): [int(image_ids[j]) for j in row] for t, row in zip(text_ids, idx)}
    if ranked_out is not None:
        ranked_out.update(ranked)
    return recall.evaluate(recall.read_gold(texts, "t2i"), ranked)
