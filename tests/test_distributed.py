"""distributed.py in a plain process: ranks from the environment (as torchrun sets them), clear errors
for bad values, and every helper a cheap no-op without a process group. The 2-rank behaviour is
tested in test_distributed_loss.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu import distributed as D

ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_defaults_without_torchrun(clean_env):
    assert D.world_info_from_env() == (0, 0, 1)


def test_reads_torchrun_variables(clean_env):
    clean_env.setenv("LOCAL_RANK", "1")
    clean_env.setenv("RANK", "5")
    clean_env.setenv("WORLD_SIZE", "8")
    assert D.world_info_from_env() == (1, 5, 8)


@pytest.mark.parametrize("env,message", [
    ({"WORLD_SIZE": "two"}, r"WORLD_SIZE='two' is not an integer"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be >= 1"),
    ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2 is outside \[0, WORLD_SIZE=2\)"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK=-1"),
])
def test_bad_environment_is_named(clean_env, env, message):
    for k, v in env.items():
        clean_env.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        D.world_info_from_env()


def test_single_process_init_is_a_no_op(clean_env):
    info = D.init_distributed()
    assert (info.rank, info.local_rank, info.world_size, info.backend) == (0, 0, 1, None)
    assert not info.distributed and info.is_main
    assert info.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert not torch.distributed.is_initialized()
    assert D.is_main() and D.get_rank() == 0 and D.get_world_size() == 1
    D.barrier()
    D.cleanup()


def test_multi_rank_without_rendezvous_says_what_is_missing(clean_env):
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.delenv("MASTER_ADDR", raising=False)
    clean_env.delenv("MASTER_PORT", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR is not set: start with torchrun"):
        D.init_distributed(backend="gloo")


def test_gathers_are_identity_in_one_process():
    x = torch.randn(3, 4, requires_grad=True)
    assert D.all_gather_with_grad(x) is x
    y = D.all_gather_no_grad(x)
    assert torch.equal(y, x) and not y.requires_grad
