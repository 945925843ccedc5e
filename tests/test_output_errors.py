"""Outputs under a full disk / a file-size limit, and two writers of one output (issue 24.3-4).

The file-size limit is real (RLIMIT_FSIZE in a subprocess, as `ulimit -f` sets it): writes past it fail
with EFBIG, which libraries report in their own words ("unexpected pos", "Input/output error"). Each
writer must name the file and the cause, keep the old output and leave no temporary data.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnclip_edu import fileio

ROOT = Path(__file__).resolve().parents[1]


def _limited(code: str, limit_bytes: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python under a file-size limit."""
    def preexec():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=preexec, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if fileio.TMP_MARK in p.name)


def test_atomic_write_names_the_file_and_the_limit(tmp_path):
    (tmp_path / "preds.jsonl").write_text("old\n")
    run = _limited("""
        from cnclip_edu.fileio import atomic_write, OutputError
        try:
            atomic_write("preds.jsonl", "x" * 3_000_000)
        except OutputError as e:
            print(e)
    """, 1_000_000, tmp_path)
    assert "cannot write preds.jsonl: file too large" in run.stdout and "EFBIG" in run.stdout, run.stderr
    assert (tmp_path / "preds.jsonl").read_text() == "old\n" and not _leftovers(tmp_path)


def test_checkpoint_save_names_the_file_instead_of_unexpected_pos(tmp_path):
    run = _limited("""
        import cnclip_edu as cc
        from cnclip_edu.model import checkpoint
        from cnclip_edu.fileio import OutputError
        model, _ = cc.load("course")
        checkpoint.save_pt(model, "model.pt")  # ~8 MB: fits
        import resource; resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
        model.logit_scale.data += 1
        try:
            checkpoint.save_pt(model, "model.pt")
        except OutputError as e:
            print(e)
    """, 64_000_000, tmp_path)
    assert "cannot write model.pt: file too large" in run.stdout and "limit is 2000000 bytes" in run.stdout, \
        run.stdout + run.stderr
    assert "unexpected pos" not in run.stdout
    import cnclip_edu as cc

    assert abs(cc.load(tmp_path / "model.pt")[0].logit_scale.item() - cc.load("course")[0].logit_scale.item()) < 1e-6
    assert not _leftovers(tmp_path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from cnclip_edu.data import toy

    out = tmp_path_factory.mktemp("toy") / "toy"
    toy.generate(out, toy.ToyConfig(n_train=40, n_valid=6, n_test=6, zeroshot_per_class=1, workers=1))
    return out


def test_build_lmdb_under_a_size_limit_keeps_the_old_lmdb(toy, tmp_path):
    from cnclip_edu.data.lmdb_build import build_lmdb

    lmdb_dir = tmp_path / "lmdb"
    build_lmdb(toy, ["train"], lmdb_dir, progress=False, verbose=False)
    before = sorted((p.relative_to(lmdb_dir), p.stat().st_size) for p in lmdb_dir.rglob("*") if p.is_file())
    run = _limited(f"""
        import sys
        from cnclip_edu.cli import main
        sys.exit(main(["build-lmdb", "--data-dir", {str(toy)!r}, "--splits", "train", "--lmdb-dir", {str(lmdb_dir)!r},
                       "--overwrite", "--no-progress"]))
    """, 20_000, tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot write {lmdb_dir / 'train'}: file too large" in lines[0], run.stderr
    after = sorted((p.relative_to(lmdb_dir), p.stat().st_size) for p in lmdb_dir.rglob("*") if p.is_file())
    assert after == before and not _leftovers(tmp_path)


def test_a_second_builder_of_the_same_lmdb_is_refused_with_the_holders_pid(toy, tmp_path):
    from cnclip_edu.cli import main

    lmdb_dir = tmp_path / "lmdb"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from cnclip_edu.fileio import output_lock
        with output_lock({str(lmdb_dir / 'train')!r}):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(fileio.OutputLocked, match=rf"being written by another process \(pid {holder.pid},"):
            from cnclip_edu.data.lmdb_build import build_lmdb

            build_lmdb(toy, ["train"], lmdb_dir, progress=False, verbose=False)
        assert not (lmdb_dir / "train").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock file says so, and the next build clears it and goes on
    (lmdb_dir / ".train.lock").write_text(str(holder.pid))
    assert main(["build-lmdb", "--data-dir", str(toy), "--splits", "train", "--lmdb-dir", str(lmdb_dir),
                 "--no-progress"]) == 0
    assert (lmdb_dir / "train" / "imgs").is_dir() and not (lmdb_dir / ".train.lock").exists()


def test_stale_lock_is_reported(tmp_path, capsys):
    (tmp_path / ".out.lock").write_text("999999999")
    with fileio.output_lock(tmp_path / "out", "features"):
        pass
    err = capsys.readouterr().err
    assert "cleared the lock of features" in err and "left by pid 999999999, which is no longer running" in err
