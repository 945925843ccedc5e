"""The notebook launcher: torchrun command lines, a real 2-process gloo run, and a rank that fails."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from cnclip_edu.train.launch import TrainingFailed, read_metrics, run_dir_of, run_torchrun, torchrun_command


@pytest.fixture(scope="module")
def toy_lmdb(tmp_path_factory) -> Path:
    from cnclip_edu.data.toy import ToyConfig, ensure_toy_data

    work = tmp_path_factory.mktemp("toy")
    return ensure_toy_data(work, ToyConfig(n_train=16, n_valid=16, n_test=8, zeroshot_per_class=1)) / "lmdb"


def tiny_args(lmdb: Path, logs: Path, name: str, *extra: str) -> list[str]:
    return ["--train-data", str(lmdb / "train"), "--val-data", str(lmdb / "valid"), "--vision-model", "ViT-Course",
            "--text-model", "RBT-Course", "--batch-size", "4", "--valid-batch-size", "4", "--warmup", "1",
            "--num-workers", "0", "--logs", str(logs), "--name", name, "--log-interval", "1", *extra]


def test_torchrun_command_single_and_multi_node():
    cmd = torchrun_command(["--max-steps", "3"], nproc_per_node=2, python="py")
    assert cmd == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "--",
                   "cnclip_edu.train", "--max-steps", "3"]
    multi = torchrun_command([], nproc_per_node=8, nnodes=2, node_rank=1, master_addr="10.0.0.1",
                             master_port=29501, python="py")
    assert "--standalone" not in multi
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29501",
            "--nproc_per_node=8"} <= set(multi)
    with pytest.raises(ValueError):
        torchrun_command([], nproc_per_node=0)


def test_run_dir_follows_train_flags():
    assert run_dir_of(["--logs", "a", "--name=b"]) == Path("a/b")
    assert run_dir_of([]) == Path("./logs/train_clip")


def test_two_gloo_ranks_train_stream_and_write_metrics(toy_lmdb, tmp_path, capsys):
    args = tiny_args(toy_lmdb, tmp_path, "ddp", "--max-steps", "3", "--known-positives")
    res = run_torchrun(args, nproc_per_node=2, live_plot=True)  # plain Python: lines are printed, no plot
    out = capsys.readouterr().out
    assert res.returncode == 0
    assert "Global Steps: 3/3" in out and "2 process(es), backend gloo" in out
    assert "Validation Result" in out and (tmp_path / "ddp" / "final" / "model.safetensors").is_file()
    assert [m["step"] for m in res.metrics if m["type"] == "train"] == [1, 2, 3]
    assert res.final_loss == read_metrics(tmp_path / "ddp" / "metrics.jsonl")[-2]["loss"]
    assert "Global Steps: 3/3" in res.log_file.read_text()


def test_failing_rank_makes_torchrun_exit_quickly(toy_lmdb, tmp_path):
    """Rank 1 raises at step 2 while rank 0 waits in a collective: no hang, non-zero exit, log tail."""
    args = tiny_args(toy_lmdb, tmp_path, "fail", "--max-steps", "5", "--dist-timeout", "30")
    t0 = time.time()
    with pytest.raises(TrainingFailed) as err:
        run_torchrun(args, nproc_per_node=2, echo=False, timeout_s=240,
                     env={"CNCLIP_DEBUG_FAIL_AT_STEP": "2", "CNCLIP_DEBUG_FAIL_RANK": "1"})
    elapsed = time.time() - t0
    msg = str(err.value)
    assert "exited with code" in msg and "simulated failure on rank 1" in msg
    # start-up of two workers dominates; a hang would last until the 240 s guard
    assert elapsed < 120, f"torchrun took {elapsed:.0f} s to give up"
