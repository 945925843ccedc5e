"""The course recipe learns (a short retraining, seconds), and the shipped course checkpoint is meaningful."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cnclip_edu import train
from cnclip_edu.course.recipe import COURSE_RECIPE, course_train_args
from cnclip_edu.train.launch import read_metrics

SHIPPED = Path(__file__).resolve().parents[1] / "cnclip_edu" / "assets" / "course_model"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    work = tmp_path_factory.mktemp("toy")
    return ensure_toy_data(work, ToyConfig(n_train=48, n_valid=48, n_test=8, zeroshot_per_class=1))


def test_course_train_args_follow_the_recipe(toy, tmp_path):
    args = course_train_args(toy, tmp_path, "c", 200, lr=1e-4)
    parsed = train.parse_args(args)
    assert parsed.max_steps == 200 and parsed.warmup == 10 and parsed.lr == 1e-4  # 5 % warmup, override
    assert parsed.known_positives and parsed.batch_size == COURSE_RECIPE["batch-size"]
    assert parsed.train_data.endswith("lmdb/train") and parsed.val_data.endswith("lmdb/valid")
    assert not train.parse_args(course_train_args(toy, tmp_path, "c", 200, known_positives=False)).known_positives


needs_shipped = pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(),
                                   reason="course checkpoint not built yet (make toy-checkpoint)")


@needs_shipped
def test_short_finetune_from_shipped_model_keeps_its_quality(toy, tmp_path):
    """Seconds: the course recipe continued from the shipped weights (as `--resume official.pt`) on
    fresh toy images keeps in-batch retrieval far above chance and the loss well below chance."""
    args = course_train_args(toy, tmp_path, "short", 6, batch_size=16, valid_batch_size=16, lr=5e-5,
                             log_interval=1, save_step_frequency=-1)
    assert train.main(args + ["--resume", str(SHIPPED)]) == 0
    valid = [r for r in read_metrics(tmp_path / "short" / "metrics.jsonl") if r["type"] == "valid"][-1]
    chance_loss = math.log(16)
    assert valid["loss"] < chance_loss - 0.7, valid
    assert valid["t2i_acc"] > 0.3 and valid["i2t_acc"] > 0.3, valid  # chance: 1/16


@pytest.mark.slow
def test_full_retraining_reproduces_shipped_metrics(tmp_path):
    """The whole `make toy-checkpoint` recipe (minutes): validation R@1 within 0.1 of the recorded one."""
    from cnclip_edu.course.recipe import build

    info = build(tmp_path / "course_model", tmp_path / "work")
    recorded = json.loads((SHIPPED / "training.json").read_text(encoding="utf-8"))
    assert abs(info["valid"]["t2i_r1"] - recorded["valid"]["t2i_r1"]) < 0.1, (info["valid"], recorded["valid"])


@needs_shipped
def test_shipped_course_model_is_small_and_recorded():
    info = json.loads((SHIPPED / "training.json").read_text(encoding="utf-8"))
    size_mb = sum(f.stat().st_size for f in SHIPPED.iterdir()) / 2**20
    assert size_mb < 10, size_mb
    assert info["valid"]["t2i_r1"] >= 0.3 and info["train_final_loss"] < 2.0, info


@needs_shipped
def test_shipped_course_model_ranks_matching_captions_first(toy):
    """cc.load('course') on fresh toy test images: each image prefers its own captions over the others'."""
    import cnclip_edu as cc
    from cnclip_edu.data.dataset import EvalImageDataset

    model, _ = cc.load("course")
    texts = [json.loads(x) for x in (toy / "valid_texts.jsonl").read_text(encoding="utf-8").splitlines()]
    images = EvalImageDataset(toy / "lmdb" / "valid" / "imgs", model.image_resolution)
    with torch.no_grad():
        img_f = torch.nn.functional.normalize(model.encode_image(torch.stack([x for _, x in images])), dim=-1)
        txt_f = torch.nn.functional.normalize(model.encode_text(cc.tokenize([t["text"] for t in texts])), dim=-1)
    sim = txt_f @ img_f.T  # (T, I)
    best = sim.argmax(dim=1).tolist()
    hits = sum(images.image_ids[b] in set(t["image_ids"]) for b, t in zip(best, texts)) / len(texts)
    chance = sum(len(t["image_ids"]) for t in texts) / len(texts) / len(images)
    assert hits > max(0.3, 3 * chance), (hits, chance)
