"""build_lmdb: exact cn_clip layout, validation of every bad input a user meets (each with a clear
error naming file, line and id, or a documented acceptance), skip mode, atomic replacement, map growth."""
from __future__ import annotations

import base64
import io
import json
import pickle
import struct
import sys
import zlib
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from PIL import Image

from cnclip_edu.data import formats, lmdb_build
from cnclip_edu.data.dataset import LMDBDataset, close_shared_envs
from cnclip_edu.data.lmdb_build import DataValidationError, EmptyResultError, build_lmdb


def _png(color=(200, 30, 30), mode="RGB", size=(16, 12), fmt="PNG") -> bytes:
    img = Image.new("RGB", size, color)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bomb_png(w=100_000, h=100_000) -> bytes:
    """A tiny PNG whose header declares w x h pixels (valid CRC, so only the size gives it away)."""
    raw = bytearray(_png())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4:ihdr + 12] = struct.pack(">II", w, h)
    crc = zlib.crc32(bytes(raw[ihdr:ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17:ihdr + 21] = struct.pack(">I", crc)
    return bytes(raw)


def write_split(d: Path, split: str = "train", imgs=None, texts=None, raw_tsv: bytes | None = None,
                raw_jsonl: bytes | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if imgs is None:
        imgs = [(1, _b64(_png((200, 30, 30)))), (2, _b64(_png((30, 200, 30)))), (3, _b64(_png((30, 30, 200))))]
    if texts is None:
        texts = [{"text_id": 10, "text": "红色", "image_ids": [1]},
                 {"text_id": 11, "text": "绿色或蓝色", "image_ids": [2, 3]}]
    tsv = raw_tsv if raw_tsv is not None else "".join(f"{i}\t{b}\n" for i, b in imgs).encode()
    jsonl = raw_jsonl if raw_jsonl is not None else "".join(
        json.dumps(t, ensure_ascii=False) + "\n" for t in texts).encode()
    (d / f"{split}_imgs.tsv").write_bytes(tsv)
    (d / f"{split}_texts.jsonl").write_bytes(jsonl)
    return d


def dump_lmdb(path: Path) -> dict[bytes, bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        out = dict(txn.cursor())
    env.close()
    return out


def test_layout_is_cn_clips(tmp_path):
    d = write_split(tmp_path / "d")
    report = build_lmdb(d, "train", progress=False)
    assert report["train"] == {"images": 3, "texts": 2, "pairs": 3, "skipped": {}, "blank_lines": 0,
                               "path": str(d / "lmdb" / "train")}
    imgs = dump_lmdb(d / "lmdb" / "train" / "imgs")
    assert set(imgs) == {b"1", b"2", b"3", b"num_images"} and imgs[b"num_images"] == b"3"
    assert Image.open(io.BytesIO(base64.urlsafe_b64decode(imgs[b"2"]))).getpixel((0, 0)) == (30, 200, 30)
    pairs = dump_lmdb(d / "lmdb" / "train" / "pairs")
    assert pairs[b"num_samples"] == b"3"
    assert [pickle.loads(pairs[str(i).encode()]) for i in range(3)] == [(1, 10, "红色"), (2, 11, "绿色或蓝色"),
                                                                      (3, 11, "绿色或蓝色")]


def test_refuses_to_overwrite_and_lmdb_dir_option(tmp_path):
    d = write_split(tmp_path / "d")
    build_lmdb(d, ["train"], lmdb_dir=tmp_path / "L", progress=False, verbose=False)
    assert (tmp_path / "L" / "train" / "pairs" / "data.mdb").exists()
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_lmdb(d, ["train"], lmdb_dir=tmp_path / "L", progress=False)
    build_lmdb(d, ["train"], lmdb_dir=tmp_path / "L", overwrite=True, progress=False, verbose=False)
    assert not [p for p in (tmp_path / "L").iterdir() if p.name.startswith(".")]


BAD_CASES = {
    # name: (kwargs for write_split, expected kind, expected line, expected file suffix)
    "corrupt_base64": (dict(imgs=[(1, "@@@not-base64@@@"), (2, _b64(_png())), (3, _b64(_png()))]), "bad_base64", 1, "imgs.tsv"),
    "truncated_jpeg": (dict(imgs=[(1, _b64(_png())), (2, _b64(_png(fmt="JPEG", size=(64, 64))[:300])), (3, _b64(_png()))]),
                       "bad_image", 2, "imgs.tsv"),
    "not_an_image": (dict(imgs=[(1, _b64(_png())), (2, _b64(_png())), (3, _b64(b"hello, I am text"))]), "bad_image", 3, "imgs.tsv"),
    "decompression_bomb": (dict(imgs=[(1, _b64(_bomb_png())), (2, _b64(_png())), (3, _b64(_png()))]), "bad_image", 1, "imgs.tsv"),
    "bomb_under_pil_limit": (dict(imgs=[(1, _b64(_png())), (2, _b64(_bomb_png(9000, 9000))), (3, _b64(_png()))]),
                             "bad_image", 2, "imgs.tsv"),
    "duplicate_image_id": (dict(imgs=[(1, _b64(_png())), (2, _b64(_png())), (3, _b64(_png())), (2, _b64(_png()))]),
                           "duplicate_image_id", 4, "imgs.tsv"),
    "non_int_image_id": (dict(raw_tsv=f"1\t{_b64(_png())}\nabc\t{_b64(_png())}\n2\t{_b64(_png())}\n3\t{_b64(_png())}\n".encode()),
                         "bad_id", 2, "imgs.tsv"),
    "no_tab": (dict(raw_tsv=f"1\t{_b64(_png())}\n2 {_b64(_png())}\n3\t{_b64(_png())}\n".encode()), "bad_line", 2, "imgs.tsv"),
    "missing_referenced_id": (dict(texts=[{"text_id": 10, "text": "红色", "image_ids": [1, 99]}]), "missing_image", 1, "texts.jsonl"),
    "invalid_utf8": (dict(raw_jsonl=b'{"text_id": 10, "text": "ok", "image_ids": [1]}\n{"text_id": 11, "text": "\xff\xfe", "image_ids": [2]}\n'),
                     "bad_utf8", 2, "texts.jsonl"),
    "bad_json": (dict(raw_jsonl=b'{"text_id": 10, "text": "ok", "image_ids": [1]\n'), "bad_json", 1, "texts.jsonl"),
    "empty_text": (dict(texts=[{"text_id": 10, "text": "  ", "image_ids": [1]}]), "empty_text", 1, "texts.jsonl"),
    "string_text_id": (dict(texts=[{"text_id": "10", "text": "红色", "image_ids": [1]}]), "bad_text_id", 1, "texts.jsonl"),
    "bool_text_id": (dict(texts=[{"text_id": True, "text": "红色", "image_ids": [1]}]), "bad_text_id", 1, "texts.jsonl"),
    "string_image_ids": (dict(texts=[{"text_id": 10, "text": "红色", "image_ids": ["1"]}]), "bad_image_ids", 1, "texts.jsonl"),
    "duplicate_text_id": (dict(texts=[{"text_id": 10, "text": "红色", "image_ids": [1]},
                                      {"text_id": 10, "text": "绿色", "image_ids": [2]}]), "duplicate_text_id", 2, "texts.jsonl"),
}


EMPTY_WHEN_SKIPPED = {"bad_json", "empty_text", "string_text_id", "bool_text_id", "string_image_ids"}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_fails_clearly_and_leaves_old_lmdb_intact(tmp_path, case):
    kwargs, kind, line, suffix = BAD_CASES[case]
    good = write_split(tmp_path / "d")
    build_lmdb(good, "train", progress=False, verbose=False)
    before = {db: dump_lmdb(good / "lmdb" / "train" / db) for db in ("imgs", "pairs")}
    write_split(tmp_path / "d", **kwargs)  # the same folder, now broken
    with pytest.raises(DataValidationError) as e:
        build_lmdb(good, "train", overwrite=True, progress=False)
    issue = e.value.issues[0]
    assert (issue.kind, issue.line) == (kind, line) and issue.file.endswith(suffix)
    msg = str(e.value)
    assert f"train_{suffix}:{line}" in msg and kind in msg and "nothing was written" in msg
    if kind in ("duplicate_image_id", "missing_image", "duplicate_text_id", "bad_base64", "bad_image"):
        assert "(id " in msg
    if case in ("decompression_bomb", "bomb_under_pil_limit"):
        assert "bomb" in msg
    after = {db: dump_lmdb(good / "lmdb" / "train" / db) for db in ("imgs", "pairs")}
    assert after == before
    if case in EMPTY_WHEN_SKIPPED:  # the only text is the bad record: skipping it leaves nothing to write
        with pytest.raises(EmptyResultError, match=f"no valid text .*{kind}"):
            build_lmdb(good, "train", overwrite=True, on_error="skip", progress=False, verbose=False)
        assert {db: dump_lmdb(good / "lmdb" / "train" / db) for db in ("imgs", "pairs")} == before
        return
    # skip mode: the bad record is left out, the rest is built, counts are reported
    report = build_lmdb(good, "train", overwrite=True, on_error="skip", progress=False, verbose=False)
    assert report["train"]["skipped"].get(kind, 0) >= 1


def test_skip_mode_counts_and_drops_dependent_pairs(tmp_path, capsys):
    imgs = [(1, _b64(_png())), (2, "%%%"), (3, _b64(b"nope")), (4, _b64(_png()))]
    texts = [{"text_id": 10, "text": "a", "image_ids": [1, 2]}, {"text_id": 11, "text": "", "image_ids": [4]},
             {"text_id": 12, "text": "b", "image_ids": [3, 4, 5]}]
    d = write_split(tmp_path / "d", imgs=imgs, texts=texts)
    r = build_lmdb(d, "train", on_error="skip", progress=False)["train"]
    assert r["images"] == 2 and r["texts"] == 2 and r["pairs"] == 2
    assert r["skipped"] == {"bad_base64": 1, "bad_image": 1, "empty_text": 1, "missing_image": 3}
    assert "skipped" in capsys.readouterr().out
    pairs = dump_lmdb(d / "lmdb" / "train" / "pairs")
    assert [pickle.loads(pairs[k]) for k in (b"0", b"1")] == [(1, 10, "a"), (4, 12, "b")]


def test_tolerated_quirks_bom_crlf_blank_lines_long_text(tmp_path):
    long_text = "很长的描述" * 100
    tsv = ("\ufeff" + f"1\t{_b64(_png())}\r\n\r\n2\t{_b64(_png())}\r\n   \n3\t{_b64(_png())}").encode()
    jsonl = ("\ufeff" + json.dumps({"text_id": 10, "text": long_text, "image_ids": [1, 2]}, ensure_ascii=False)
             + "\r\n\n" + json.dumps({"text_id": 11, "text": "ok", "image_ids": []}) + "\r\n").encode()
    d = write_split(tmp_path / "d", raw_tsv=tsv, raw_jsonl=jsonl)
    r = build_lmdb(d, "train", progress=False, verbose=False)["train"]
    assert (r["images"], r["texts"], r["pairs"], r["blank_lines"]) == (3, 2, 2, 3)
    ds = LMDBDataset(d / "lmdb" / "train", resolution=24, context_length=52)
    assert ds.pair(0) == (1, 10, long_text)
    image, tokens = ds[0]
    assert image.shape == (3, 24, 24) and tokens.shape == (52,) and tokens[0] == 101 and tokens[-1] == 102
    close_shared_envs(d)


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "P", "LA", "L", "I;16", "1"])
def test_any_image_mode_is_accepted_and_read_as_rgb(tmp_path, mode):
    if mode == "I;16":
        img = Image.fromarray(np.full((12, 16), 40000, dtype=np.uint16))
    elif mode in ("RGBA", "LA"):
        img = Image.new("RGBA", (16, 12), (200, 30, 30, 0)).convert(mode)  # fully transparent
    elif mode == "1":
        img = Image.new("1", (16, 12), 1)
    elif mode == "P":
        img = Image.new("RGB", (16, 12), (200, 30, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        img = Image.new("RGB", (16, 12), (200, 30, 30)).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode == "CMYK" else "PNG")
    d = write_split(tmp_path / "d", imgs=[(1, _b64(buf.getvalue())), (2, _b64(_png())), (3, _b64(_png()))])
    build_lmdb(d, "train", progress=False, verbose=False)
    ds = LMDBDataset(d / "lmdb" / "train", resolution=8)
    x, _ = ds[0]
    assert x.shape == (3, 8, 8) and torch.isfinite(x).all()
    from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD, to_rgb
    back = (x[:, 4, 4] * torch.tensor(CLIP_STD) + torch.tensor(CLIP_MEAN)) * 255
    expect = np.asarray(to_rgb(ds.load_image(1)), dtype=np.float32)[6, 8]
    assert torch.allclose(back, torch.tensor(expect), atol=2), (mode, back, expect)
    if mode in ("RGBA", "LA"):
        assert (back > 250).all()  # transparent -> white, not black
    if mode == "I;16":
        assert 150 < back[0] < 160  # 40000 / 257, not clipped to white
    close_shared_envs(d)


def test_map_grows_on_demand(tmp_path):
    w = lmdb_build._GrowingWriter(tmp_path / "db", map_size=64 * 1024, batch=50)
    blob = np.random.default_rng(0).bytes(20_000)
    for i in range(200):  # 4 MB into a 64 KB map
        w.put(str(i).encode(), blob)
    w.close()
    data = dump_lmdb(tmp_path / "db")
    assert len(data) == 200 and all(v == blob for v in data.values())


def test_interrupted_build_leaves_old_lmdb_and_no_temp(tmp_path, monkeypatch):
    d = write_split(tmp_path / "d")
    build_lmdb(d, "train", progress=False, verbose=False)
    before = dump_lmdb(d / "lmdb" / "train" / "pairs")
    write_split(tmp_path / "d", texts=[{"text_id": 99, "text": "new", "image_ids": [3]}])

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(lmdb_build, "_write_split", lambda data_dir, plan, out, progress: (
        (out / "imgs").mkdir(), boom()))
    with pytest.raises(KeyboardInterrupt):
        build_lmdb(d, "train", overwrite=True, progress=False)
    assert dump_lmdb(d / "lmdb" / "train" / "pairs") == before
    assert sorted(p.name for p in (d / "lmdb").iterdir()) == ["train"]


def test_cli_flags_and_exit_codes(tmp_path, capsys):
    from cnclip_edu.cli import main

    d = write_split(tmp_path / "d")
    write_split(tmp_path / "d", split="valid")
    assert main(["build-lmdb", "--data_dir", str(d), "--splits", "train,valid", "--lmdb_dir", str(tmp_path / "L"),
                 "--no-progress"]) == 0
    assert "valid: 3 images, 2 texts, 3 pairs" in capsys.readouterr().out
    assert main(["build-lmdb", "--data-dir", str(d), "--splits", "train", "--lmdb-dir", str(tmp_path / "L")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    write_split(d, imgs=[(1, "###")])
    assert main(["build-lmdb", "--data-dir", str(d), "--splits", "train", "--lmdb-dir", str(tmp_path / "L2")]) == 1
    err = capsys.readouterr().err
    assert "train_imgs.tsv:1 (id 1): bad_base64" in err
    # skipping the only image leaves an empty split: refused (exit 1), nothing written
    assert main(["build-lmdb", "--data-dir", str(d), "--splits", "train", "--lmdb-dir", str(tmp_path / "L2"),
                 "--on-error", "skip", "--no-progress"]) == 1
    assert "train: no valid image" in capsys.readouterr().err and not (tmp_path / "L2" / "train").exists()
    with pytest.raises(FileNotFoundError, match="valid_imgs|nope_imgs"):
        build_lmdb(d, "nope", progress=False)


def test_parallel_validation_finds_the_same_issues(tmp_path):
    imgs = [(i, _b64(_png())) for i in range(1, 700)]
    imgs[10] = (11, "%%%")
    imgs[300] = (301, _b64(b"not an image"))
    imgs[650] = (5, _b64(_png()))  # duplicate of line 5
    d = write_split(tmp_path / "d", imgs=imgs, texts=[{"text_id": 1, "text": "x", "image_ids": [1, 301]}])
    serial = lmdb_build.validate_split(d, "train", progress=False, workers=1)
    parallel = lmdb_build.validate_split(d, "train", progress=False, workers=2)
    assert [str(i) for i in serial.issues] == [str(i) for i in parallel.issues]
    assert [(i.kind, i.line) for i in serial.issues] == [("bad_base64", 11), ("bad_image", 301),
                                                        ("duplicate_image_id", 651), ("missing_image", 1)]
    assert serial.images == parallel.images == 696



def test_an_empty_result_is_refused_and_the_old_lmdb_stays(tmp_path, capsys):
    """Issue 16 item 3: --on-error skip with every record bad wrote 0 pairs, exited 0, and replaced a
    good LMDB with --overwrite."""
    from cnclip_edu.cli import main

    d = write_split(tmp_path / "d")
    build_lmdb(d, "train", progress=False, verbose=False)
    before = {db: dump_lmdb(d / "lmdb" / "train" / db) for db in ("imgs", "pairs")}
    write_split(d, imgs=[(1, "%%%"), (2, _b64(b"no image"))])  # every image bad
    assert main(["build-lmdb", "--data-dir", str(d), "--splits", "train", "--on-error", "skip", "--overwrite",
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err and "train: no valid image" in err and str(d / "lmdb" / "train") in err
    write_split(d, texts=[{"text_id": 10, "text": "红色", "image_ids": [7, 8]}])  # every pair dropped
    with pytest.raises(EmptyResultError, match="no pair left"):
        build_lmdb(d, "train", on_error="skip", overwrite=True, progress=False)
    write_split(d, raw_tsv=b"", raw_jsonl=b"")  # nothing at all, even without errors
    with pytest.raises(EmptyResultError, match="no valid image"):
        build_lmdb(d, "train", overwrite=True, progress=False)
    assert {db: dump_lmdb(d / "lmdb" / "train" / db) for db in ("imgs", "pairs")} == before
    # a test split of images and texts without gold pairs (cn_clip's `"image_ids": []`) is not empty
    write_split(d, texts=[{"text_id": 10, "text": "红色", "image_ids": []}])
    r = build_lmdb(d, "train", overwrite=True, progress=False)["train"]
    assert (r["images"], r["texts"], r["pairs"]) == (3, 1, 0)
    assert "no gold pairs (fine for a test split, not for training)" in capsys.readouterr().out


BIG = 2**63  # one past int64


@pytest.mark.parametrize("kwargs, kind, line", [
    (dict(raw_tsv=f"1\t{_b64(_png())}\n{BIG}\t{_b64(_png())}\n".encode()), "bad_id", 2),
    (dict(raw_tsv=f"1\t{_b64(_png())}\n{-BIG - 1}\t{_b64(_png())}\n".encode()), "bad_id", 2),
    (dict(texts=[{"text_id": 10, "text": "a", "image_ids": [1]}, {"text_id": BIG, "text": "b", "image_ids": [2]}]),
     "bad_text_id", 2),
    (dict(texts=[{"text_id": 10, "text": "a", "image_ids": [1, BIG]}]), "bad_image_ids", 1),
])
def test_ids_beyond_64_bits_are_refused_where_they_enter(tmp_path, kwargs, kind, line):
    """Issue 16 item 4: they passed the build and crashed inside extract-features / train with
    "Overflow when unpacking long long" and no id."""
    d = write_split(tmp_path / "d", **kwargs)
    with pytest.raises(DataValidationError) as e:
        build_lmdb(d, "train", progress=False)
    issue = e.value.issues[0]
    assert (issue.kind, issue.line) == (kind, line) and "does not fit in 64 bits" in issue.message
    assert str(BIG) in issue.message or str(-BIG - 1) in issue.message
    # the largest id that fits is fine, end to end to the dataset's id tensors
    top = 2**63 - 1
    d = write_split(tmp_path / "ok", imgs=[(top, _b64(_png())), (1, _b64(_png()))],
                    texts=[{"text_id": top, "text": "a", "image_ids": [top, 1]}])
    build_lmdb(d, "train", progress=False, verbose=False)
    ds = LMDBDataset(d / "lmdb" / "train", resolution=8)
    assert ds.ids([0, 1])[0].tolist() == [top, 1] and ds.gold_image_ids(top) == {top, 1}
    close_shared_envs(d)


def test_load_pair_refuses_ids_beyond_64_bits_naming_the_record():
    with pytest.raises(ValueError, match=r"pairs record 'x/pairs:4'.*image_id 9223372036854775808 does not fit"):
        formats.load_pair(pickle.dumps((BIG, 1, "t")), key="x/pairs:4")


def test_arguments_are_checked_up_front(tmp_path, capsys):
    """Issue 16 item 10: --splits "" exited 0 with an empty folder; --max-pixels 0 was accepted."""
    from cnclip_edu.cli import main

    d = write_split(tmp_path / "d")
    for args, msg in [(["--splits", ""], "--splits must name at least one split"),
                      (["--splits", " , "], "--splits must name at least one split"),
                      (["--splits", "train", "--max-pixels", "0"], "--max-pixels must be >= 1, got 0"),
                      (["--splits", "train", "--workers", "-1"], "--workers must be >= 0, got -1")]:
        with pytest.raises(SystemExit) as e:
            main(["build-lmdb", "--data-dir", str(d), *args])
        assert e.value.code == 2
        assert f"cnclip-edu build-lmdb: {msg}" in capsys.readouterr().err
    assert not (d / "lmdb").exists()

# ----------------------------------------------------------------------------- interrupted builds (real processes)
@pytest.fixture(scope="module")
def slow_dataset(tmp_path_factory) -> Path:
    """400 images of 2000 x 2000 px (~60 KB of JPEG each, ~20 ms to decode): a build that spends
    seconds checking images in its worker processes, so that it can be killed in the middle."""
    buf = io.BytesIO()
    Image.new("RGB", (2000, 2000), (200, 30, 30)).save(buf, format="JPEG", quality=90)
    n = 400
    return write_split(tmp_path_factory.mktemp("slow") / "d", imgs=[(i, _b64(buf.getvalue())) for i in range(n)],
                       texts=[{"text_id": i, "text": "红色", "image_ids": [i]} for i in range(n)])


def _start_build(data: Path, lmdb_dir: Path, log: Path):
    import signal
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cnclip_edu", "build-lmdb", "--data-dir", str(data), "--splits", "train",
           "--lmdb-dir", str(lmdb_dir), "--workers", "2", "--no-progress", "--overwrite"]
    # SIGINT back to its default in the child: a suite started in the background (`nohup make test &`) ignores
    # SIGINT and every child inherits that, so the Ctrl-C this test sends would never arrive
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(cond, what: str, timeout: float = 120.0):
    import time

    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.005)


def _alive(pids: list[int]) -> list[int]:
    import psutil

    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _mid_check(proc) -> list[int]:
    """Wait until the build's two workers are busy checking images; -> their pids."""
    import time

    import psutil

    parent = psutil.Process(proc.pid)
    _wait_for(lambda: len(parent.children()) >= 2, "the worker processes")
    time.sleep(0.5)
    assert proc.poll() is None, "the build finished before it could be interrupted"
    return [c.pid for c in parent.children()]


def _temp_dirs(lmdb_dir: Path) -> list[Path]:
    return sorted(lmdb_dir.glob(".train.tmp-*")) if lmdb_dir.exists() else []


def _workers_gone(pids: list[int], seconds: float = 3.0) -> list[int]:
    import time

    t0 = time.monotonic()
    while _alive(pids) and time.monotonic() - t0 < seconds:
        time.sleep(0.05)
    return _alive(pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills real processes; Linux")
def test_sigkill_of_build_lmdb_leaves_no_worker_and_the_next_build_clears_its_temp(slow_dataset, tmp_path):
    """Issue 16 items 1-2: the workers of a SIGKILLed build died with it (they stayed, re-parented to
    init, ~100 MB each); the temporary LMDB a build killed while writing left is removed, and said so,
    by the next build of the split."""
    import signal

    pytest.importorskip("psutil")
    lmdb_dir = tmp_path / "L"
    proc = _start_build(slow_dataset, lmdb_dir, tmp_path / "err1")
    workers = _mid_check(proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert _workers_gone(workers) == [], "workers survived their SIGKILLed parent"
    # killed while writing: the temporary folder stays behind ...
    proc = _start_build(slow_dataset, lmdb_dir, tmp_path / "err2")
    _wait_for(lambda: _temp_dirs(lmdb_dir) or proc.poll() is not None, "the temporary LMDB folder")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    stale = _temp_dirs(lmdb_dir)
    assert len(stale) == 1 and not (lmdb_dir / "train").exists()
    # ... and the next build of that split removes it and says so
    small = write_split(tmp_path / "small")
    result = __import__("subprocess").run(
        [sys.executable, "-m", "cnclip_edu", "build-lmdb", "--data-dir", str(small), "--splits", "train",
         "--lmdb-dir", str(lmdb_dir), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "removed 1 temporary folder(s) left by an interrupted build" in result.stderr and stale[0].name in result.stderr
    assert _temp_dirs(lmdb_dir) == [] and dump_lmdb(lmdb_dir / "train" / "pairs")[b"num_samples"] == b"3"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kills real processes; Linux")
def test_sigterm_and_ctrl_c_stop_build_lmdb_cleanly(slow_dataset, tmp_path):
    """Issue 16 items 1-2: SIGTERM while checking (workers stopped) and Ctrl-C while writing
    (temporary folder removed, the old LMDB kept) end the command with 143 / 130 and a message."""
    import signal

    pytest.importorskip("psutil")
    lmdb_dir = tmp_path / "L"
    build_lmdb(write_split(tmp_path / "small"), "train", lmdb_dir=lmdb_dir, progress=False, verbose=False)
    before = dump_lmdb(lmdb_dir / "train" / "pairs")
    proc = _start_build(slow_dataset, lmdb_dir, tmp_path / "err1")
    workers = _mid_check(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    assert "cnclip-edu build-lmdb: interrupted (SIGTERM)" in (tmp_path / "err1").read_text()
    assert _workers_gone(workers) == [] and _temp_dirs(lmdb_dir) == []
    proc = _start_build(slow_dataset, lmdb_dir, tmp_path / "err2")
    _wait_for(lambda: _temp_dirs(lmdb_dir) or proc.poll() is not None, "the temporary LMDB folder")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 128 + signal.SIGINT, (tmp_path / "err2").read_text()
    assert "interrupted (SIGINT)" in (tmp_path / "err2").read_text()
    assert _temp_dirs(lmdb_dir) == [] and dump_lmdb(lmdb_dir / "train" / "pairs") == before
