"""Zero-shot image classification: class names -> Chinese prompts -> text embeddings -> classifier.

    cnclip-edu zeroshot --datapath data/toy/zeroshot/color --dataset toy-color --resume model_dir \
        --save-dir runs/zs                       # reads label_cn.txt + test/000/..., writes toy-color.json

No training on the classes: each class becomes a text embedding, and an image is assigned to the
class whose embedding is most similar. The class embedding is built as cn_clip builds it:
encode every template filled with the class name, L2-normalize each, average over templates,
L2-normalize the average (`zero_shot_classifier`). Probabilities are softmax(100 * cosine), the
fixed scale cn_clip uses for its ELEVATER prediction file.

The folder layout is cn_clip's: `label_cn.txt` (one class name per line, line i = label i) and
`test/<label id>/<image files>`, where the label id is the folder name read as a number ("000",
"001", ... or "0", "1", ...).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from cnclip_edu.cli import InRange
from cnclip_edu.fileio import atomic_write

from .prompts import Template, build_prompts, get_templates

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm"}
LOGIT_SCALE = 100.0  # cn_clip's zero-shot evaluation uses a fixed 100, not the model's learned scale


# ----------------------------------------------------------------------------- classifier
def _clean(text: str) -> str:
    """cn_clip's text normalization before tokenizing (lower case, straight quotes)."""
    return text.lower().replace("“", "\"").replace("”", "\"")


def template_text_features(model, classnames: Sequence[str], templates: Sequence[Template], device: str = "cpu",
                           context_length: int = 52, batch_size: int = 256):
    """L2-normalized text features of every (class, template) prompt -> FloatTensor (C, T, D)."""
    import torch

    from cnclip_edu.tokenizer import tokenize

    prompts = [_clean(p) for row in build_prompts(classnames, templates) for p in row]  # C*T, class-major
    feats = []
    model.eval()
    with torch.no_grad():
        for s in range(0, len(prompts), batch_size):
            tokens = tokenize(prompts[s:s + batch_size], context_length=context_length).to(device)
            f = model.encode_text(tokens).float()                                    # (B, D)
            feats.append(f / f.norm(dim=-1, keepdim=True))
    feats = torch.cat(feats)
    return feats.reshape(len(classnames), len(templates), -1)


def classifier_from_text_features(feats):
    """(C, T, D) normalized prompt features -> (D, C) classifier: mean over templates, re-normalized."""
    mean = feats.mean(dim=1)                                  # (C, D)
    return (mean / mean.norm(dim=-1, keepdim=True)).T.contiguous()


def zero_shot_classifier(model, classnames: Sequence[str], templates: Sequence[Template] | None = None,
                         device: str = "cpu", context_length: int = 52):
    """Class embeddings as columns, FloatTensor (D, C) (cn_clip's layout): logits = img @ W."""
    if not classnames:
        raise ValueError("need at least one class name")
    templates = list(templates) if templates is not None else get_templates()
    return classifier_from_text_features(
        template_text_features(model, classnames, templates, device, context_length))


# ----------------------------------------------------------------------------- results
@dataclass
class ZeroShotResult:
    classnames: list[str]
    targets: np.ndarray             # (N,) int
    probs: np.ndarray               # (N, C) softmax(100 * cosine)
    paths: list[str] = field(default_factory=list)

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(axis=1)

    def topk_acc(self, k: int) -> float:
        k = min(k, self.probs.shape[1])
        top = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return float((top == self.targets[:, None]).any(axis=1).mean())

    @property
    def top1(self) -> float:
        return self.topk_acc(1)

    @property
    def top5(self) -> float:
        return self.topk_acc(5)

    def confusion(self) -> np.ndarray:
        """(C, C) counts: row = true class, column = predicted class."""
        c = len(self.classnames)
        m = np.zeros((c, c), dtype=np.int64)
        np.add.at(m, (self.targets, self.preds), 1)
        return m

    def part_acc(self, sep: str = "的") -> list[float]:
        """For compound class names ("红色的圆形"): how often each part of the prediction is right.

        Splits predicted and true names on `sep` and scores each position separately, so a 48-way
        colour+shape test tells whether the errors are in colour or in shape.
        """
        pred = [self.classnames[i].split(sep) for i in self.preds]
        true = [self.classnames[i].split(sep) for i in self.targets]
        n = max(len(t) for t in true)
        return [float(np.mean([len(p) > j and len(t) > j and p[j] == t[j] for p, t in zip(pred, true)]))
                for j in range(n)]

    def per_class_acc(self) -> dict[str, float]:
        m = self.confusion()
        n = m.sum(axis=1)
        return {name: float(m[i, i] / n[i]) if n[i] else float("nan") for i, name in enumerate(self.classnames)}


