"""Notebook 06's DDP worker (cnclip_edu.train.ddp_demo) and finetuning task (data.toy_shift, eval.split_recall):
two ranks equal one process on the global batch, the launcher runs a worker file under real torchrun,
and the renamed-colour world keeps pictures and gold matches while changing only the colour words."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cnclip_edu.data import formats
from cnclip_edu.data.toy_shift import RENAMED_COLOURS, rename_colours, renamed_toy_world
from cnclip_edu.train import ddp_demo as D
from cnclip_edu.train.hello import run_forked
from cnclip_edu.train.launch import TrainingFailed, run_torchrun


def _two_ranks(tmp_path, worker=D.train_worker, n_pairs=20, batch_size=4, seed=0):
    import torch._dynamo  # noqa: F401  imported once, before the fork

    D.DemoPairs(n_pairs, seed)
    return run_forked(worker, 2, timeout_s=120, out_dir=str(tmp_path), epochs=2, batch_size=batch_size,
                      seed=seed, n_pairs=n_pairs)


def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    ranks = _two_ranks(tmp_path)
    single = D.run_single(n_pairs=20, batch_size=8, epochs=2, seed=0)
    assert D.max_param_diff(ranks[0]["params"], ranks[1]["params"]) == 0
    moved = D.max_param_diff(D.tiny_clip(0).state_dict(), single["params"])
    assert D.max_param_diff(ranks[0]["params"], single["params"]) < 1e-4 < moved / 100
    # the shards of one step are exactly the batch one process reads (the last step: 2 + 2 = 4 pairs)
    for step, batch in enumerate(single["seen"]):
        assert sorted(ranks[0]["seen"][step] + ranks[1]["seen"][step]) == sorted(batch)
    assert [len(b) for b in ranks[0]["seen"]] == [4, 4, 2, 4, 4, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert all(v for v in D.summarize(ranks, single, 20, 2).values())


def test_summarize_names_what_is_wrong():
    params = {"w": __import__("torch").zeros(2)}
    r0 = {"seen": [[0, 1]], "params": params, "loaded": {"module.w": params["w"]}}  # a DDP-prefixed save reads as equal
    r1 = {**r0, "seen": [[2, 3]]}
    assert all(D.summarize([r0, r1], None, 4, 1).values())
    assert D.summarize([r0, r0], None, 4, 1)["每个 epoch 恰好读完一遍数据（不重不漏）"] is False  # both read 0, 1
    twice = {**r0, "seen": [[0, 1], [0, 1]]}  # 2 epochs in the same order
    assert D.summarize([twice, {**r1, "seen": [[2, 3], [2, 3]]}], None, 4, 2)["各 epoch 的读取顺序互不相同"] is False
    with pytest.raises(ValueError, match="seen"):
        D.summarize([{"params": params}], None, 4, 1)
    assert D.epoch_orders([[1], [2], [3]], 2) is None


def test_launcher_runs_a_worker_file_under_torchrun(tmp_path):
    worker = tmp_path / "ex06_5.py"
    worker.write_text("from cnclip_edu.train.ddp_demo import train_worker\n", encoding="utf-8")
    out = tmp_path / "out"
    launched_at = time.time()
    res = run_torchrun(["--worker", worker, "--out", out, "--n-pairs", 8, "--batch-size", 2, "--epochs", 1],
                       nproc_per_node=2, module="cnclip_edu.train.ddp_demo", log_file=tmp_path / "launch.log",
                       live_plot=False, echo=False)
    assert res.returncode == 0 and res.metrics == []
    ranks = D.read_ranks(out)
    assert len(ranks) == 2 and D.max_param_diff(ranks[0]["params"], ranks[1]["params"]) == 0
    for r in ranks:  # the worker's own start and end, after the processes' start-up and before the launch returned
        started, ended = r["worker_time"]
        assert launched_at < started <= ended < launched_at + res.wall_s + 1
    stub = tmp_path / "stub.py"
    stub.write_text('def train_worker(*a, **k):\n    raise NotImplementedError("练习 06.5")\n', encoding="utf-8")
    with pytest.raises(TrainingFailed):
        run_torchrun(["--worker", stub, "--out", tmp_path / "out2"], nproc_per_node=2, module="cnclip_edu.train.ddp_demo",
                     log_file=tmp_path / "launch2.log", live_plot=False, echo=False)
    assert D.worker_error(tmp_path / "out2") == "NotImplementedError: 练习 06.5"
    assert D.worker_error(out) is None


def test_rename_colours_touches_only_colour_words():
    assert rename_colours("左边是一个红色的圆形，右边是一块大的蓝色方块") == "左边是一个赤色的圆形，右边是一块大的靛色方块"
    assert len(set(RENAMED_COLOURS.values())) == len(RENAMED_COLOURS)


@pytest.fixture(scope="module")
def small_toy(tmp_path_factory) -> Path:
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    return ensure_toy_data(tmp_path_factory.mktemp("toy"), ToyConfig(n_train=40, n_valid=16, n_test=16,
                                                                      zeroshot_per_class=1))


def test_renamed_world_keeps_pictures_and_gold(small_toy, tmp_path):
    shop = renamed_toy_world(small_toy, tmp_path / "shop", n_train_images=10)
    card = json.loads((small_toy / "dataset_card.json").read_text(encoding="utf-8"))
    new_chars = {ch for name in RENAMED_COLOURS.values() for ch in name[:-1]}
    assert not new_chars & set(card["vocabulary_chars"])  # the new words are new to a toy-world model
    assert len(list(formats.iter_imgs_tsv(formats.imgs_tsv(shop, "train")))) == 10
    assert list(formats.iter_imgs_tsv(formats.imgs_tsv(shop, "test"))) == \
        list(formats.iter_imgs_tsv(formats.imgs_tsv(small_toy, "test")))
    old = {t["text_id"]: t for t in formats.iter_texts_jsonl(formats.texts_jsonl(small_toy, "test"))}
    new = {t["text_id"]: t for t in formats.iter_texts_jsonl(formats.texts_jsonl(shop, "test"))}
    assert old.keys() == new.keys()
    for tid, t in new.items():
        assert t["image_ids"] == old[tid]["image_ids"] and t["text"] == rename_colours(old[tid]["text"])
        assert not any(name in t["text"] for name in RENAMED_COLOURS)
    kept = {i for i, _ in formats.iter_imgs_tsv(formats.imgs_tsv(shop, "train"))}
    train = list(formats.iter_texts_jsonl(formats.texts_jsonl(shop, "train")))
    assert train and all(t["image_ids"] and set(t["image_ids"]) <= kept for t in train)
    assert (shop / "lmdb" / "train" / "pairs" / "data.mdb").is_file()
    assert renamed_toy_world(small_toy, tmp_path / "shop", n_train_images=10) == shop  # reused, not rebuilt


def test_split_recall_matches_a_perfect_and_a_cached_gallery(small_toy):
    import cnclip_edu as cc
    from cnclip_edu.eval.split_recall import image_features, t2i_recall

    model = cc.create_model("course").eval()
    r = t2i_recall(model, small_toy, "test")
    assert set(r) >= {"r1", "r5", "r10"} and 0 <= r["r1"] <= r["r5"] <= r["r10"] <= 1
    assert t2i_recall(model, small_toy, "test", image_feats=image_features(model, small_toy, "test")) == r


def test_top1_reading_tells_a_wrong_colour_from_a_wrong_shape():
    """toy_shift.top1_reading: the first image's colours and shapes against the caption's (default toy world)."""
    from cnclip_edu.data.toy import split_meanings
    from cnclip_edu.data.toy_shift import top1_reading
    from cnclip_edu.data.toy_text import caption_objects

    scenes, keys = split_meanings("test")
    objects = {i: sorted((p.color, p.shape) for p in s["shapes"]) for i, s in scenes.items()}
    tid = next(t for t, k in keys.items() if len(caption_objects(k)) == 1)
    (colour, shape), = caption_objects(keys[tid])
    same = next(i for i, o in objects.items() if o == [(colour, shape)])
    other_colour = next(i for i, o in objects.items() if len(o) == 1 and o[0][1] == shape and o[0][0] != colour)
    other_shape = next(i for i, o in objects.items() if len(o) == 1 and o[0][0] == colour and o[0][1] != shape)
    assert top1_reading({tid: [same, other_colour]}) == {"colours": 1.0, "shapes": 1.0}
    assert top1_reading({tid: [other_colour, same]}) == {"colours": 0.0, "shapes": 1.0}
    assert top1_reading({tid: [other_shape]}) == {"colours": 1.0, "shapes": 0.0}
