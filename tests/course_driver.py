"""Run every course notebook in order into WORK, as `make course` does, and write the results as JSON.

    python tests/course_driver.py WORK RESULTS.json

With CNCLIP_COURSE_BACKGROUND=1, conftest.py starts this in the background as soon as pytest has collected a test
that needs the course (`course_run`), so that the 12 notebooks run while the unit tests do; the fixture waits for it.
Unlike `cnclip-edu course` it does not stop at the first failing notebook: every notebook is reported.
CNCLIP_COURSE_SELECT="02 05" runs only those notebooks (a quick look at a few; the others then fail as not run).
It dies with pytest (PR_SET_PDEATHSIG); its kernels follow their parent (ipykernel's parent poller).
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from cnclip_edu.course import runner as course
from cnclip_edu.data.pool import die_with_parent
from cnclip_edu.fileio import atomic_write


def main(work: Path, out: Path) -> int:
    die_with_parent(signal.SIGKILL)
    results = {}
    select = os.environ.get("CNCLIP_COURSE_SELECT", "").split() or None
    for nb in course.find_notebooks(course.REPO_NOTEBOOKS, select):
        r = course.run_notebook(nb, work, {})
        results[nb.name[:2]] = {"name": r.name, "status": r.status, "wall_s": r.wall_s,
                                "output_path": str(r.output_path), "metrics": r.metrics, "error": r.error}
        atomic_write(out, json.dumps(results, ensure_ascii=False))   # what is done so far
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
