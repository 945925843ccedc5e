"""Failure injection for the tests: a killed run, a NaN loss, a crashed rank, at a chosen step.

The tests prove that a run killed with SIGKILL resumes bit-identically, that a non-finite loss
stops training before it reaches the weights, and that one failing rank ends the whole torchrun
job. They set `CNCLIP_DEBUG_*` environment variables (1-based step numbers); the training loop
asks this one object, so the loop itself carries no test code.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass


def _env_step(name: str) -> int | None:
    raw = os.environ.get(name)
    return int(raw) if raw else None


@dataclass(frozen=True)
class DebugHooks:
    kill_after: int | None = None   # SIGKILL this process after this step (CNCLIP_DEBUG_KILL_AFTER_STEP)
    nan_at: int | None = None       # this step's loss becomes NaN (CNCLIP_DEBUG_NONFINITE_AT_STEP)
    fail_at: int | None = None      # raise in this step ... (CNCLIP_DEBUG_FAIL_AT_STEP)
    fail_rank: int = 0              # ... on this rank (CNCLIP_DEBUG_FAIL_RANK)

    @classmethod
    def from_env(cls) -> "DebugHooks":
        return cls(_env_step("CNCLIP_DEBUG_KILL_AFTER_STEP"), _env_step("CNCLIP_DEBUG_NONFINITE_AT_STEP"),
                   _env_step("CNCLIP_DEBUG_FAIL_AT_STEP"), _env_step("CNCLIP_DEBUG_FAIL_RANK") or 0)

    def before_step(self, step: int, rank: int) -> None:
        """Called before the forward pass of 1-based `step`."""
        if self.fail_at == step and self.fail_rank == rank:
            raise RuntimeError(f"CNCLIP_DEBUG_FAIL_AT_STEP={step}: simulated failure on rank {rank}")

    def poisons(self, step: int) -> bool:
        """True if 1-based `step`'s loss is to be made NaN."""
        return self.nan_at == step

    def after_step(self, step: int, log: logging.Logger) -> None:
        """Called once `step` steps are done (after its logging, validation and checkpoint)."""
        if self.kill_after == step:
            log.warning(f"CNCLIP_DEBUG_KILL_AFTER_STEP={step}: SIGKILL")
            os.kill(os.getpid(), signal.SIGKILL)