def classify_features(image_feats, classifier, targets, classnames: Sequence[str],
                      paths: Sequence[str] = ()) -> ZeroShotResult:
    """Normalized image features (N, D) + classifier (D, C) -> ZeroShotResult."""
    import torch

    x = torch.as_tensor(np.asarray(image_feats), dtype=torch.float32)
    probs = (LOGIT_SCALE * x @ classifier.float().cpu()).softmax(dim=-1)                # (N, C)
    return ZeroShotResult(list(classnames), np.asarray(targets, dtype=np.int64), probs.numpy(), list(paths))


# ----------------------------------------------------------------------------- the folder layout
def read_labels(label_file: str | Path) -> list[str]:
    path = Path(label_file)
    if not path.exists():
        raise FileNotFoundError(f"label file not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while names and not names[-1]:
        names.pop()
    for i, n in enumerate(names, 1):
        if not n:
            raise ValueError(f"{path}:{i}: empty class name")
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def resolve_paths(datapath: str | Path, label_file: str | Path | None = None) -> tuple[Path, Path]:
    """Accept the test folder (cn_clip's --datapath) or the dataset root holding label_cn.txt + test/."""
    root = Path(datapath)
    test_dir = root / "test" if (root / "test").is_dir() else root
    if not test_dir.is_dir():
        raise FileNotFoundError(f"zero-shot test folder not found: {test_dir}")
    if label_file is None:
        candidates = [test_dir.parent / "label_cn.txt", root / "label_cn.txt"]
        label_file = next((c for c in candidates if c.exists()), candidates[0])
    return test_dir, Path(label_file)


def list_images(test_dir: str | Path, num_classes: int) -> tuple[list[Path], list[int]]:
    """(paths, label ids) of every image under test/<label id>/, in folder then file-name order."""
    test_dir = Path(test_dir)
    paths, targets = [], []
    for sub in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        if not sub.name.isdigit():
            raise ValueError(f"{sub}: class folders must be named by label id (000, 001, ...)")
        label = int(sub.name)
        if label >= num_classes:
            raise ValueError(f"{sub}: label id {label} but the label file has only {num_classes} classes")
        files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTS)
        paths += files
        targets += [label] * len(files)
    if not paths:
        raise ValueError(f"{test_dir}: no images found in its class folders")
    return paths, targets


