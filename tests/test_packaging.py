"""The project's own files: environment.yml agrees with pyproject, notebooks are stored clean."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _req_key(req: str) -> tuple[str, str]:
    req = req.split("#")[0].strip()
    m = re.match(r"^([A-Za-z0-9_.\-]+)(\[.*?\])?\s*(.*)$", req)
    assert m, req
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def expand(reqs: list[str]) -> list[str]:  # "cnclip_edu[course,hub]" -> those extras' requirements
        out = []
        for r in reqs:
            m = re.match(r"^cnclip[_-]edu\[(.+)\]$", r.split("#")[0].strip())
            out += expand([x for name in m.group(1).split(",") for x in extras[name.strip()]]) if m else [r]
        return out

    wanted = {_req_key(r) for r in project["dependencies"] + expand(extras["dev"])}
    env_lines = (ROOT / "environment.yml").read_text().splitlines()
    pip_items = [m.group(1) for line in env_lines if (m := re.match(r'^\s+- "(.+)"$', line))]
    listed = {_req_key(r) for r in pip_items if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert '- "-e ."' in "\n".join(env_lines)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_stored_without_outputs_and_with_parameters_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    with_outputs = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count")]
    assert not with_outputs, f"{path.name}: code cells {with_outputs} carry outputs; strip them before committing"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one code cell tagged 'parameters'"
    assert code[0] is tagged[0], f"{path.name}: the parameters cell must be the first code cell"
    assert "work_dir" in "".join(tagged[0]["source"]), f"{path.name}: parameters cell lacks work_dir"
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "学习目标" in text and "练习" in text, f"{path.name}: opens with 学习目标 and ends with 练习"


def test_cli_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "cnclip_edu", "--help"], capture_output=True, text=True, check=True)
    for cmd in ["toy-data", "build-lmdb", "train", "extract-features", "topk", "recall", "zeroshot", "export", "course",
                "student", "grade"]:
        assert cmd in out.stdout


def test_cli_unknown_command_is_an_error():
    out = subprocess.run([sys.executable, "-m", "cnclip_edu", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'nope'" in out.stderr
