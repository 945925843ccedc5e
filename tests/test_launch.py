"""The notebook launcher: torchrun command lines, a real 2-process gloo run, and a rank that fails."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cnclip_edu.train.hello import hello_rank, run_forked
from cnclip_edu.train.launch import (TrainingFailed, keep_line, read_metrics, run_dir_of, run_torchrun,
                                   torchrun_command)


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
    # the worker's own traceback comes first, ending in its exception; torchrun's ChildFailedError report does not
    first = msg.split("The first error a worker printed:\n", 1)[1]
    assert first.startswith("Traceback (most recent call last):") and "ChildFailedError" not in msg
    assert "simulated failure on rank 1" in first.split("\nFull log: ")[0].splitlines()[-1]
    # start-up of two workers dominates; a hang would last until the 240 s guard
    assert elapsed < 120, f"torchrun took {elapsed:.0f} s to give up"


def test_a_bad_flag_is_reported_in_the_workers_words(tmp_path):
    with pytest.raises(TrainingFailed) as err:
        run_torchrun(["--train-data", str(tmp_path), "--batch-size", "abc", "--logs", str(tmp_path)],
                     nproc_per_node=1, echo=False, live_plot=False, timeout_s=240)
    lines = str(err.value).splitlines()
    assert lines[1] == "cnclip-edu train: error: argument --batch-size/--batch_size: invalid int value: 'abc'"
    assert lines[2].startswith("Full log: ") and len(lines) == 3


def test_compact_echo_keeps_every_nth_training_line_and_all_else():
    line = "2026-01-01,10:00:00 | INFO | Rank 0 | Global Steps: {}/800 | Train Epoch: 1 [64/58176 (0%)] | Loss: 4.1"
    kept = [s for s in range(1, 801) if keep_line(line.format(s), 100)]
    assert kept == [100, 200, 300, 400, 500, 600, 700, 800]
    assert keep_line("... | Global Steps: 803/803 | ...", 100)  # the last step is always shown
    assert not keep_line("... | INFO | Rank 0 | Saved checkpoint /x/epoch_latest.pt (epoch 1 @ 120 steps)", 100)
    for other in ("... | Validation Result (epoch 1 @ 200 steps) | Valid Loss: 1.5", "Traceback (most recent call last):",
                  "... | WARNING | Rank 1 | world size changed", "... | => loaded checkpoint (epoch 1 @ 800 steps; ...)"):
        assert keep_line(other, 100), other


def test_hello_rank_shards_are_disjoint_and_all_reduce_sums():
    for nproc in (2, 3):
        ranks = run_forked(hello_rank, nproc, dataset_len=10, batch_size=2)
        assert [r["rank"] for r in ranks] == list(range(nproc)) and {r["world_size"] for r in ranks} == {nproc}
        seen = [i for r in ranks for b in r["batches"] for i in b]
        total = sum(seen)  # 3 ranks: 10 -> 12 samples, the first two of the permutation read twice
        assert sorted(set(seen)) == list(range(10)) and len(seen) == 10 + (-10) % nproc
        assert all(r["global_sum"] == total for r in ranks) and sum(r["local_sum"] for r in ranks) == total


def test_hello_main_writes_each_rank_line_in_one_write(monkeypatch):
    """Ranks share torchrun's stdout pipe: a line split over two writes (print under
    PYTHONUNBUFFERED) interleaved with the other rank's in CI and broke notebook 06's parsing."""
    import json

    from cnclip_edu.train import hello

    writes = []
    monkeypatch.setattr(hello, "hello_rank", lambda *a: {"rank": 0, "world_size": 2, "batches": [[1]]})
    monkeypatch.setattr(hello.os, "write", lambda fd, b: writes.append(b) or len(b))
    assert hello.main([]) == 0
    assert len(writes) == 1 and writes[0].endswith(b"\n") and json.loads(writes[0])["rank"] == 0


def test_hello_main_runs_a_students_file_and_names_its_error(monkeypatch, tmp_path, capfd):
    """Notebook 06 launches the student's own hello_rank (the %%my_clip file of 06.4) under torchrun; a stub
    or a broken file exits non-zero with one line the notebook shows before it falls back to the library's."""
    import json

    from cnclip_edu.train import hello

    writes = []
    monkeypatch.setattr(hello.os, "write", lambda fd, b: writes.append(b) or len(b))
    mine = tmp_path / "ex06_4.py"
    mine.write_text("def hello_rank(n, b, seed):\n    return {'rank': 0, 'world_size': 1, 'batches': [[seed]]}\n",
                    encoding="utf-8")
    assert hello.main(["--worker", str(mine), "--seed", "7"]) == 0
    assert json.loads(writes[0])["batches"] == [[7]]
    stub = tmp_path / "stub.py"
    stub.write_text("def hello_rank(*a):\n    raise NotImplementedError('练习 06.4')\n", encoding="utf-8")
    assert hello.main(["--worker", str(stub)]) == 1
    assert "hello_rank 出错 (rank 0): NotImplementedError: 练习 06.4" in capfd.readouterr().err


def test_run_forked_reports_stubs_errors_and_hangs():
    import torch.distributed as dist

    def stub():
        raise NotImplementedError("练习 06.4")

    def broken():
        raise ValueError("bad rank")

    def half_collective():  # only rank 0 joins the all_reduce; rank 1 is busy elsewhere: rank 0 waits
        import time

        import torch

        dist.init_process_group("gloo")
        if dist.get_rank() == 0:
            dist.all_reduce(torch.zeros(1))
        else:
            time.sleep(120)
        return dist.get_rank()

    def tensors():  # returned tensors arrive as tensors (by value), not as shared memory of a dead process
        import torch

        return {"t": torch.arange(3), "rank": int(os.environ["RANK"])}

    got = run_forked(tensors, 2, timeout_s=30)
    assert [g["rank"] for g in got] == [0, 1] and all(g["t"].tolist() == [0, 1, 2] for g in got)
    with pytest.raises(NotImplementedError):
        run_forked(stub, 2)
    with pytest.raises(RuntimeError, match="raised ValueError: bad rank"):
        run_forked(broken, 2)
    with pytest.raises(TimeoutError, match="every rank call the same collectives"):
        run_forked(half_collective, 2, timeout_s=5)
