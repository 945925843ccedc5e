"""Zero-shot classification: the classifier equals cn_clip's `zero_shot_classifier` on the same
model and templates; accuracy / confusion / ELEVATER output on features built so that the
answer is known; the label_cn.txt + test/000 folder layout and its errors; the CLI."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_edu.eval import prompts, zeroshot
from cnclip_edu.tokenizer import get_tokenizer

COLOURS = {"红色": (230, 20, 20), "绿色": (20, 200, 40), "蓝色": (20, 40, 230)}


class BagOfTokens(torch.nn.Module):
    """A stand-in CLIP: text = sum of token embeddings; image = mean colour of each channel.

    `planted` maps a character to a unit direction so that, e.g., "红" points along the red axis:
    then a red image is classified "红色" whatever the template, and the answer is known.
    """

    def __init__(self, dim: int = 16, planted: dict[str, int] | None = None, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = torch.nn.Embedding(21128, dim)
        with torch.no_grad():
            if planted is None:
                self.emb.weight.copy_(torch.randn(21128, dim, generator=g))
            else:
                self.emb.weight.zero_()
                tok = get_tokenizer()
                for ch, axis in planted.items():
                    self.emb.weight[tok.encode(ch)[0], axis] = 1.0
        self.visual = torch.nn.Linear(3, dim, bias=False)
        with torch.no_grad():
            self.visual.weight.copy_(torch.eye(dim, 3))
        self.image_resolution = 8

    def encode_text(self, tokens):
        return (self.emb(tokens) * (tokens > 0).unsqueeze(-1)).sum(1)    # (B, D)

    def encode_image(self, images):
        return self.visual(images.mean(dim=(2, 3)))                       # (B, D)

    def forward(self, images, texts):  # cn_clip's calling convention: model(None, texts)
        return self.encode_text(texts) if images is None else self.encode_image(images)


def test_classifier_equals_cn_clip_zero_shot_classifier():
    from cn_clip.eval.zeroshot_evaluation import zero_shot_classifier as theirs

    model = BagOfTokens()
    classnames = ["圆形", "正方形", "三角形", "“五角星”", "ABC 十字"]  # quotes and case: cn_clip's text clean-up
    templates = prompts.GENERAL[:7]
    ours = zeroshot.zero_shot_classifier(model, classnames, templates)
    ref = theirs(model, classnames, [lambda c, t=t: t.replace("{}", c) for t in templates],
                 argparse.Namespace(gpu="cpu", context_length=52))
    assert ours.shape == ref.shape == (16, 5)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_ensemble_is_normalized_mean_of_normalized_prompts():
    feats = torch.nn.functional.normalize(torch.randn(4, 3, 8), dim=-1)     # (C, T, D)
    w = zeroshot.classifier_from_text_features(feats)                        # (D, C)
    expected = torch.nn.functional.normalize(feats.mean(1), dim=-1).T
    torch.testing.assert_close(w, expected)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(4))


def test_known_answer_metrics_and_confusion():
    rng = np.random.default_rng(0)
    c, d = 6, 32
    classes = np.linalg.qr(rng.standard_normal((d, c)))[0].T                 # orthonormal class directions
    classifier = torch.tensor(classes.T, dtype=torch.float32)                # (D, C)
    targets = np.repeat(np.arange(c), 10)
    feats = classes[targets].copy()
    feats[:10] = 0.6 * classes[0] + 0.8 * classes[3]                         # class 0 images look like class 3
    r = zeroshot.classify_features(feats, classifier, targets, [f"c{i}" for i in range(c)])
    assert r.top1 == pytest.approx(50 / 60)
    assert r.top5 == 1.0 and r.topk_acc(1) == r.top1
    m = r.confusion()
    assert m[0, 3] == 10 and np.trace(m) == 50 and m.sum() == 60
    assert r.per_class_acc() == {"c0": 0.0, **{f"c{i}": 1.0 for i in range(1, c)}}
    np.testing.assert_allclose(r.probs.sum(1), 1.0, rtol=1e-5)
    # probabilities are softmax(100 * cosine), as cn_clip's ELEVATER file
    np.testing.assert_allclose(r.probs[10], torch.softmax(100 * classifier.T @ torch.tensor(feats[10]).float(), 0),
                               rtol=1e-5)


def _folder(tmp_path, classes=("红色", "绿色", "蓝色"), per_class=3, digits=3):
    root = tmp_path / "colors"
    (root / "test").mkdir(parents=True)
    (root / "label_cn.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    for i, name in enumerate(classes):
        d = root / "test" / str(i).zfill(digits)
        d.mkdir()
        for j in range(per_class):
            Image.new("RGB", (12, 12), COLOURS[name]).save(d / f"image_{j:04d}.png")
    return root


@pytest.mark.parametrize("digits", [3, 1])
def test_evaluate_folder_known_answer(tmp_path, digits):
    root = _folder(tmp_path, digits=digits)
    model = BagOfTokens(dim=4, planted={"红": 0, "绿": 1, "蓝": 2})
    for datapath in (root, root / "test"):  # the dataset root or cn_clip's --datapath (the test folder)
        r = zeroshot.evaluate_folder(model, datapath, dataset="toy-color", batch_size=4)
        assert r.classnames == ["红色", "绿色", "蓝色"] and r.targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert r.top1 == 1.0 and r.paths[0].endswith("image_0000.png")
    ff = zeroshot.folder_features(model, root)
    assert ff.feats.shape == (9, 4)
    assert zeroshot.accuracy_vs_templates(model, ff, prompts.TOY_COLOR[:3]) == [1.0, 1.0, 1.0]
    ok = zeroshot.correct_vs_templates(model, ff, prompts.TOY_COLOR[:3])
    assert ok.shape == (3, 9) and ok.dtype == bool and ok.all()


def test_elevater_json_and_index(tmp_path):
    root = _folder(tmp_path, per_class=2)
    model = BagOfTokens(dim=4, planted={"红": 0, "绿": 1, "蓝": 2})
    r = zeroshot.evaluate_folder(model, root)
    obj = zeroshot.elevater_predictions(r, model, "ViT-Course", "toy-color", index=[5, 4, 3, 2, 1, 0])
    assert list(obj) == ["model_name", "dataset_name", "num_trainable_params", "num_params", "num_visual_params",
                         "num_backbone_params", "n_shot", "rnd_seeds", "predictions"]
    assert obj["model_name"] == "CN-CLIP-ViT-Course" and obj["n_shot"] == 0 and obj["rnd_seeds"] == [123]
    assert obj["num_visual_params"] == 12 and obj["num_params"] == 21128 * 4 + 12
    preds = np.array(obj["predictions"])
    assert preds.shape == (1, 6, 3)
    np.testing.assert_allclose(preds[0], np.round(r.probs[::-1], 6))
    out = zeroshot.save_elevater(obj, tmp_path / "out", "toy-color")
    assert json.loads(out.read_text(encoding="utf-8"))["dataset_name"] == "toy-color"


def test_folder_errors(tmp_path):
    root = _folder(tmp_path)
    (root / "test" / "abc").mkdir()
    with pytest.raises(ValueError, match="abc: class folders must be named by label id"):
        zeroshot.evaluate_folder(BagOfTokens(), root)
    (root / "test" / "abc").rmdir()
    (root / "test" / "007").mkdir()
    with pytest.raises(ValueError, match="label id 7 but the label file has only 3 classes"):
        zeroshot.evaluate_folder(BagOfTokens(), root)
    (root / "test" / "007").rmdir()
    (root / "label_cn.txt").write_text("红色\n\n蓝色\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"label_cn\.txt:2: empty class name"):
        zeroshot.evaluate_folder(BagOfTokens(), root)
    with pytest.raises(FileNotFoundError, match="test folder not found"):
        zeroshot.evaluate_folder(BagOfTokens(), tmp_path / "nope")
    (root / "label_cn.txt").write_text("红色\n绿色\n蓝色\n", encoding="utf-8")
    (root / "test" / "000" / "image_0000.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="cannot read image .*image_0000.png"):
        zeroshot.evaluate_folder(BagOfTokens(), root)


def test_prompts():
    assert prompts.get_templates("toy-combo_seen") == prompts.TOY
    assert prompts.get_templates("toy-shape") == prompts.TOY_SHAPE and "一个红色的{}" in prompts.TOY_SHAPE
    assert prompts.get_templates("toy-color") == prompts.TOY_COLOR and "一颗{}的五角星" in prompts.TOY_COLOR
    assert prompts.get_templates("food-101") == prompts.DOMAIN_TEMPLATES["food"]
    assert prompts.get_templates("cifar-100") == prompts.GENERAL == prompts.get_templates(None)
    assert prompts.build_prompts(["红色的圆形"], ["一个{}", lambda c: c + "。"]) == [["一个红色的圆形", "红色的圆形。"]]
    for name, templates in prompts.DOMAIN_TEMPLATES.items():
        assert len(set(templates)) == len(templates) and all("{}" in t for t in templates), name
    with pytest.raises(ValueError, match="has no"):
        prompts.fill("一张照片", "猫")


def test_toy_prompts_follow_the_toy_generator():
    from cnclip_edu.data import toy

    assert prompts.TOY_COLORS == tuple(toy.COLORS) and prompts.TOY_SHAPES == tuple(toy.SHAPES)


def test_cli_round_trip(tmp_path, capsys):
    from cnclip_edu.model import checkpoint
    from cnclip_edu.model import create_model

    root = _folder(tmp_path, per_class=2)
    ckpt = checkpoint.save(create_model("course"), tmp_path / "model")
    rc = zeroshot.main(["--datapath", str(root / "test"), "--label-file", str(root / "label_cn.txt"),
                        "--dataset", "toy-color", "--save-dir", str(tmp_path / "zs"), "--resume", str(ckpt),
                        "--img-batch-size", "4", "--device", "cpu", "--precision", "fp32"])
    assert rc == 0
    assert "zeroshot-top1:" in capsys.readouterr().out
    obj = json.loads((tmp_path / "zs" / "toy-color.json").read_text(encoding="utf-8"))
    assert np.array(obj["predictions"]).shape == (1, 6, 3)
    assert obj["model_name"] == "CN-CLIP-ViT-Course"  # the loaded checkpoint's, not the --vision-model default
    assert zeroshot.main(["--datapath", str(tmp_path / "missing"), "--resume", str(ckpt)]) == 1


def test_part_acc_splits_compound_errors_into_colour_and_shape():
    from cnclip_edu.eval.zeroshot import ZeroShotResult

    names = ["红色的圆形", "红色的方块", "蓝色的圆形"]
    probs = np.eye(3)[[1, 2, 0, 0]]            # predictions: 红方, 蓝圆, 红圆, 红圆
    res = ZeroShotResult(names, np.array([0, 0, 0, 2]), probs)  # truths: 红圆 x3, 蓝圆
    assert res.top1 == 0.25
    assert res.part_acc() == [0.5, 0.75]        # colour right 2/4, shape right 3/4


def test_elevater_diff_allows_one_unit_in_the_last_decimal_only():
    head = '{"model_name": "CN-CLIP-ViT-Course", "dataset_name": "玩具", "predictions": '
    want = head + "[[[0.123457, 1e-06, 0.876542]]]}"
    assert zeroshot.elevater_diff(want, want) is None
    assert zeroshot.elevater_diff(want, want.replace("0.123457", "0.123458")) is None      # another summation order
    assert zeroshot.elevater_diff(want, want.replace("1e-06", "0.0")) is None
    for wrong in (want.replace("0.123457", "0.12346"),                                   # two units off
                  want.replace("0.123457", "0.12345700163841248"),                      # rounded in float32
                  want.replace("玩具", "\\u73a9\\u5177"), want + "\n", want.replace(", ", ",")):
        assert zeroshot.elevater_diff(want, wrong), wrong
