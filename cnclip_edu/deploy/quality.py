"""What a deployment costs in accuracy: the toy world's retrieval and zero-shot scores of any encoder.

    from cnclip_edu.deploy.quality import ToyEval
    toy = ToyEval(data_dir, model.image_resolution)    # decodes the images once
    fp32 = toy.scores(model)                           # the PyTorch model, or
    int8 = toy.scores(OnnxEncoder(img, txt))           # anything with encode_image / encode_text
    {k: fp32[k] - int8[k] for k in fp32}               # the accuracy cost of quantisation

Speed-ups are easy to measure; what a faster graph loses decides whether it may go to production.
A feature cosine of 0.9999 says little about retrieval: what matters is whether the top-1 image
of a query changes. So we measure the scores the course itself reports (notebook 07's text-to-image
R@1, notebook 08's zero-shot top-1 per folder) for any encoder: the PyTorch model, an ONNX Runtime
session (fp32, fp16, int8) or a TensorRT engine. The images are decoded once and shared by every
encoder, so comparing three encoders costs three forward passes, not three passes over the files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

ZEROSHOT_TASKS = ("shape", "color", "combo_seen", "combo_heldout")


def _normalized(encode, x: torch.Tensor, batch_size: int, device: str = "cpu") -> torch.Tensor:
    """L2-normalized features of `x`, encoded `batch_size` rows at a time on `device` -> (N, D) float32 CPU."""
    with torch.no_grad():
        f = torch.cat([torch.as_tensor(encode(b.to(device))).float().cpu() for b in x.split(batch_size)])
    return f / f.norm(dim=-1, keepdim=True)


class ToyEval:
    """The toy world's test split and zero-shot folders, decoded once; `scores(encoder)` for each encoder.

    Zero-shot uses each folder's own classes (8-way for combo_heldout, not notebook 08's strict
    48-way test) and the toy templates (`prompts.get_templates("toy-<task>")`), as notebook 08 does.
    """

    def __init__(self, data_dir: str | os.PathLike, image_resolution: int, context_length: int = 52,
                 split: str = "test", tasks: tuple[str, ...] = ZEROSHOT_TASKS, batch_size: int = 256):
        from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
        from cnclip_edu.data.transforms import image_transform
        from cnclip_edu.eval import prompts, recall, zeroshot

        data = Path(data_dir)
        self.batch_size, self.context_length = batch_size, context_length
        texts = EvalTextDataset(data / f"{split}_texts.jsonl", context_length)
        images = EvalImageDataset(data / "lmdb" / split / "imgs", image_resolution)
        self.text_ids, self.tokens = zip(*(texts[i] for i in range(len(texts))))
        self.image_ids, self.images = zip(*(images[i] for i in range(len(images))))
        self.tokens, self.images = torch.stack(self.tokens), torch.stack(self.images)  # (T, L), (N, 3, R, R)
        self.gold = recall.read_gold(data / f"{split}_texts.jsonl")
        transform = image_transform(image_resolution)
        self.folders = {}  # task -> (classnames, templates, images (M, 3, R, R), targets (M,))
        for task in tasks:
            test_dir, label_file = zeroshot.resolve_paths(data / "zeroshot" / task)
            classnames = zeroshot.read_labels(label_file)
            paths, targets = zeroshot.list_images(test_dir, len(classnames))
            ds = zeroshot.ImageFileDataset(paths, transform)
            x = torch.stack([ds[i][1] for i in range(len(ds))])
            self.folders[task] = (classnames, prompts.get_templates(f"toy-{task}"), x, np.asarray(targets))

    def scores(self, encoder, device: str = "cpu") -> dict[str, float]:
        """{"t2i_r1": text -> image R@1 on the split, "zs_<task>_acc": zero-shot top-1 per folder}, in [0, 1].

        `device`: where the inputs go (a PyTorch model on a GPU); ONNX Runtime / TensorRT encoders take CPU ones.
        """
        from cnclip_edu.eval import recall, zeroshot

        text_f = _normalized(encoder.encode_text, self.tokens, self.batch_size, device)    # (T, D)
        image_f = _normalized(encoder.encode_image, self.images, self.batch_size, device)  # (N, D)
        best = (text_f @ image_f.T).argmax(dim=1).tolist()                         # (T,) index of the top image
        pred = {int(t): [int(self.image_ids[j])] for t, j in zip(self.text_ids, best)}
        out = {"t2i_r1": recall.evaluate(self.gold, pred, ks=(1,))["r1"]}
        for task, (classnames, templates, x, targets) in self.folders.items():
            clf = zeroshot.zero_shot_classifier(encoder, classnames, templates, device, self.context_length)
            feats = _normalized(encoder.encode_image, x, self.batch_size, device).numpy()
            out[f"zs_{task}_acc"] = float(zeroshot.classify_features(feats, clf, targets, classnames).top1)
        return out