class ImageFileDataset:
    """(index, image tensor) for a list of image files; a broken file is named in the error."""

    def __init__(self, paths: Sequence[Path], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as img:
                return i, self.transform(img)
        except OSError as e:
            raise OSError(f"cannot read image {self.paths[i]}: {e}") from None


@dataclass
class FolderFeatures:
    classnames: list[str]
    feats: np.ndarray               # (N, D) L2-normalized image features
    targets: np.ndarray             # (N,) label ids
    paths: list[str]


def folder_features(model, datapath: str | Path, label_file: str | Path | None = None, batch_size: int = 64,
                    device: str = "cpu", precision: str = "fp32", progress: bool = True) -> FolderFeatures:
    """Encode every image of a `label_cn.txt` + `test/<id>/` folder once (reuse it for many classifiers).

    progress: a tqdm bar; notebooks pass False (a few seconds of work, a bar frozen at 0 % once saved).
    """
    from cnclip_edu.data.transforms import image_transform
    from .features import extract_image_features, image_resolution

    test_dir, label_path = resolve_paths(datapath, label_file)
    classnames = read_labels(label_path)
    paths, targets = list_images(test_dir, len(classnames))
    ds = ImageFileDataset(paths, image_transform(image_resolution(model)))
    _, feats = extract_image_features(model, ds, batch_size, device, precision, progress=progress)
    return FolderFeatures(classnames, feats, np.asarray(targets, dtype=np.int64), [str(p) for p in paths])


def evaluate_folder(model, datapath: str | Path, label_file: str | Path | None = None,
                    templates: Sequence[Template] | None = None, dataset: str | None = None,
                    batch_size: int = 64, device: str = "cpu", precision: str = "fp32",
                    context_length: int = 52, classifier=None) -> ZeroShotResult:
    """Zero-shot accuracy of `model` on a `label_cn.txt` + `test/<id>/` folder.

    templates default to `prompts.get_templates(dataset)`; pass `classifier` (D, C) to reuse one.
    """
    ff = folder_features(model, datapath, label_file, batch_size, device, precision)
    if classifier is None:
        templates = templates if templates is not None else get_templates(dataset)
        classifier = zero_shot_classifier(model, ff.classnames, templates, device, context_length)
    return classify_features(ff.feats, classifier, ff.targets, ff.classnames, ff.paths)


def correct_vs_templates(model, ff: FolderFeatures, templates: Sequence[Template], device: str = "cpu",
                         context_length: int = 52) -> np.ndarray:
    """(T, N) booleans: row n-1 says which images are right with the first n templates ensembled (prompt
    features encoded once). Two rows give a paired comparison of two steps of the curve."""
    feats = template_text_features(model, ff.classnames, templates, device, context_length)    # (C, T, D)
    rows = []
    for n in range(1, len(templates) + 1):
        r = classify_features(ff.feats, classifier_from_text_features(feats[:, :n]), ff.targets, ff.classnames)
        rows.append(r.preds == r.targets)
    return np.stack(rows)


def accuracy_vs_templates(model, ff: FolderFeatures, templates: Sequence[Template], device: str = "cpu",
                          context_length: int = 52) -> list[float]:
    """Top-1 accuracy with the first 1, 2, ..., T templates ensembled (prompt features encoded once)."""
    return [float(ok.mean()) for ok in correct_vs_templates(model, ff, templates, device, context_length)]


# ----------------------------------------------------------------------------- ELEVATER output
def elevater_predictions(result: ZeroShotResult, model, vision_model: str, dataset: str,
                         index: Sequence[int] | None = None) -> dict:
    """cn_clip's ELEVATER submission object (probabilities (1, N, C), rounded to 6 decimals)."""
    probs = result.probs if index is None else result.probs[np.asarray(index, dtype=np.int64)]
    return elevater_object(probs, "CN-CLIP-" + vision_model, dataset, sum(p.numel() for p in model.parameters()),
                           sum(p.numel() for p in model.visual.parameters()))


def elevater_object(probs: np.ndarray, model_name: str, dataset: str, num_params: int,
                    num_visual_params: int) -> dict:
    """The file's keys in cn_clip's order; probs (N, C) rounded to 6 decimals as cn_clip's `json_prec_dump`
    does (for float32 probabilities np.round and Python's round agree: x * 1e6 is exact in float64)."""
    return {
        "model_name": model_name,
        "dataset_name": dataset,
        "num_trainable_params": 0,
        "num_params": num_params,
        "num_visual_params": num_visual_params,
        "num_backbone_params": num_params,
        "n_shot": 0,
        "rnd_seeds": [123],
        "predictions": [np.round(np.asarray(probs).astype(np.float64), 6).tolist()],
    }


def save_elevater(obj: dict, save_dir: str | Path, dataset: str) -> Path:
    return atomic_write(Path(save_dir) / f"{dataset}.json", json.dumps(obj, ensure_ascii=False))


_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")


def elevater_diff(expected: str, got: str, prec: int = 6) -> str | None:
    """Two ELEVATER files' text -> None if they agree, else where they first differ (in Chinese, for students).

    "Agree": the same characters before "predictions", the same punctuation after it, and every probability
    written as json writes a float already rounded to `prec` decimals, within one unit of the last decimal of
    the expected one. Why the unit: two correct writers that add up the softmax in another order (or compute
    it in float64) can differ by one float32 step before rounding, which moves the rounded last decimal by one.
    """
    key = '"predictions": '
    head_e, _, tail_e = expected.partition(key)
    head_g, sep, tail_g = got.partition(key)
    if head_g != head_e or not sep:
        return _first_difference(expected, got)
    parts_e, parts_g = _NUMBER.split(tail_e), _NUMBER.split(tail_g)
    if len(parts_e) != len(parts_g) or parts_e[0::2] != parts_g[0::2]:
        return _first_difference(expected, got)
    unit = 10.0 ** -prec
    for i, (e, g) in enumerate(zip(parts_e[1::2], parts_g[1::2])):
        x = float(g)
        if repr(round(x, prec)) != g or abs(x - float(e)) > 1.5 * unit:
            at = len(head_e) + len(key) + sum(map(len, parts_g[:2 * i + 1]))
            return (f"第 {i + 1} 个概率（第 {at} 个字符）：期望 {e}（允许最后一位差 1），得到 {g}"
                    + ("：不是舍入到 6 位小数的数" if repr(round(x, prec)) != g else ""))
    return None


def _first_difference(expected: str, got: str) -> str:
    i = next((k for k, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    lo = max(0, i - 40)
    return (f"文件内容不同（期望 {len(expected)} 个字符，得到 {len(got)} 个），第一处不同在第 {i} 个字符：\n"
            f"  期望 …{expected[lo:i + 40]}…\n  得到 …{got[lo:i + 40]}…")


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cnclip-edu zeroshot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--datapath", required=True, help="the test/ folder (or the dataset root)")
    ap.add_argument("--label-file", "--label_file", default=None, help="label_cn.txt (default: next to test/)")
    ap.add_argument("--dataset", default="toy", help="dataset name: output file name and template domain")
    ap.add_argument("--index", default="", help="JSON list reordering the predictions (ELEVATER submissions)")
    ap.add_argument("--save-dir", "--save_dir", default="", help="where <dataset>.json goes")
    ap.add_argument("--img-batch-size", "--img_batch_size", type=int, default=64, action=InRange, lo=1)
    ap.add_argument("--context-length", "--context_length", type=int, default=52, action=InRange, lo=2)
    ap.add_argument("--resume", default=None, help="checkpoint to load (anything cc.load reads)")
    ap.add_argument("--vision-model", "--vision_model", default="ViT-B-16")
    ap.add_argument("--text-model", "--text_model", default=None,
                    help="default: the vision model's released pairing (RoBERTa-wwm-ext-base-chinese for ViT-B-16)")
    ap.add_argument("--precision", choices=("amp", "fp16", "bf16", "fp32"), default=None,
                    help="default: amp on CUDA, fp32 elsewhere")
    ap.add_argument("--device", default=None)
    ap.add_argument("--templates", default=None, help="template domain (default: from --dataset)")
    args = ap.parse_args(argv)

    import torch

    from .features import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.precision is None:
        args.precision = "amp" if str(device).startswith("cuda") else "fp32"
    try:
        model = load_model(args.resume, args.vision_model, args.text_model, device)
        if args.context_length > model.max_context_length:
            ap.exit(2, f"{ap.prog}: --context-length must be <= {model.max_context_length} (the positions of the "
                       f"model's text tower), got {args.context_length}\n")
        result = evaluate_folder(model, args.datapath, args.label_file, get_templates(args.templates or args.dataset),
                                 args.dataset, args.img_batch_size, device, args.precision, args.context_length)
        index = json.loads(Path(args.index).read_text(encoding="utf-8")) if args.index else None
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"zeroshot: {e}", file=sys.stderr)
        return 1
    # the name of the model actually loaded (a --resume checkpoint knows it), not the --vision-model default
    out = save_elevater(elevater_predictions(result, model, model.config.vision.name, args.dataset, index),
                        args.save_dir or ".", args.dataset)
    print(f"Result:\nzeroshot-top1: {result.top1:.4f}, zeroshot-top5: {result.top5:.4f}  "
          f"({len(result.targets)} images, {len(result.classnames)} classes) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
