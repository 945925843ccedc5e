"""Notebook 10's example data: photographs from inside the scikit-image wheel with our Chinese captions.
Every photo must be in the installed package (never downloaded), the folder must convert into the
splits the notebook describes, and a missing scikit-image must say what to install."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from cnclip_edu.data import convert, formats, samples
from cnclip_edu.data.lmdb_build import build_lmdb

pytest.importorskip("skimage", reason="scikit-image (dev extra) ships the example photos")


def test_every_photo_is_inside_the_installed_wheel():
    src = samples.skimage_data_dir()
    for name in samples.SAMPLE_CAPTIONS:
        path = src / name
        assert path.is_file(), f"{path} missing: scikit-image would have to download it"
        with Image.open(path) as img:
            img.load()
            assert min(img.size) >= 128, f"{name}: {img.size} is too small to stand for a photo"


def test_captions_hold_out_a_new_phrasing_per_photo():
    for name, caps in samples.SAMPLE_CAPTIONS.items():
        assert len(caps) == 4 and all(c.strip() == c and c for c in caps), name
        assert caps[-1] not in caps[:-1], f"{name}: the held-out caption is also a training caption"
    assert set(samples.GREY_PHOTOS) <= set(samples.SAMPLE_CAPTIONS)
    for name in samples.GREY_PHOTOS:  # "一张黑白照片" must be true for every photo it is attached to
        with Image.open(samples.skimage_data_dir() / name) as img:
            assert img.mode in ("L", "1", "I;16"), f"{name} is {img.mode}, not black and white"
    colour = [n for n in samples.SAMPLE_CAPTIONS if n not in samples.GREY_PHOTOS]
    for name in colour:  # ... and false for the others (else its gold list would be incomplete)
        with Image.open(samples.skimage_data_dir() / name) as img:
            assert img.mode not in ("L", "1", "I;16"), name


def test_sample_folder_converts_into_the_splits_the_notebook_describes(tmp_path):
    folder = samples.write_sample_folder(tmp_path / "my_photos")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*samples.SAMPLE_CAPTIONS, "captions.csv"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp folder left
    report = convert.convert_captions(folder, folder / "captions.csv", tmp_path / "own", max_side=64, progress=False)
    assert report == {"train": {"images": 18, "texts": 52, "pairs": 63, "skipped": 0},
                      "valid": {"images": 18, "texts": 17, "pairs": 18, "skipped": 0}}
    texts = {t["text"]: t["image_ids"] for t in formats.iter_texts_jsonl(tmp_path / "own" / "train_texts.jsonl")}
    assert len(texts[samples.BLACK_AND_WHITE]) == len(samples.GREY_PHOTOS)
    assert texts["一辆红色的摩托车停在车库里"] == [7, 8]
    assert build_lmdb(tmp_path / "own", "train,valid", progress=False, verbose=False)["train"]["pairs"] == 63
    # an existing folder is the user's: kept unless overwrite
    (folder / "captions.csv").write_text("image,caption\nchelsea.png,我的猫\n", encoding="utf-8")
    samples.write_sample_folder(folder)
    assert "我的猫" in (folder / "captions.csv").read_text(encoding="utf-8")
    samples.write_sample_folder(folder, overwrite=True)
    assert "我的猫" not in (folder / "captions.csv").read_text(encoding="utf-8")


def test_writing_the_folder_needs_no_network_and_no_skimage_import(tmp_path):
    code = textwrap.dedent(f"""
        import socket, sys
        def refuse(*a, **k):
            raise OSError("network is off in this test")
        socket.socket = refuse
        socket.create_connection = refuse
        from cnclip_edu.data.samples import write_sample_folder
        write_sample_folder({str(tmp_path / "p")!r})
        assert "skimage" not in sys.modules and "pooch" not in sys.modules, sorted(sys.modules)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_missing_scikit_image_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(samples.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-image"):
        samples.write_sample_folder(tmp_path / "p")
    assert not (tmp_path / "p").exists()
