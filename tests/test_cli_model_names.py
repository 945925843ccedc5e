"""A vision model alone on the command line means its released pairing, in every command that takes
--vision-model (issue 16 item 9: `export --vision-model ViT-Course` failed; extract-features, zeroshot
and train paired any vision model with RoBERTa-wwm-ext-base-chinese, so `--vision-model RN50` built a
model that was never released)."""
from __future__ import annotations

import pytest

from cnclip_edu.model.clip import model_name_from_flags, released_name


@pytest.mark.parametrize("vision, text, full", [
    ("ViT-Course", None, "ViT-Course@RBT-Course"),
    ("RN50", None, "RN50@RBT3-chinese"),
    ("ViT-H-14", None, "ViT-H-14@RoBERTa-wwm-ext-large-chinese"),
    ("ViT-B-16", None, "ViT-B-16@RoBERTa-wwm-ext-base-chinese"),
    ("course", None, "ViT-Course@RBT-Course"),
    ("ViT-B-16", "RBT3-chinese", "ViT-B-16@RBT3-chinese"),   # both given: as given
    ("ViT-B-32", "RBT3-chinese", "ViT-B-32@RBT3-chinese"),
])
def test_model_name_from_flags(vision, text, full):
    assert model_name_from_flags(vision, text) == full


def test_model_name_errors_say_which_flag_is_missing():
    with pytest.raises(ValueError, match="'ViT-B-32' has no released pairing.*--text-model"):
        model_name_from_flags("ViT-B-32")
    with pytest.raises(ValueError, match="give a vision model too"):
        model_name_from_flags(None, "RBT3-chinese")
    assert released_name("ViT-Course@RBT-Course") == "course" and released_name("ViT-B-16") == "ViT-B-16"
    assert released_name("ViT-B-32@RBT3-chinese") is None


@pytest.mark.parametrize("vision, text", [("ViT-Course", "RBT-Course"), ("RN50", "RBT3-chinese"),
                                          ("ViT-B-16", "RoBERTa-wwm-ext-base-chinese")])
def test_train_pairs_a_vision_model_alone(vision, text):
    from cnclip_edu.train.params import parse_args

    args = parse_args(["--train-data", "x", "--vision-model", vision])
    assert (args.vision_model, args.text_model) == (vision, text)
    assert parse_args(["--train-data", "x", "--vision-model", vision, "--text-model", "RBT3-chinese"]).text_model \
        == "RBT3-chinese"
    with pytest.raises(SystemExit, match="cnclip-edu train: vision model 'ViT-B-32' has no released pairing"):
        parse_args(["--train-data", "x", "--vision-model", "ViT-B-32"])


def test_extract_features_and_zeroshot_pair_a_vision_model_alone():
    from cnclip_edu.eval import features

    with pytest.warns(UserWarning, match="RANDOMLY initialized ViT-Course@RBT-Course"):
        model = features.load_model(None, "ViT-Course", None)  # what both commands call without --resume
    assert model.config.name == "ViT-Course@RBT-Course"
    args = features.build_parser().parse_args(["--vision-model", "ViT-Course"])
    assert args.text_model is None  # no RoBERTa default any more: the pairing decides


def test_zeroshot_cli_pairs_a_vision_model_alone(tmp_path):
    import json

    from PIL import Image

    import cnclip_edu as cc
    from cnclip_edu.eval import zeroshot

    (tmp_path / "label_cn.txt").write_text("红色\n蓝色\n", encoding="utf-8")
    for label, colour in ((0, "red"), (1, "blue")):
        (tmp_path / "test" / f"{label:03d}").mkdir(parents=True)
        Image.new("RGB", (32, 32), colour).save(tmp_path / "test" / f"{label:03d}" / "a.png")
    with pytest.warns(UserWarning, match="RANDOMLY initialized ViT-Course@RBT-Course"):
        rc = zeroshot.main(["--datapath", str(tmp_path / "test"), "--vision-model", "ViT-Course", "--device", "cpu",
                            "--save-dir", str(tmp_path / "out"), "--dataset", "toy"])
    assert rc == 0
    out = json.loads((tmp_path / "out" / "toy.json").read_text(encoding="utf-8"))
    course = cc.create_model("course")
    assert out["num_params"] == sum(p.numel() for p in course.parameters())  # not a ViT-Course@RoBERTa-base
