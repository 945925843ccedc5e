"""A pytest plugin for the nbval run of the student notebooks, and the helper that starts that run.

nbval (`--nbval-lax`) fails a cell that raises unless the cell is tagged `raises-exception`; but a
tagged cell passes whether it raises or not, and whatever it raises. This plugin reads the outputs
nbval collected for each tagged cell (`item.test_outputs`) in the same run, so every notebook is
executed once, and fails the cell unless:

- a check cell (`check("NN.k", ...)`) raised ExerciseNotAttempted whose message names 练习 NN.k and
  holds a 提示 (hint);
- a cell whose stub sits at top level raised NotImplementedError("练习 NN.k").

Each verdict is appended as a JSON line to $NBVAL_EXERCISE_REPORT, so the calling test can check that
every check of the generated notebooks was seen.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnclip_edu.course.student import raises_at_top_level

_CHECK = re.compile(r"""(?<![\w.])check\(\s*["']([^"']+)["']""")
_STUB = re.compile(r'^\s*raise NotImplementedError\("练习 ([^"]+)"\)', re.M)


def _verdict(source: str, errors: list) -> tuple[str, str, str]:
    """(kind, id, problem) for a cell tagged raises-exception; problem '' when it raised as it should."""
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith("#"))
    checks, stubs = _CHECK.findall(code), _STUB.findall(source)
    got = f"{errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else "no error at all"
    if stubs and raises_at_top_level(source):  # the stub raises before any check of the cell can run
        ok = errors and errors[0].get("ename") == "NotImplementedError" and errors[0].get("evalue") == f"练习 {stubs[0]}"
        return "stub", stubs[0], "" if ok else f"expected NotImplementedError('练习 {stubs[0]}'), got {got}"
    if checks:
        ok = (errors and errors[0].get("ename") == "ExerciseNotAttempted"
              and f"练习 {checks[0]}" in errors[0].get("evalue", "") and "提示" in errors[0].get("evalue", ""))
        return "check", checks[0], "" if ok else f"expected ExerciseNotAttempted naming 练习 {checks[0]} with a 提示, got {got}"
    return "other", "", "a cell tagged raises-exception with neither a check nor a stub"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield  # nbval runs the cell; an error in an untagged cell has already failed it
    cell = getattr(item, "cell", None)
    if cell is None or "raises-exception" not in cell.get("metadata", {}).get("tags", []):
        return result
    errors = [o for o in (item.test_outputs or []) if o.get("output_type") == "error"]
    kind, exercise_id, problem = _verdict(cell.source, errors)
    report = os.environ.get("NBVAL_EXERCISE_REPORT")
    if report:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"notebook": Path(str(item.fspath)).name, "cell": item.cell_num, "kind": kind,
                                "id": exercise_id, "ok": not problem}, ensure_ascii=False) + "\n")
    if problem:
        raise AssertionError(f"{Path(str(item.fspath)).name} code cell {item.cell_num}: {problem}")
    return result


_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Seconds per notebook (kernel start, every cell, shutdown), for the calling test to print."""
    name = Path(report.nodeid.split("::")[0]).name
    _SECONDS[name] = _SECONDS.get(name, 0.0) + report.duration


def pytest_sessionfinish(session):
    report = os.environ.get("NBVAL_EXERCISE_REPORT")
    if report and _SECONDS:
        with open(report, "a", encoding="utf-8") as f:
            f.write(json.dumps({"seconds": {k: round(v, 1) for k, v in _SECONDS.items()}}) + "\n")


def run_nbval(notebooks: list[Path], env: dict[str, str],
              cell_timeout_s: int = 600) -> tuple[int, str, list[dict], dict[str, float]]:
    """Run `pytest --nbval-lax` with this plugin on `notebooks` in a subprocess:
    (exit code, output, verdicts, seconds per notebook).

    The notebooks' kernels run in this Python (`--nbval-current-env`) with `env`; the run gets an
    empty pytest configuration of its own, so the project's options (and conftest) stay out of it.
    """
    folder = notebooks[0].parent
    report = folder / "nbval_report.jsonl"
    report.unlink(missing_ok=True)
    (folder / "pytest.ini").write_text("[pytest]\naddopts =\n")
    here = str(Path(__file__).resolve().parent)
    env = {**env, "NBVAL_EXERCISE_REPORT": str(report),
           "PYTHONPATH": os.pathsep.join([here, env.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-c", str(folder / "pytest.ini"), "--rootdir", str(folder),
           "-p", "nbval_student_checks", "-p", "no:cacheprovider", "--nbval-lax", "--nbval-current-env",
           "--nbval-cell-timeout", str(cell_timeout_s), "-q", "-rf", *map(str, notebooks)]
    proc = subprocess.run(cmd, env=env, cwd=folder, capture_output=True, text=True)
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()] if report.exists() else []
    seconds = next((r["seconds"] for r in rows if "seconds" in r), {})
    return proc.returncode, proc.stdout + proc.stderr, [r for r in rows if "seconds" not in r], seconds
