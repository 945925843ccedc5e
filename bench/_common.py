"""Shared bits for the benchmarks: machine description, timing (`timeit`, from cnclip_edu.deploy.timing), and
writing docs/benchmarks.md.

Each benchmark owns one section of docs/benchmarks.md, delimited by
`<!-- BEGIN name -->` / `<!-- END name -->`, and rewrites only that section (atomically), so
benchmarks can be re-run one at a time without touching each other's results.
"""
from __future__ import annotations

import os
import platform
import subprocess
import tempfile
from pathlib import Path

from cnclip_edu.deploy.timing import timeit  # noqa: F401  (one timing helper for bench/ and notebook 09)

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "docs" / "benchmarks.md"
_HEADER = ("# Benchmarks\n\nEvery number here was measured by a script in `bench/`, with the reference "
           "implementation timed in the same run on the same machine. Re-run one with the command in its "
           "section; `make bench` runs them all.\n")


def machine_info() -> str:
    """One line naming the machine: CPU model, cores, torch version, GPU if any."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}")


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_section(base: str, device: str, *qualifiers: object) -> str:
    """Section name of a benchmark: `base` on CPU, `base-cuda-<qualifiers>` elsewhere, so that a GPU
    run never overwrites the CPU numbers (and GPU runs of other sizes/precisions keep their own)."""
    if device == "cpu":
        return base
    return "-".join([base, device.split(":")[0], *map(str, qualifiers)])


def write_section(name: str, markdown: str, path: Path = BENCH_MD) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md with `markdown`."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _HEADER
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".benchmarks", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
