"""Training end to end on a tiny toy world: kill-and-resume equality, the non-finite guard,
checkpoint format (weights_only, cn_clip keys), flags, and the quick Recall@1."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnclip_edu import train
from cnclip_edu.train.state import capture_rng_state, load_checkpoint, restore_rng_state

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_lmdb(tmp_path_factory) -> Path:
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    work = tmp_path_factory.mktemp("toy")
    return ensure_toy_data(work, ToyConfig(n_train=16, n_valid=16, n_test=8, zeroshot_per_class=1)) / "lmdb"


def base_args(lmdb: Path, logs: Path, name: str, *extra: str) -> list[str]:
    return ["--train-data", str(lmdb / "train"), "--vision-model", "ViT-Course", "--text-model", "RBT-Course",
            "--batch-size", "8", "--warmup", "2", "--lr", "1e-3", "--wd", "0.1", "--num-workers", "0",
            "--logs", str(logs), "--name", name, "--log-interval", "1", "--seed", "3", *extra]


def run_cli(args: list[str], env_extra: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "cnclip_edu.train", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run_dir / "final" / "model.safetensors")


def test_sigkill_then_rerun_equals_uninterrupted_run(toy_lmdb, tmp_path):
    """Kill the process (SIGKILL) after a checkpoint, rerun the same command: bit-identical weights."""
    args = lambda name: base_args(toy_lmdb, tmp_path, name, "--max-steps", "9", "--save-step-frequency", "3",  # noqa: E731
                                  "--deterministic")
    ref = run_cli(args("ref"))
    assert ref.returncode == 0, ref.stdout + ref.stderr
    killed = run_cli(args("run"), {"CNCLIP_DEBUG_KILL_AFTER_STEP": "7"})
    assert killed.returncode == -9, killed.stdout + killed.stderr
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_latest.pt")
    assert ckpt["step"] == 6 and not (tmp_path / "run" / "final").exists()
    resumed = run_cli(args("run"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "=> loaded checkpoint" in resumed.stdout and "@ 6 steps" in resumed.stdout
    a, b = final_weights(tmp_path / "ref"), final_weights(tmp_path / "run")
    assert a.keys() == b.keys()
    diff = {k: (a[k] - b[k]).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"resumed run differs from the uninterrupted one: {diff}"
    # the curves have each step once, the steps after the checkpoint were rewritten
    steps = [r["step"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
             if r["type"] == "train"]
    assert steps == list(range(1, 10))
    # the data crossed an epoch boundary (steps per epoch < 9), so the offset logic was exercised
    assert ckpt["data_offset"]["epoch"] >= 1 or load_checkpoint(
        tmp_path / "run" / "checkpoints" / "epoch_latest.pt")["data_offset"]["epoch"] >= 1
    # every log line numbers the epochs the same way (from 1, as cn_clip): the training line of a step,
    # the checkpoint saved at that step, and the resume from it
    train_epoch = {int(m[0]): int(m[1]) for m in re.findall(r"Global Steps: (\d+)/\d+ \| Train Epoch: (\d+)", ref.stdout)}
    saved = re.findall(r"Saved checkpoint \S+ \(epoch (\d+) @ (\d+) steps\)", ref.stdout)
    per_epoch = int(re.search(r"(\d+) steps per epoch", ref.stdout)[1])
    assert saved and per_epoch < 9 and train_epoch[9] == (9 - 1) // per_epoch + 1
    assert all(int(e) == train_epoch[int(step)] for e, step in saved), (saved, train_epoch)
    loaded = re.search(r"=> loaded checkpoint \(epoch (\d+) @ 6 steps", resumed.stdout)
    assert loaded and int(loaded[1]) == train_epoch[6], resumed.stdout


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(toy_lmdb, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNCLIP_DEBUG_NONFINITE_AT_STEP", "3")
    rc = train.main(base_args(toy_lmdb, tmp_path, "nan", "--max-steps", "5", "--save-step-frequency", "2"))
    out = capsys.readouterr().out
    assert rc == 3
    assert "non-finite loss (nan) at step 3" in out and "last good checkpoint" in out
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoints" / "epoch_latest.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (tmp_path / "nan" / "final").exists()


def test_checkpoint_format_is_cn_clip_style_and_weights_only(toy_lmdb, tmp_path):
    rc = train.main(base_args(toy_lmdb, tmp_path, "fmt", "--max-steps", "2", "--val-data", str(toy_lmdb / "valid"),
                              "--valid-batch-size", "8", "--known-positives", "--accum-freq", "2"))
    assert rc == 0
    path = tmp_path / "fmt" / "checkpoints" / "epoch_latest.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # no arbitrary unpickling needed
    for key in ("epoch", "step", "name", "state_dict", "optimizer", "schedule", "data_offset", "rng_states",
                "model_config", "args"):
        assert key in ckpt, key
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    assert ckpt["step"] == 2 and ckpt["model_config"]["vision_model"] == "ViT-Course"
    assert len(ckpt["optimizer"]["param_groups"]) == 2
    # cn_clip's CLIP accepts the state dict (its resume path strips nothing but bert.pooler)
    from cn_clip.clip.model import CLIP as CnCLIP

    cfg = {k: v for k, v in ckpt["model_config"].items() if k not in ("vision_model", "text_model", "context_length")}
    ref = CnCLIP(**cfg)
    sd = {k[len("module."):]: v for k, v in ckpt["state_dict"].items()}
    missing, unexpected = ref.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("bert.pooler") for k in missing)
    # the final model loads with our loader
    from cnclip_edu.model.checkpoint import load

    model, _ = load(str(tmp_path / "fmt" / "final"))
    assert torch.equal(model.logit_scale.detach(), sd["logit_scale"])
    recs = [json.loads(x) for x in (tmp_path / "fmt" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in recs if r["type"] == "valid"]
    assert valid and 0.0 <= valid[-1]["t2i_r1"] <= 1.0 and valid[-1]["loss"] > 0


def test_resume_from_pretrained_weights_only(toy_lmdb, tmp_path):
    """--resume with a model folder (as an official .pt): weights only, step 0, fresh optimizer."""
    assert train.main(base_args(toy_lmdb, tmp_path, "pre", "--max-steps", "1")) == 0
    rc = train.main(base_args(toy_lmdb, tmp_path, "ft", "--max-steps", "1", "--resume", str(tmp_path / "pre" / "final"),
                              "--freeze-vision"))
    assert rc == 0
    ckpt = load_checkpoint(tmp_path / "ft" / "checkpoints" / "epoch_latest.pt")
    assert ckpt["step"] == 1
    pre = final_weights(tmp_path / "pre")
    ft = final_weights(tmp_path / "ft")
    assert torch.equal(pre["visual.conv1.weight"], ft["visual.conv1.weight"])  # frozen
    assert not torch.equal(pre["text_projection"], ft["text_projection"])     # trained


def test_underscore_flags_and_cn_clip_defaults():
    a = train.parse_args(["--train_data", "x", "--batch_size", "4", "--max_steps", "7", "--vision_model", "RN50"])
    b = train.parse_args(["--train-data", "x", "--batch-size", "4", "--max-steps", "7"])
    assert (a.train_data, a.batch_size, a.max_steps) == ("x", 4, 7) == (b.train_data, b.batch_size, b.max_steps)
    assert (a.lr, a.beta2, a.eps) == (5e-4, 0.999, 1e-8) and (b.beta2, b.eps) == (0.98, 1e-6)
    with pytest.raises(SystemExit):
        train.parse_args(["--train-data", "x", "--accum-freq", "0"])


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an LMDB folder"):
        train.main(["--train-data", str(tmp_path / "nope"), "--vision-model", "ViT-Course", "--text-model",
                    "RBT-Course", "--logs", str(tmp_path), "--name", "x"])


def test_rng_state_roundtrip_is_weights_only_safe(tmp_path):
    import random

    import numpy as np

    state = capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_recall_at_1_counts_any_gold_image():
    from cnclip_edu.train.validate import recall_at_1

    img_f = torch.eye(3)
    txt_f = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0, 0, 1.0]])
    gold = {10: frozenset({0}), 11: frozenset({1, 2}), 12: frozenset({1})}.__getitem__
    t2i, i2t = recall_at_1(img_f, torch.tensor([0, 1, 2]), txt_f, torch.tensor([10, 11, 12]), gold)
    assert t2i == pytest.approx(2 / 3)  # text 12's best image (2) is not its gold image (1)
    assert i2t == pytest.approx(2 / 3)  # image 1 scores 0 with every text -> text 10, not a match


@pytest.mark.gpu
def test_cuda_bf16_fused_adamw_grad_checkpointing(toy_lmdb, tmp_path):
    """GPU path: bf16 autocast, fused AdamW, gradient checkpointing (skipped without CUDA)."""
    rc = train.main(base_args(toy_lmdb, tmp_path, "gpu", "--max-steps", "3", "--device", "cuda", "--precision", "bf16",
                              "--grad-checkpointing"))
    assert rc == 0
    ckpt = load_checkpoint(tmp_path / "gpu" / "checkpoints" / "epoch_latest.pt")
    assert ckpt["step"] == 3 and ckpt["args"]["precision"] == "bf16"
    assert all(g.get("fused") for g in ckpt["optimizer"]["param_groups"])


def test_trim_padding_keeps_text_features():
    """Dropping all-padding columns before the text tower changes the work, not the features."""
    import cnclip_edu as cc
    from cnclip_edu.train.data import trim_padding

    torch.manual_seed(0)
    model = cc.create_model("course").eval()
    tokens = cc.tokenize(["红色的圆形", "左边是一个蓝色的三角形，右边是一块绿色的正方形"], context_length=52)
    trimmed = trim_padding(tokens)
    assert trimmed.shape[1] < tokens.shape[1] and (trimmed[:, -1] != 0).any()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(trimmed), model.encode_text(tokens), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- refused up front (issue 16)
def test_resume_of_another_model_names_the_file_and_both_models(toy_lmdb, tmp_path, caplog):
    """Item 6: a full checkpoint of another size gave torch's raw "Error(s) in loading state_dict" and
    ~40 size-mismatch lines without the file; a model folder gave a clear error. Now both say the same."""
    assert train.main(base_args(toy_lmdb, tmp_path, "small", "--max-steps", "1")) == 0
    full = tmp_path / "small" / "checkpoints" / "epoch_latest.pt"
    for source in (full, tmp_path / "small" / "final"):
        caplog.clear()
        rc = train.main(base_args(toy_lmdb, tmp_path, f"other-{source.name}", "--max-steps", "1", "--resume",
                                  str(source), "--text-model", "RBT3-chinese"))
        assert rc == 1
        msg = caplog.text + "".join(r.getMessage() for r in caplog.records)
        log = (tmp_path / f"other-{source.name}" / "out.log").read_text()
        assert f"{source} holds ViT-Course@RBT-Course; it does not fit ViT-Course@RBT3-chinese, the model asked for" in log
        assert "Error(s) in loading state_dict" not in log + msg


def test_a_batch_larger_than_the_data_and_an_empty_lmdb_are_refused(toy_lmdb, tmp_path):
    """Item 7: each pair appeared ~7x per batch and the loss stayed at ln(batch), silently; item 3: an
    empty LMDB did not name its path."""
    import lmdb

    from cnclip_edu.data.dataset import LMDBDataset

    n = len(LMDBDataset(toy_lmdb / "train", 32))
    with pytest.raises(SystemExit, match=rf"--train-data {toy_lmdb / 'train'} holds {n} pairs, fewer than one batch "
                                         rf"of 256 \(batch 128 x 1 process\(es\) x accum 2\).*--batch-size <= {n // 2}"):
        train.main(base_args(toy_lmdb, tmp_path, "big", "--batch-size", "128", "--accum-freq", "2"))
    empty = tmp_path / "empty"
    empty.mkdir()
    for db, key in (("imgs", b"num_images"), ("pairs", b"num_samples")):  # as an older build-lmdb could write it
        env = lmdb.open(str(empty / db), map_size=1 << 20)
        with env.begin(write=True) as txn:
            txn.put(key, b"0")
        env.close()
    with pytest.raises(SystemExit, match=rf"--train-data {empty} holds no pairs"):
        train.main(base_args(toy_lmdb, tmp_path, "empty", "--train-data", str(empty)))
    assert not (tmp_path / "big" / "checkpoints" / "epoch_latest.pt").exists()


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "-1", "> 0, got -1.0"), ("--lr", "nan", "> 0, got nan"), ("--wd", "-0.1", ">= 0, got -0.1"),
    ("--beta2", "1", "in [0, 1), got 1.0"), ("--warmup", "-1", ">= 0, got -1"), ("--batch_size", "0", ">= 1, got 0"),
    ("--context-length", "1", ">= 2, got 1"), ("--dist-timeout", "0", "> 0, got 0.0"),
    ("--seed", "-3", "in [0, 4294967295], got -3")])
def test_out_of_range_flags_exit_2_with_one_line(flag, value, message, capsys):
    """Item 10: `--lr -1` was a torch traceback."""
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--train-data", "x", flag, value])
    assert e.value.code == 2
    assert capsys.readouterr().err == f"cnclip-edu train: {flag} must be {message}\n"


def test_context_length_beyond_the_text_tower_is_refused(toy_lmdb, tmp_path):
    with pytest.raises(SystemExit, match=r"--context-length must be <= 512 .*got 600"):
        train.main(base_args(toy_lmdb, tmp_path, "ctx", "--context-length", "600"))


def test_the_torchrun_example_of_the_docstring_parses_as_written():
    """Item 11: `torchrun ... -m cnclip_edu.train ... --logs X` fails: torchrun reads `--logs` as an
    ambiguous abbreviation of its `--logs-specs`. The example must run as written."""
    import shlex

    from torch.distributed.run import parse_args as torchrun_args

    from cnclip_edu.train import trainer

    lines = iter(trainer.__doc__.splitlines())
    command = next(ln for ln in lines if ln.strip().startswith("torchrun --"))
    while command.endswith("\\"):  # continuation lines
        command = command[:-1] + next(lines)
    argv = shlex.split(command.replace("${DATAPATH}", "/data"))[1:]
    assert "--logs" in argv, "the example should show where the run goes"
    ns = torchrun_args(argv)
    assert ns.module and ns.training_script == "cnclip_edu.train"
    args = train.parse_args(ns.training_script_args)
    assert args.logs == "/data/experiments" and args.train_data == "/data/datasets/MUGE/lmdb/train"


def test_a_second_training_into_the_same_run_folder_is_refused(toy_lmdb, tmp_path, capsys):
    from cnclip_edu.fileio import output_lock

    with output_lock(tmp_path / "busy", "training run"):  # another training holds the run folder
        rc = train.main(base_args(toy_lmdb, tmp_path, "busy", "--max-steps", "1"))
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'busy'} is being written by another process (pid {os.getpid()}" in err
    assert not (tmp_path / "busy" / "final").exists()
    assert train.main(base_args(toy_lmdb, tmp_path, "busy", "--max-steps", "1")) == 0  # free again: it runs
