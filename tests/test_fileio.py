"""cnclip_edu.fileio: atomic files and folders with the usual permissions, recognisable temporary
names, and clean-up of what a killed process left; plus every writer of the project going through it
(outputs readable by a colleague under umask 022, not 0600)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnclip_edu import fileio

ROOT = Path(__file__).resolve().parents[1]
posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if fileio.TMP_MARK in p.name)


@posix_only
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_modes_are_those_of_a_plain_open_and_mkdir(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        fileio.atomic_write(tmp_path / "a.txt", "text")
        fileio.atomic_write(tmp_path / "b.bin", b"\x00\x01")
        fileio.atomic_write(tmp_path / "c.pt", lambda tmp: torch.save({"x": torch.ones(2)}, tmp))
        with fileio.atomic_open(tmp_path / "d.jsonl") as f:
            f.write("{}\n")
        with fileio.atomic_dir(tmp_path / "folder") as d:
            (d / "inside.txt").write_text("x")
        open(tmp_path / "plain.txt", "w").close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "plain.txt") == file_mode  # the reference: what open() gives
    for name in ("a.txt", "b.bin", "c.pt", "d.jsonl"):
        assert mode(tmp_path / name) == file_mode, name
    assert mode(tmp_path / "folder") == dir_mode
    assert (tmp_path / "a.txt").read_text() == "text" and torch.load(tmp_path / "c.pt")["x"].sum() == 2
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "keep.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("crash mid-write")
    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(target, lambda tmp: (Path(tmp).write_text("half"), (_ for _ in ()).throw(KeyboardInterrupt)))
    assert target.read_text() == "old" and leftovers(tmp_path) == []


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    final = tmp_path / "split"
    with fileio.atomic_dir(final) as d:
        (d / "v1").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_dir(final) as d:
            (d / "v2").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in final.iterdir()) == ["v1"]
    with fileio.atomic_dir(final) as d:
        (d / "v3").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["v3"] and leftovers(tmp_path) == []


def test_stale_temporaries_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has exited
    (tmp_path / f".train{fileio.TMP_MARK}{dead_pid}-abcd1234").mkdir()
    (tmp_path / f".epoch_latest.pt{fileio.TMP_MARK}{dead_pid}").write_bytes(b"cut")  # the old checkpoint naming
    (tmp_path / f".train{fileio.TMP_MARK}{os.getppid()}-ffff0000").mkdir()  # a live process (pytest's parent)
    (tmp_path / f".train{fileio.TMP_MARK}k2j3h4x").mkdir()  # an older version's mkdtemp name: no pid
    (tmp_path / f".valid{fileio.TMP_MARK}{dead_pid}-0000aaaa").mkdir()
    removed, kept = fileio.remove_stale_temporaries(tmp_path, "train")
    assert [p.name for p in removed] == [f".train{fileio.TMP_MARK}{dead_pid}-abcd1234"]
    assert sorted(p.name for p in kept) == sorted([f".train{fileio.TMP_MARK}{os.getppid()}-ffff0000",
                                                   f".train{fileio.TMP_MARK}k2j3h4x"])
    removed, _ = fileio.remove_stale_temporaries(tmp_path)  # any target
    assert sorted(p.name for p in removed) == sorted([f".epoch_latest.pt{fileio.TMP_MARK}{dead_pid}",
                                                      f".valid{fileio.TMP_MARK}{dead_pid}-0000aaaa"])


# ----------------------------------------------------------------------------- every writer of the project
@posix_only
def test_every_output_is_readable_by_others_under_umask_022(tmp_path, umask022):
    """Issue 16 item 8: outputs written through temporary files came out 0600."""
    import cnclip_edu as cc
    from cnclip_edu.course.metrics import record
    from cnclip_edu.data import formats
    from cnclip_edu.eval import features, recall, topk, zeroshot
    from cnclip_edu.train.logs import MetricsLog
    from cnclip_edu.train.state import atomic_torch_save

    model = cc.create_model("course")
    cc.checkpoint.save(model, tmp_path / "final")
    cc.checkpoint.save_pt(model, tmp_path / "x.pt")
    cc.checkpoint.save_hf(model, tmp_path / "hf")
    atomic_torch_save({"step": 1}, tmp_path / "ckpt" / "epoch_latest.pt")
    ids, feats = np.arange(12), np.eye(12, 4, dtype=np.float32) + 0.1
    features.save_features(tmp_path / "f.jsonl", ids, feats, "image")
    features.save_features(tmp_path / "f.npy", ids, feats, "image")
    topk.write_predictions(tmp_path / "pred.jsonl", ids, ids, np.tile(np.arange(10), (12, 1)))
    formats.write_texts_jsonl(tmp_path / "gold.jsonl", [(int(i), "t", [int(i)]) for i in ids])
    recall.write_tr_annotation(tmp_path / "gold.jsonl", tmp_path / "gold.tr.jsonl")
    assert recall.main([str(tmp_path / "gold.jsonl"), str(tmp_path / "pred.jsonl"), str(tmp_path / "out.json")]) == 0
    zeroshot.save_elevater({"predictions": []}, tmp_path, "toy")
    record("toy_t2i_r1", 0.5, tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    MetricsLog(tmp_path / "metrics.jsonl", enabled=True, keep_until_step=1)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 16
    private = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files if mode(p) != 0o644}
    assert not private, f"not 0644 under umask 022: {private}"
    assert all(mode(p) == 0o755 for p in tmp_path.rglob("*") if p.is_dir())
    assert leftovers(tmp_path) == []


@posix_only
def test_lmdb_and_toy_folders_are_readable_by_others(tmp_path, umask022):
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    data = ensure_toy_data(tmp_path, ToyConfig(n_train=8, n_valid=8, n_test=8, zeroshot_per_class=1, image_size=16))
    entries = [data, *data.rglob("*")]
    assert not [str(p) for p in entries if p.is_dir() and mode(p) != 0o755]
    assert not [str(p) for p in entries if p.is_file() and mode(p) != 0o644]
    assert leftovers(tmp_path) == []


def test_no_module_writes_through_tempfile_any_more():
    """One helper per mechanism: every write-to-temp-then-rename goes through cnclip_edu.fileio."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "cnclip_edu").rglob("*.py")
                 if p.name != "fileio.py" and ("mkstemp" in p.read_text() or "mkdtemp" in p.read_text())]
    assert not offenders, offenders


@posix_only
def test_ctrl_c_during_a_folder_swap_lands_after_it(tmp_path, monkeypatch):
    """A Ctrl-C between the two renames would leave no `final` at all; it is held until the swap is done."""
    import signal

    final = tmp_path / "split"
    with fileio.atomic_dir(final) as d:
        (d / "old").write_text("1")
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        if Path(dst).name.endswith("-old"):  # the old folder has just been moved aside
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(fileio.os, "replace", replace_then_interrupt)
    # Ctrl-C as in a terminal, also when the suite runs in the background with SIGINT ignored (`nohup make test &`)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with fileio.atomic_dir(final) as d:
                (d / "new").write_text("2")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sorted(p.name for p in final.iterdir()) == ["new"] and leftovers(tmp_path) == []
