"""Converters (captions -> MUGE, class folders -> zero-shot) and the download helpers, on files the
tests make: EXIF rotation, odd modes, resizing, merging, clear errors, offline fail-fast, safe unzip."""
from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from PIL import Image

from cnclip_edu.cli import main as cli
from cnclip_edu.data import convert, download, formats
from cnclip_edu.data.lmdb_build import build_lmdb
from cnclip_edu.model.hub import DownloadError


def _save(path, img, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    # 40 x 20 landscape pixels stored with EXIF orientation 6 ("rotate 90 to display"): shows 20 x 40
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(d / "rotated.jpg", Image.new("RGB", (40, 20), (200, 30, 30)), exif=exif.tobytes())
    _save(d / "sub" / "rgba.png", Image.new("RGBA", (30, 30), (0, 0, 255, 0)))
    _save(d / "cmyk.tif", Image.new("CMYK", (1000, 500), (0, 255, 255, 0)))
    _save(d / "grey16.png", Image.new("I;16", (10, 10)))
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


def test_convert_captions_csv(tmp_path, photos):
    caps = tmp_path / "caps.csv"
    caps.write_text("image,caption\nrotated.jpg,一辆红色的车\nsub/rgba.png,透明的图\ncmyk.tif,一辆红色的车\n"
                    "grey16.png,灰色\nrotated.jpg,横着拍的照片\n", encoding="utf-8")
    r = convert.convert_captions(photos, caps, tmp_path / "out", "train", max_side=200, quality=90, progress=False)
    assert r == {"train": {"images": 4, "texts": 4, "pairs": 5, "skipped": 0}}
    imgs = dict(formats.iter_imgs_tsv(tmp_path / "out" / "train_imgs.tsv"))
    decoded = {i: formats.decode_image(b) for i, b in imgs.items()}
    assert all(im.format == "JPEG" and im.mode == "RGB" for im in decoded.values())
    assert decoded[1].size == (20, 40)                      # EXIF rotation applied
    assert decoded[2].getpixel((15, 15)) == (255, 255, 255)  # transparent -> white
    assert decoded[3].size == (200, 100)                    # max side
    texts = list(formats.iter_texts_jsonl(tmp_path / "out" / "train_texts.jsonl"))
    assert texts[0] == {"text_id": 1, "text": "一辆红色的车", "image_ids": [1, 3]}  # identical captions merged
    id_map = (tmp_path / "out" / "train_id_map.tsv").read_text(encoding="utf-8").splitlines()
    assert id_map[:2] == ["1\trotated.jpg", "2\tsub/rgba.png"]
    report = build_lmdb(tmp_path / "out", "train", progress=False, verbose=False)  # valid input for the builder
    assert report["train"]["pairs"] == 5


def test_convert_captions_jsonl_and_errors(tmp_path, photos):
    caps = tmp_path / "caps.jsonl"
    caps.write_text(json.dumps({"image": "grey16.png", "captions": ["一", "二"]}, ensure_ascii=False) + "\n\n"
                    + json.dumps({"image": "broken.jpg", "caption": "坏的"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    with pytest.raises(convert.ConvertError, match=r"caps.jsonl:3: image 'broken.jpg'"):
        convert.convert_captions(photos, caps, tmp_path / "o", progress=False)
    r = convert.convert_captions(photos, caps, tmp_path / "o", on_error="skip", start_image_id=100,
                                 start_text_id=500, progress=False)
    assert r == {"train": {"images": 1, "texts": 2, "pairs": 2, "skipped": 1}}
    assert [t["text_id"] for t in formats.iter_texts_jsonl(tmp_path / "o" / "train_texts.jsonl")] == [500, 501]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,caption\na.jpg,x\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="bad.csv:1: the CSV header"):
        convert.read_captions(bad)
    bad.write_text("image,caption\na.jpg,\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="bad.csv:2: empty caption"):
        convert.read_captions(bad)
    bad.write_text('image,caption\na.jpg,"红色, 圆形"\nb.jpg,红色, 圆形\n', encoding="utf-8")
    with pytest.raises(convert.ConvertError, match=r"bad.csv:3: 3 fields for a 2-column header .*quoted"):
        convert.read_captions(bad)
    bad.write_text("image,caption\na.jpg,一杯咖啡\nb.jpg,一只猫\n", encoding="gbk")   # Excel's legacy save
    with pytest.raises(convert.ConvertError, match="bad.csv:2: not UTF-8 text"):
        convert.read_captions(bad)
    caps.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="caps.jsonl:1: not valid JSON"):
        convert.read_captions(caps)


def test_convert_captions_split_column(tmp_path, photos):
    """One folder, one captions file with a split column -> every split at once; a photo used in two
    splits keeps one id; text ids run on across splits; `split=` picks one split only."""
    caps = tmp_path / "caps.csv"
    caps.write_text("image,caption,split\nrotated.jpg,一辆红色的车,train\ngrey16.png,灰色的方块,train\n"
                    "rotated.jpg,红色的车,valid\ncmyk.tif,青色,valid\ngrey16.png,灰色的方块,train\n", encoding="utf-8")
    out = tmp_path / "out"
    r = convert.convert_captions(photos, caps, out, progress=False)
    assert r == {"train": {"images": 2, "texts": 2, "pairs": 2, "skipped": 0},
                 "valid": {"images": 2, "texts": 2, "pairs": 2, "skipped": 0}}
    assert [i for i, _ in formats.iter_imgs_tsv(out / "valid_imgs.tsv")] == [1, 3]   # rotated.jpg is 1 in both
    assert list(formats.iter_texts_jsonl(out / "valid_texts.jsonl")) == [
        {"text_id": 3, "text": "红色的车", "image_ids": [1]}, {"text_id": 4, "text": "青色", "image_ids": [3]}]
    assert (out / "valid_id_map.tsv").read_text(encoding="utf-8") == "1\trotated.jpg\n3\tcmyk.tif\n"
    report = build_lmdb(out, "train,valid", progress=False, verbose=False)
    assert report["valid"]["pairs"] == 2 and report["train"]["pairs"] == 2
    only = convert.convert_captions(photos, caps, tmp_path / "v", split="valid", progress=False)
    assert list(only) == ["valid"] and not (tmp_path / "v" / "train_imgs.tsv").exists()
    with pytest.raises(convert.ConvertError, match="no row has split 'test'"):
        convert.convert_captions(photos, caps, tmp_path / "t", split="test", progress=False)
    caps.write_text("image,caption,split\nrotated.jpg,车,train\ngrey16.png,灰,\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="caps.csv:3: bad split ''"):
        convert.read_captions(caps)
    jl = tmp_path / "caps.jsonl"
    jl.write_text(json.dumps({"image": "grey16.png", "captions": ["灰"], "split": "test"}) + "\n"
                  + json.dumps({"image": "cmyk.tif", "caption": "青"}) + "\n", encoding="utf-8")
    r = convert.convert_captions(photos, jl, tmp_path / "j", progress=False)  # a row without a split: train
    assert {k: v["images"] for k, v in r.items()} == {"test": 1, "train": 1}
    jl.write_text(json.dumps({"image": "cmyk.tif", "caption": "青", "split": "../x"}) + "\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="caps.jsonl:1: bad split"):
        convert.read_captions(jl)
    jl.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="caps.jsonl:1: expected keys"):
        convert.read_captions(jl)


def test_caption_records_merge_identical_captions_in_first_seen_order():
    rows = [("b.jpg", "一只猫"), ("a.jpg", " 一只猫 "), ("a.jpg", "狗"), ("b.jpg", "一只猫")]
    assert convert.caption_records(rows, {"a.jpg": 7, "b.jpg": 5}, start_text_id=10) == [
        {"text_id": 10, "text": "一只猫", "image_ids": [5, 7]}, {"text_id": 11, "text": "狗", "image_ids": [7]}]


def test_convert_class_folders(tmp_path):
    src = tmp_path / "classes"
    for name, color in (("cat", (200, 100, 0)), ("dog", (0, 0, 0)), ("bird", (0, 200, 0))):
        for k in range(2):
            _save(src / name / f"{k}.png", Image.new("RGB", (8, 8), color))
    (src / "cat" / "notes.txt").write_text("ignored")
    labels = tmp_path / "labels.txt"
    labels.write_text("dog\t狗\ncat\t猫\nbird\t鸟\n", encoding="utf-8")
    r = convert.convert_class_folders(src, tmp_path / "zs", labels)
    assert r == {"classes": 3, "images": 6}
    assert (tmp_path / "zs" / "label_cn.txt").read_text(encoding="utf-8") == "狗\n猫\n鸟\n"
    assert sorted(p.name for p in (tmp_path / "zs" / "test").iterdir()) == ["000", "001", "002"]
    assert Image.open(tmp_path / "zs" / "test" / "001" / "0.png").getpixel((0, 0)) == (200, 100, 0)
    with pytest.raises(convert.ConvertError, match="already exists"):
        convert.convert_class_folders(src, tmp_path / "zs", labels)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    labels.write_text("fish\t鱼\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match="fish"):
        convert.convert_class_folders(src, tmp_path / "zs2", labels)
    assert cli(["convert", "folders", "--src", str(src), "--out", str(tmp_path / "zs3")]) == 0
    assert (tmp_path / "zs3" / "label_cn.txt").read_text(encoding="utf-8").split() == ["bird", "cat", "dog"]
    # torchvision's ImageFolder (what cn_clip's zero-shot eval uses) sees the same classes
    from torchvision.datasets import ImageFolder

    assert ImageFolder(str(tmp_path / "zs3" / "test")).class_to_idx == {"000": 0, "001": 1, "002": 2}


def test_convert_cli(tmp_path, photos, capsys):
    caps = tmp_path / "c.csv"
    caps.write_text("image,text\ngrey16.png,灰\n", encoding="utf-8")
    assert cli(["convert", "captions", "--images", str(photos), "--captions", str(caps), "--out", str(tmp_path / "o"),
                "--split", "valid", "--max_side", "64", "--quality", "80"]) == 0
    assert "valid: images: 1" in capsys.readouterr().out and (tmp_path / "o" / "valid_imgs.tsv").exists()
    caps.write_text("image,text\nbroken.jpg,坏\n", encoding="utf-8")
    assert cli(["convert", "captions", "--images", str(photos), "--captions", str(caps), "--out", str(tmp_path / "o")]) == 1
    assert "broken.jpg" in capsys.readouterr().err


def _zip(path, entries: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_download_offline_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"HF_HUB_OFFLINE.*chinese-clip-eval/resolve/main/MUGE.zip.*--from-zip"):
        download.download("muge", tmp_path)
    # no network wait: a blocked connection would sit in huggingface_hub's 10 s timeouts and retries;
    # the bound is loose so that a slow, shared CI machine importing huggingface_hub does not trip it
    assert time.perf_counter() - t0 < 20
    assert cli(["download", "cifar-100", "--out", str(tmp_path)]) == 1
    with pytest.raises(ValueError, match="unknown dataset"):
        download.zip_name("imagenet-42")
    assert download.zip_name("Flickr30K-CN") == "Flickr30k-CN.zip" and len(download.ELEVATER) == 20


def test_download_without_network_fails_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub

    def no_network(*a, **k):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(DownloadError, match="could not download Flickr30k-CN.zip.*Network is unreachable"):
        download.download("flickr30k-cn", tmp_path)


def test_unpack_local_zip_safely(tmp_path, capsys):
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    z = _zip(tmp_path / "cifar-100.zip", {"cifar-100/label_cn.txt": "苹果\n".encode(),
                                          "cifar-100/test/000/a.png": buf.getvalue(), "__MACOSX/junk": b""})
    assert cli(["download", "cifar-100", "--from-zip", str(z), "--out", str(tmp_path / "ds")]) == 0
    assert (tmp_path / "ds" / "cifar-100" / "test" / "000" / "a.png").exists()
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["cifar-100"]
    with pytest.raises(DownloadError, match="already exists"):
        download.download("cifar-100", tmp_path / "ds", from_zip=z)
    evil = _zip(tmp_path / "evil.zip", {"../../escaped.txt": b"x"})
    with pytest.raises(DownloadError, match="outside"):
        download.extract_zip(evil, tmp_path / "ds2")
    assert not (tmp_path / "escaped.txt").exists() and not list((tmp_path / "ds2").iterdir())


def test_convert_refuses_ids_past_64_bits_and_an_empty_result(tmp_path, photos, capsys):
    """Issue 16 items 3, 4: ids it makes must fit int64; skipping every image is a failure, not 0 images."""
    caps = tmp_path / "caps.csv"
    caps.write_text("image,caption\nrotated.jpg,红\nsub/rgba.png,蓝\n", encoding="utf-8")
    with pytest.raises(convert.ConvertError, match=r"--start-image-id 9223372036854775807 with 2 images: "
                                                   r"the last image id 9223372036854775808 does not fit in 64 bits"):
        convert.convert_captions(photos, caps, tmp_path / "out", start_image_id=2**63 - 1, progress=False)
    caps.write_text("image,caption\nbroken.jpg,坏\n", encoding="utf-8")
    assert cli(["convert", "captions", "--images", str(photos), "--captions", str(caps), "--out", str(tmp_path / "o"),
                "--on-error", "skip"]) == 1
    assert "none of the 1 images could be converted; nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "o" / "train_imgs.tsv").exists()


def test_write_splits_is_what_convert_captions_writes(tmp_path, photos):
    """convert_captions = encode every photo, then write_splits (exercise 10.3 rebuilds it): same bytes, ids run on."""
    caps = tmp_path / "caps.csv"
    caps.write_text("image,caption,split\nrotated.jpg,红色,valid\nsub/rgba.png,蓝色,train\nrotated.jpg, 红色 ,train\n"
                    "cmyk.tif,青色,valid\nsub/rgba.png,蓝色,train\n", encoding="utf-8")
    report = convert.convert_captions(photos, caps, tmp_path / "a", start_image_id=5, start_text_id=20, progress=False)
    rows = [(r.image, r.caption, r.split) for r in convert.read_captions(caps)]
    ids = {"rotated.jpg": 5, "sub/rgba.png": 6, "cmyk.tif": 7}
    mine = convert.write_splits(tmp_path / "b", rows, ids, lambda img: convert.prepare_image(photos / img), 20)
    assert list(mine) == ["valid", "train"] and {k: {**v, "skipped": 0} for k, v in mine.items()} == report
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir()) and len(names) == 6
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    assert [t["text_id"] for t in formats.iter_texts_jsonl(tmp_path / "b" / "train_texts.jsonl")] == [22, 23]
