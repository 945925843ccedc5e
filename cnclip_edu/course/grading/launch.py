"""Start a kernel under a memory cap: `python -m cnclip_edu.course.grading.launch --memory BYTES -- argv...`.

Sets RLIMIT_AS (the address space: an allocation beyond it fails with MemoryError inside the notebook
instead of the machine's OOM killer choosing a victim) and then becomes the kernel (`execvp`), so the
kernel keeps this process id and every process it starts inherits the cap.
"""
from __future__ import annotations

import os
import resource
import sys


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[0] != "--memory" or argv[2] != "--":
        raise SystemExit("usage: launch --memory BYTES -- command ...")
    limit = int(argv[1])
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.execvp(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
