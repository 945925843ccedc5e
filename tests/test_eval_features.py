"""Feature files and extraction: save/load round trips (JSONL in cn_clip's format, memory-mapped
npy), bad files named by line, extraction = normalized encode_* outputs with ids kept, fp16 on
CPU skipped cleanly, the course-model picker, and the CLI chain extract-features -> topk ->
recall on a tiny toy world (checked against cn_clip's evaluation.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cn_clip.eval as cn_eval
from cnclip_edu.course import models as course
from cnclip_edu.eval import features, recall, topk
from cnclip_edu.fileio import atomic_open
from cnclip_edu.model import create_model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("course").eval()


@pytest.fixture(scope="module")
def tiny_toy(tmp_path_factory):
    from cnclip_edu.data import toy
    from cnclip_edu.data.lmdb_build import build_lmdb

    out = tmp_path_factory.mktemp("toy") / "toy"
    toy.generate(out, toy.ToyConfig(n_train=12, n_valid=6, n_test=24, zeroshot_per_class=1, workers=1))
    build_lmdb(out, ["test"], progress=False, verbose=False)
    return out


def test_jsonl_round_trip_is_cn_clip_format(tmp_path):
    ids = np.array([5, 3, 9])
    feats = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    path = features.save_features(tmp_path / "test_imgs.img_feat.jsonl", ids, feats, "image")
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == ["image_id", "feature"] and first["image_id"] == 5
    got_ids, got = features.load_features(path)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_array_equal(got, feats)  # float32 -> JSON -> float32 is exact


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_npy_round_trip_is_memory_mapped(tmp_path, dtype):
    ids = np.arange(100) * 7
    feats = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    path = features.save_features(tmp_path / "g.img_feat.npy", ids, feats, "image", dtype=dtype)
    assert (tmp_path / "g.img_feat.ids.npy").exists()
    got_ids, got = features.load_features(path)
    assert isinstance(got, np.memmap) and got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got, feats, rtol=1e-3 if dtype == "float16" else 0)


@pytest.mark.parametrize("line,message", [
    ('{"image_id": 1, "feature": [0.1, 0.2]}\n{"image_id": "2", "feature": [0.1, 0.2]}', r":2: image_id must be an integer"),
    ('{"image_id": 1, "feature": [0.1, 0.2]}\n{"image_id": 2, "feature": [0.1]}', r":2: feature must be a list of 2"),
    ('{"image_id": 1, "feature": [0.1, 0.2]}\n{oops', r":2: not valid JSON"),
    ('{"id": 1, "feature": [0.1]}', r":1: expected an 'image_id' or 'text_id'"),
    ('{"text_id": 1, "feature": ["a"]}', r"not a number"),
])
def test_bad_feature_files(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=message):
        features.load_features(path)


def test_missing_ids_file_and_atomic_write(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    with pytest.raises(FileNotFoundError, match=r"x\.ids\.npy is missing"):
        features.load_features(tmp_path / "x.npy")
    target = tmp_path / "keep.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_default_paths_follow_cn_clip():
    assert features.default_feature_path("d/test_texts.jsonl", "text") == Path("d/test_texts.txt_feat.jsonl")
    assert features.default_feature_path("d/lmdb/test/imgs", "image") == Path("d/test_imgs.img_feat.jsonl")
    assert features.default_feature_path("d/valid_imgs.tsv", "image", "npy") == Path("d/valid_imgs.img_feat.npy")


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, ids, xs):
        self.ids, self.xs = ids, xs

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i], self.xs[i]


def test_extraction_equals_normalized_encode(model):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(7, 3, 32, 32, generator=g)
    tokens = torch.randint(103, 8000, (5, 52), generator=g)
    tokens[:, 0], tokens[:, 10:] = 101, 0
    ids, f = features.extract_image_features(model, _Pairs([10, 11, 12, 13, 14, 15, 16], images), batch_size=3)
    assert ids.tolist() == list(range(10, 17)) and f.shape == (7, 128) and f.dtype == np.float32
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_image(images), dim=-1).numpy()
    np.testing.assert_allclose(f, ref, atol=1e-5)
    ids, f = features.extract_text_features(model, _Pairs([3, 1, 2, 9, 8], tokens), batch_size=2)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(f, ref, atol=1e-5)
    assert ids.tolist() == [3, 1, 2, 9, 8]
    with pytest.warns(UserWarning, match="precision 'fp16' is for CUDA; on cpu we skip it"):
        _, f16 = features.extract_text_features(model, _Pairs([3, 1, 2, 9, 8], tokens), precision="fp16")
    np.testing.assert_allclose(f16, ref, atol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        features.extract_text_features(model, _Pairs([], []))


@pytest.mark.gpu
def test_extraction_half_precision_on_gpu(model):
    m = create_model("course").cuda().eval()
    tokens = torch.randint(103, 8000, (4, 52))
    _, f32 = features.extract_text_features(m, _Pairs([0, 1, 2, 3], tokens), device="cuda")
    for precision in ("fp16", "bf16"):
        _, f = features.extract_text_features(m, _Pairs([0, 1, 2, 3], tokens), device="cuda", precision=precision)
        np.testing.assert_allclose(f, f32, atol=3e-2)


def test_course_model_picker(tmp_path):
    from cnclip_edu.model import checkpoint

    assert course.course_model_path(tmp_path) is None
    m, preprocess, source = course.load_course_model(tmp_path) if _has_shipped() else _random_fallback(tmp_path)
    assert source in ("shipped", "random") and m.image_resolution == 32
    final = tmp_path / "experiments" / "course" / "final"
    checkpoint.save(create_model("course"), final)
    m, preprocess, source = course.load_course_model(tmp_path)
    assert source == "finetuned" and course.course_model_path(tmp_path) == final
    assert "你在第 06 节训练的模型" in course.describe_source(source, tmp_path)


def _has_shipped() -> bool:
    try:
        import cnclip_edu as cc

        cc.load("course")
        return True
    except FileNotFoundError:
        return False


def _random_fallback(tmp_path):
    with pytest.warns(UserWarning, match="RANDOM course model"):
        return course.load_course_model(tmp_path)


def test_cli_round_trip_on_tiny_toy(tiny_toy, model, tmp_path, capsys):
    from cnclip_edu.model import checkpoint
    from cnclip_edu.cli import main as cli

    ckpt = checkpoint.save(model, tmp_path / "model")
    texts = tiny_toy / "test_texts.jsonl"
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli(["extract-features", "--extract-image-feats", "--extract-text-feats", "--image-data",
                    str(tiny_toy / "lmdb" / "test" / "imgs"), "--text-data", str(texts), "--resume", str(ckpt),
                    "--img-batch-size", "8", "--text-batch-size", "16", "--device", "cpu"]) == 0  # default precision
    assert not [w for w in caught if "precision" in str(w.message)]  # on a CPU the default is fp32: no warning
    img_f, txt_f = tiny_toy / "test_imgs.img_feat.jsonl", tiny_toy / "test_texts.txt_feat.jsonl"
    img_ids, img = features.load_features(img_f)
    assert len(img_ids) == 24 and np.allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    for direction in ("t2i", "i2t"):
        pred = tmp_path / f"{direction}.jsonl"
        assert cli(["topk", "--image-feats", str(img_f), "--text-feats", str(txt_f), "--top-k", "10",
                    "--output", str(pred), "--direction", direction]) == 0
        out = tmp_path / f"{direction}.json"
        assert cli(["recall", str(texts), str(pred), str(out), "--direction", direction]) == 0
        ours = json.loads(out.read_text())
        gold = texts
        if direction == "i2t":
            gold = recall.write_tr_annotation(texts, tmp_path / "test_texts.tr.jsonl")
        script = "evaluation.py" if direction == "t2i" else "evaluation_tr.py"
        subprocess.run([sys.executable, str(Path(cn_eval.__file__).parent / script), str(gold), str(pred),
                        str(tmp_path / "theirs.json")], check=True, capture_output=True)
        assert ours == json.loads((tmp_path / "theirs.json").read_text()) and ours["success"]
    # the npy form gives the same predictions
    assert cli(["extract-features", "--extract-image-feats", "--image-data", str(tiny_toy / "lmdb" / "test" / "imgs"),
                "--image-feat-output-path", str(tmp_path / "imgs.npy"), "--format", "npy", "--npy-dtype", "float32",
                "--resume", str(ckpt), "--precision", "fp32", "--device", "cpu"]) == 0
    ids2, img2 = features.load_features(tmp_path / "imgs.npy")
    np.testing.assert_array_equal(ids2, img_ids)
    np.testing.assert_allclose(img2, img, atol=1e-6)
    assert features.main(["--image-data", "x"]) == 2
    assert features.main(["--extract-text-feats", "--text-data", str(tmp_path / "nope.jsonl")]) == 2


# ----------------------------------------------------------------------------- ids where they enter
@pytest.mark.parametrize("lines, message", [
    (['{"image_id": 7, "feature": [0.6, 0.8]}', '{"image_id": 7, "feature": [0.8, 0.6]}'],
     r"bad\.jsonl:2: image_id 7 is a duplicate \(already at .*bad\.jsonl:1\)"),
    (['{"text_id": 9223372036854775808, "feature": [0.6, 0.8]}'], r"bad\.jsonl:1: text_id 9223372036854775808 does not fit"),
    (['{"text_id": 1, "feature": [0.6, 0.8]}', '{"text_id": 5, "feature": [NaN, 0.8]}'],
     r"bad\.jsonl:2: the feature of text_id 5 holds NaN or inf"),
])
def test_feature_file_ids_and_values_are_checked_on_load(tmp_path, lines, message):
    """Issue 16 items 4, 5, 10: a gallery with an id twice gave predictions repeating it; an id past
    int64 crashed with "Overflow when unpacking long long"; NaN was reported without file or id."""
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        features.load_features(path)


def test_npy_feature_ids_are_checked_on_load(tmp_path):
    feats = np.eye(3, dtype=np.float32)
    np.save(tmp_path / "a.npy", feats)
    np.save(tmp_path / "a.ids.npy", np.array([4, 5, 4]))
    with pytest.raises(ValueError, match=r"a\.ids\.npy: rows 0 and 2 hold the same id 4"):
        features.load_features(tmp_path / "a.npy")
    np.save(tmp_path / "a.ids.npy", np.array([1, 2**63, 3], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"a\.ids\.npy: row 1: id 9223372036854775808 does not fit in 64 bits"):
        features.load_features(tmp_path / "a.npy")
    np.save(tmp_path / "a.ids.npy", np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"a\.ids\.npy: ids must be integers, not float64"):
        features.load_features(tmp_path / "a.npy")


def test_eval_datasets_refuse_duplicate_and_oversized_ids(tmp_path):
    from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset
    from cnclip_edu.data.formats import encode_image
    from PIL import Image

    b64 = encode_image(Image.new("RGB", (8, 8)))
    (tmp_path / "imgs.tsv").write_text(f"1\t{b64}\n2\t{b64}\n1\t{b64}\n")
    with pytest.raises(ValueError, match=r"imgs\.tsv:3: image id 1 is a duplicate \(already at .*imgs\.tsv:1\)"):
        EvalImageDataset(tmp_path / "imgs.tsv", 8)
    (tmp_path / "imgs.tsv").write_text(f"1\t{b64}\n{2**64}\t{b64}\n")
    with pytest.raises(ValueError, match=r"imgs\.tsv:2: image id 18446744073709551616 does not fit"):
        EvalImageDataset(tmp_path / "imgs.tsv", 8)
    (tmp_path / "t.jsonl").write_text('{"text_id": 3, "text": "a"}\n\n{"text_id": 3, "text": "b"}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:3: text_id 3 is a duplicate"):
        EvalTextDataset(tmp_path / "t.jsonl")
    (tmp_path / "t.jsonl").write_text('{"text_id": -9223372036854775809, "text": "a"}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl:1: text_id -9223372036854775809 does not fit"):
        EvalTextDataset(tmp_path / "t.jsonl")


def test_extract_features_cli_names_a_duplicate_id(tmp_path, capsys):
    """Issue 16 item 5: a TSV with an id twice passed extract-features."""
    from cnclip_edu.cli import main as cli
    from cnclip_edu.data.formats import encode_image
    from PIL import Image

    b64 = encode_image(Image.new("RGB", (8, 8)))
    (tmp_path / "test_imgs.tsv").write_text(f"5\t{b64}\n6\t{b64}\n5\t{b64}\n")
    with pytest.warns(UserWarning, match="RANDOMLY initialized"):
        rc = cli(["extract-features", "--extract-image-feats", "--image-data", str(tmp_path / "test_imgs.tsv"),
                  "--vision-model", "ViT-Course", "--text-model", "RBT-Course", "--device", "cpu"])
    assert rc == 1
    assert "test_imgs.tsv:3: image id 5 is a duplicate" in capsys.readouterr().err
    assert not list(tmp_path.glob("*feat*"))
    for flag in ("--img-batch-size", "--text-batch-size", "--context-length", "--num-workers"):
        with pytest.raises(SystemExit) as e:
            cli(["extract-features", "--extract-image-feats", "--image-data", "x", flag, "-5"])
        assert e.value.code == 2 and f"cnclip-edu extract-features: {flag} must be" in capsys.readouterr().err
