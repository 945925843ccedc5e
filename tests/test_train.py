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
