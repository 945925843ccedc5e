"""The toy world: determinism, exact MUGE format, gold matches that are right, held-out combinations
absent from train, zero-shot folders, shapes still recognisable at 32 px, ensure_toy_data caching."""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnclip_edu.data import formats, toy
from cnclip_edu.data.toy_text import image_keys, render_caption

SMALL = toy.ToyConfig(seed=3, n_train=300, n_valid=80, n_test=80, zeroshot_per_class=3, workers=1)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return toy.generate(tmp_path_factory.mktemp("toy") / "toy", SMALL)


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file() and p.name != "dataset_card.json":
            h.update(p.relative_to(d).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_deterministic_from_seed(small, tmp_path):
    again = toy.generate(tmp_path / "again", toy.ToyConfig(**{**SMALL.__dict__, "workers": 2}))
    assert _digest(again) == _digest(small)  # same seed, other process count: same bytes
    other = toy.generate(tmp_path / "other", toy.ToyConfig(**{**SMALL.__dict__, "seed": 4}))
    assert _digest(other) != _digest(small)


def test_exact_muge_format(small):
    for split, n in (("train", 300), ("valid", 80), ("test", 80)):
        lines = formats.imgs_tsv(small, split).read_text(encoding="utf-8").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == n
        ids = set()
        for line in lines[:-1]:
            sid, b64 = line.split("\t")
            assert sid == str(int(sid))
            ids.add(int(sid))
            img = formats.decode_image(b64)
            assert img.mode == "RGB" and img.size == (64, 64)
        assert len(ids) == n
        texts = [json.loads(x) for x in formats.texts_jsonl(small, split).read_text(encoding="utf-8").splitlines()]
        assert len({t["text_id"] for t in texts}) == len(texts) == len({t["text"] for t in texts})
        for t in texts:
            assert list(t) == ["text_id", "text", "image_ids"]
            assert isinstance(t["text_id"], int) and t["text"] and t["image_ids"]
            assert set(t["image_ids"]) <= ids and t["image_ids"] == sorted(set(t["image_ids"]))


def _split_data(split: str):
    combos = [(c, s) for c in toy.COLORS for s in toy.SHAPES if (c, s) not in toy.heldout_combos(SMALL)]
    return toy._make_split(SMALL, split, combos, seed=f"{SMALL.seed}-{split}")


def test_gold_lists_every_matching_image_and_nothing_else():
    """Brute force: a caption's gold ids are exactly the images whose meanings include its key."""
    image_ids, scenes, texts = _split_data("valid")
    keys = [set(image_keys(s["layout"], s["shapes"])) for s in scenes]
    by_text = {}
    for key_set in keys:
        for k in key_set:
            for v in range(SMALL.variants_per_key):
                by_text.setdefault(render_caption(random.Random(f"{SMALL.seed}-valid-{k}-{v}"), k), k)
    for _, text, gold in texts:
        k = by_text[text]
        assert gold == [i for i, ks in zip(image_ids, keys) if k in ks], text


def test_captions_agree_with_pixels_of_their_gold_images(small):
    """Independent of the key machinery: colour words and shape counts in a caption are true of
    every gold image, measured on its pixels (saturated colours are easy to find)."""
    imgs = dict(formats.iter_imgs_tsv(formats.imgs_tsv(small, "valid")))
    present = {}
    for iid, b64 in imgs.items():
        a = np.asarray(formats.decode_image(b64), dtype=np.int32)  # (64, 64, 3)
        present[iid] = {name for name, rgb in toy.COLORS.items()
                        if (np.abs(a - np.array(rgb)).sum(-1) < 40).sum() >= 12}
    n_checked = 0
    for t in formats.iter_texts_jsonl(formats.texts_jsonl(small, "valid")):
        named = {c for c in toy.COLORS if c in t["text"]}
        for iid in t["image_ids"]:
            assert named <= present[iid], (t["text"], iid, present[iid])
            n_checked += 1
    assert n_checked > 100


def test_captions_are_varied_and_specific(small):
    texts = list(formats.iter_texts_jsonl(formats.texts_jsonl(small, "train")))
    joined = "".join(t["text"] for t in texts)
    for word in ("个", "块", "颗", "的", "在", "左边是", "右边是", "上面", "下面", "大", "小"):
        assert word in joined, word
    n_match = [len(t["image_ids"]) for t in texts]
    assert np.median(n_match) <= 2  # typical captions pin down few images
    card = json.loads((small / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["splits"]["train"]["pairs"] == sum(n_match)


def test_heldout_combos_never_in_train():
    held = toy.heldout_combos(SMALL)
    assert len(held) == 8 and len(set(held)) == 8
    assert {c for c, _ in held} == set(toy.COLORS) and {s for _, s in held} == set(toy.SHAPES)
    _, scenes, texts = _split_data("train")
    assert not any((p.color, p.shape) in held for s in scenes for p in s["shapes"])
    for _, text, _ in texts:  # no caption names a held-out combination either
        assert not any(c + "的" + s in text or c + s in text for c, s in held), text


def test_zeroshot_folders(small):
    held = [f"{c}的{s}" for c, s in toy.heldout_combos(SMALL)]
    expect = {"shape": list(toy.SHAPES), "color": list(toy.COLORS), "combo_heldout": held}
    for task in ("shape", "color", "combo_seen", "combo_heldout"):
        root = small / "zeroshot" / task
        labels = (root / "label_cn.txt").read_text(encoding="utf-8").splitlines()
        if task in expect:
            assert labels == expect[task]
        folders = sorted(p.name for p in (root / "test").iterdir())
        assert folders == [f"{i:03d}" for i in range(len(labels))]
        for f in folders:
            files = sorted((root / "test" / f).glob("*.png"))
            assert len(files) == SMALL.zeroshot_per_class
            assert Image.open(files[0]).size == (64, 64)
    seen = (small / "zeroshot" / "combo_seen" / "label_cn.txt").read_text(encoding="utf-8").splitlines()
    assert len(seen) == 40 and not set(seen) & set(held)
    card = json.loads((small / "dataset_card.json").read_text(encoding="utf-8"))
    assert card["heldout_combos"] == held and card["seed"] == 3 and card["zeroshot"]["combo_seen"]["classes"] == 40


def test_colour_and_shape_survive_32px():
    """Every colour class is still its colour after the 64 -> 32 px bicubic resize, and shapes
    differ: the mean 32-px masks of two shape classes are far apart."""
    rng = random.Random(0)
    from cnclip_edu.data.toy_draw import render_scene
    masks = {}
    for shape in toy.SHAPES:
        acc = []
        for color, rgb in toy.COLORS.items():
            sc = toy._sample_scene(rng, [(color, shape)], (1, 0, 0))
            sc["shapes"][0] = sc["shapes"][0].__class__(color, shape, "大", (1, 1), 0.5, 0.5, 0.42)
            small_img = Image.open(__import__("io").BytesIO(render_scene(sc, 64))).resize((32, 32), Image.BICUBIC)
            a = np.asarray(small_img, dtype=np.int32)
            near = np.abs(a - np.array(rgb)).sum(-1) < 60
            assert near.sum() >= 20, (color, shape, near.sum())
            acc.append(near)
        masks[shape] = np.mean(acc, axis=0)
    names = list(masks)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = masks[names[i]] > 0.5, masks[names[j]] > 0.5
            assert (a & b).sum() / (a | b).sum() < 0.85, (names[i], names[j])  # IoU of the shapes


def test_ensure_toy_data_is_cached_and_keyed_on_config(tmp_path):
    cfg = toy.ToyConfig(seed=1, n_train=60, n_valid=20, n_test=20, zeroshot_per_class=1, workers=1)
    d = toy.ensure_toy_data(tmp_path, cfg)
    assert d == tmp_path / "data" / "toy"
    for split in formats.SPLITS:
        assert (d / "lmdb" / split / "imgs" / "data.mdb").exists() and (d / "lmdb" / split / "pairs" / "data.mdb").exists()
    stamp = (d / "train_imgs.tsv").stat().st_mtime_ns
    assert toy.ensure_toy_data(tmp_path, cfg) == d
    assert (d / "train_imgs.tsv").stat().st_mtime_ns == stamp  # not regenerated
    (d / "lmdb" / "valid" / "pairs" / "data.mdb").unlink()     # incomplete -> rebuilt
    toy.ensure_toy_data(tmp_path, cfg)
    assert (d / "lmdb" / "valid" / "pairs" / "data.mdb").exists()
    cfg2 = toy.ToyConfig(**{**cfg.__dict__, "n_train": 70})    # other config -> regenerated
    toy.ensure_toy_data(tmp_path, cfg2)
    assert len((d / "train_imgs.tsv").read_text().splitlines()) == 70
    assert not [p for p in d.parent.iterdir() if p.name.startswith((".toy.tmp", ".toy.old"))]  # no leftovers


def test_cli(tmp_path, capsys):
    from cnclip_edu.cli import main

    assert main(["toy-data", "--out", str(tmp_path / "t"), "--seed", "2", "--n-train", "50", "--n-valid", "10",
                 "--n-test", "10", "--zeroshot-per-class", "1", "--build-lmdb"]) == 0
    out = capsys.readouterr().out
    assert "train: 50 images" in out and "held out of train" in out
    assert (tmp_path / "t" / "lmdb" / "test" / "pairs" / "data.mdb").exists()


def test_ensure_toy_data_from_two_processes_at_once(tmp_path):
    import multiprocessing as mp

    cfg = toy.ToyConfig(seed=9, n_train=80, n_valid=20, n_test=20, zeroshot_per_class=1, workers=1)
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=toy.ensure_toy_data, args=(tmp_path, cfg)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert toy._is_complete(tmp_path / "data" / "toy", cfg)


@pytest.mark.parametrize("bad", [dict(n_test=0), dict(n_heldout=9), dict(captions_per_image=(3, 2)),
                                 dict(shape_count_probs=(0, 0, 0))])
def test_invalid_config_is_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="invalid ToyConfig"):
        toy.generate(tmp_path / "t", toy.ToyConfig(**bad))
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_default_course_set(tmp_path):
    """The full default toy world (what the course uses): counts as documented in docs/formats.md."""
    d = toy.ensure_toy_data(tmp_path)
    card = json.loads((d / "dataset_card.json").read_text(encoding="utf-8"))
    got = {s: (v["images"], v["texts"], v["pairs"]) for s, v in card["splits"].items()}
    assert got == {"train": (10000, 18755, 58133), "valid": (500, 1190, 1448), "test": (500, 1177, 1544)}
    assert card["zeroshot"]["combo_seen"] == {"classes": 40, "images": 1600}
    assert card["splits"]["train"]["contains_heldout"] == 0


def test_toy_captions_are_the_written_captions_without_drawing(small, monkeypatch):
    def no_drawing(*args, **kwargs):
        raise AssertionError("toy_captions must not draw images")

    monkeypatch.setattr(toy, "render_batch", no_drawing)
    for split in formats.SPLITS:
        lines = formats.texts_jsonl(small, split).read_text(encoding="utf-8").splitlines()
        written = [json.loads(x)["text"] for x in lines]
        assert toy.toy_captions(split, SMALL) == written
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        toy.toy_captions("dev", SMALL)


def test_split_meanings_explain_the_written_gold(small, monkeypatch):
    """Without drawing: each caption's key picks exactly its written gold images, and the objects the key
    asserts are exactly the coloured shapes of its gold images (sizes, places and order aside)."""
    from cnclip_edu.data.toy_text import caption_objects

    monkeypatch.setattr(toy, "render_batch", lambda *a, **k: (_ for _ in ()).throw(AssertionError("drew images")))
    scenes, keys = toy.split_meanings("valid", SMALL)
    lines = [json.loads(x) for x in formats.texts_jsonl(small, "valid").read_text(encoding="utf-8").splitlines()]
    assert sorted(keys) == [t["text_id"] for t in lines] and len(scenes) == 80
    image_key_sets = {i: set(image_keys(s["layout"], s["shapes"])) for i, s in scenes.items()}
    for t in lines:
        key = keys[t["text_id"]]
        assert [i for i in sorted(scenes) if key in image_key_sets[i]] == t["image_ids"], t["text"]
        objects = tuple(sorted((p.color, p.shape) for p in scenes[t["image_ids"][0]]["shapes"]))
        assert caption_objects(key) == objects, (key, objects)   # every caption names all shapes of its image
    with pytest.raises(ValueError, match="unknown caption kind"):
        caption_objects(("nope",))


def test_describe_scene_names_every_shape_in_place():
    from cnclip_edu.data.toy_text import Shape, describe_scene

    red, pink = Shape("红色", "正方形", "大", (0, 0), 0.24, 0.24, 0.42), Shape("粉色", "十字", "小", None, 0.5, 0.7, 0.3)
    assert describe_scene("one", [red]) == "左上角：大的红色正方形"
    assert describe_scene("v", [red, pink]) == "上：大的红色正方形；下：小的粉色十字"
    assert describe_scene("h3", [Shape("黑色", "圆形", None, None, 0.2, 0.5, 0.3)] * 2) == "从左到右：黑色圆形、黑色圆形"


def test_draw_shapes_is_the_toy_worlds_drawing():
    from cnclip_edu.data.toy_draw import draw_shapes, render_scene
    from cnclip_edu.data.toy_text import Shape

    shapes = [Shape("红色", "圆形", "大", (0, 0), 0.25, 0.25, 0.42)]
    img = draw_shapes(shapes, size=32)
    assert img.mode == "RGB" and img.size == (32, 32)
    png = render_scene({"background": 245, "angle": 0.0, "shapes": shapes}, 32)
    assert np.array_equal(np.asarray(img), np.asarray(Image.open(__import__("io").BytesIO(png)).convert("RGB")))
    assert tuple(np.asarray(img)[8, 8]) == toy.COLORS["红色"] and tuple(np.asarray(img)[28, 28]) == (245, 245, 245)


def test_shape_color_area_and_is_big(tmp_path):
    """The palette colour with most pixels wins; background and edge blends are not counted; sizes split at the midpoint."""
    img = np.full((64, 64, 3), 240, dtype=np.uint8)           # light background, not in the palette
    img[10:20, 10:20] = toy.COLORS["红色"]                   # 100 flat red pixels
    img[10:20, 20] = (230, 135, 135)                          # an edge blend of red and background: not counted
    Image.fromarray(img).save(tmp_path / "a.png")
    assert toy.shape_color_area(tmp_path / "a.png") == ("红色", 100)
    assert toy.is_big([100, 225, 105, 220]).tolist() == [False, True, False, True]
