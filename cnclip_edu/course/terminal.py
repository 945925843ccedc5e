"""Run a `cnclip-edu` command from a notebook exactly as a terminal would, and show it readably.

    from cnclip_edu.course.terminal import run_cli
    out = run_cli(["build-lmdb", "--data-dir", "data/mine", "--splits", "train,valid"])

prints the command as one would type it (one `--flag value` per line) and then what it printed,
and raises `CommandFailed` with the output's tail if it exits non-zero. Notebook 10 uses it so that
every step is proven on the command line, not only described. The child is `python -m cnclip_edu`
with the kernel's own interpreter (the `cnclip-edu` script need not be on the kernel's PATH) and
`TQDM_DISABLE=1`: a captured progress bar would print as dozens of `\\r`-joined fragments. Bars
that a command enables explicitly still come through; the output is read as a terminal shows it
(the last `\\r` segment of each line), and lines that are a finished tqdm bar are left out.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Sequence


_TQDM_BAR = re.compile(r"\[\d+:\d\d(:\d\d)?(<|, )")  # tqdm's "[elapsed<remaining, rate]" / "[elapsed, rate]"


class CommandFailed(RuntimeError):
    """The command exited non-zero; the message holds the command and the tail of its output."""


@dataclass
class CommandResult:
    args: list[str]
    output: str        # stdout and stderr, interleaved as printed
    wall_s: float


def _is_flag(word: str) -> bool:
    return re.match(r"--?[A-Za-z]", word) is not None  # "-1" is a value, not a flag


def command_line(args: Sequence[str], prog: str = "cnclip-edu", width: int = 100) -> str:
    """`prog args...` quoted for a POSIX shell; past `width` characters, one `--flag value` per line."""
    words = [shlex.quote(str(a)) for a in args]
    flat = " ".join([prog, *words])
    if len(flat) <= width:
        return flat
    i = 0
    while i < len(words) and not _is_flag(words[i]):  # the command and its sub-command stay on line one
        i += 1
    lines = [" ".join([prog, *words[:i]])]
    while i < len(words):
        has_value = _is_flag(words[i]) and i + 1 < len(words) and not _is_flag(words[i + 1])
        lines.append(" ".join(words[i:i + 2]) if has_value else words[i])
        i += 2 if has_value else 1
    return " \\\n    ".join(lines)


def visible_lines(output: str) -> list[str]:
    """Non-blank lines as a terminal would end up showing them, without finished tqdm bars."""
    lines = [ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in output.split("\n")]  # "\r": back to the line start
    return [ln for ln in lines if ln.strip() and not _TQDM_BAR.search(ln)]


def run_cli(args: Sequence[str], keep: str | None = None, tail: int | None = None, echo: bool = True,
            timeout: float | None = None) -> CommandResult:
    """Run `cnclip-edu args...`; print the command and its output (lines matching the regex `keep`,
    or the last `tail` lines, or all); -> CommandResult. Raises CommandFailed on a non-zero exit."""
    args = [str(a) for a in args]
    if echo:
        print("$ " + command_line(args))
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cnclip_edu", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    lines = visible_lines(proc.stdout)
    if proc.returncode != 0:
        raise CommandFailed(f"`{command_line(args, width=10**9)}` exited with {proc.returncode}; "
                            f"its last lines:\n" + "\n".join(lines[-30:]))
    if echo:
        shown = [ln for ln in lines if re.search(keep, ln)] if keep else lines
        if tail is not None and len(shown) > tail:
            print(f"  ... ({len(shown) - tail} earlier lines not shown)")
            shown = shown[-tail:]
        if shown:
            print("\n".join(shown))
    return CommandResult(args, proc.stdout, wall)
