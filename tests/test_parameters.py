"""Notebook parameters are checked where they enter, with the command line's own rules (issue 24.2), and
every parameters cell is one papermill can read (issue 22.6)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cnclip_edu.course.parameters import ParameterError, check_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GOOD = dict(batch_size=32, max_steps=800, lr=5e-4, device="cpu", data_dir=None, resume=None, nproc_per_node=2,
            vision_model="ViT-Course", text_model="RBT-Course", steps=(200, 100, 900), top_k=10, mask_ratio=0.5,
            work_dir="../runs/course", queries=["一只猫"])


def test_good_values_pass():
    check_parameters(GOOD)
    check_parameters({**GOOD, "resume": "course", "data_dir": str(ROOT)})


@pytest.mark.parametrize("name, value, words", [
    ("batch_size", "abc", "must be an integer"),                 # papermill -p batch_size abc
    ("batch_size", 0, "must be >= 1"),                           # the same InRange rule as `train --batch-size`
    ("max_steps", -5, "must be >= 1"),
    ("lr", 0.0, "must be > 0"),
    ("mask_ratio", 1.0, "must be in [0, 1)"),
    ("device", "cuda:0", "needs a CUDA GPU"),
    ("device", "gpu", "must be 'cpu', 'cuda' or 'cuda:N'"),
    ("data_dir", "/no/such/folder", "must be an existing file or folder"),
    ("resume", "no-such.pt", "or a model name"),
    ("nproc_per_node", 0, "must be an integer >= 1"),
    ("vision_model", "ViT-X", "must be one of"),
    ("steps", (0, 0, 0), "not all 0"),
])
def test_bad_value_is_named_with_its_rule(name, value, words):
    if name == "device" and value == "cuda:0":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
    with pytest.raises(ParameterError) as err:
        check_parameters({**GOOD, name: value})
    assert f"参数 {name} = {value!r}" in str(err.value) and words in str(err.value)


def _parameters_source(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    return "".join(cell["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_papermill_reads_every_parameter_without_a_warning(path, caplog):
    from papermill.translators import PythonTranslator

    source = _parameters_source(path)
    assigned = [line.split("=")[0].strip() for line in source.splitlines()
                if "=" in line and not line.lstrip().startswith("#") and line[:1].isalpha()]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = [p.name for p in PythonTranslator.inspect({"source": source})]
    assert not [r.message for r in caplog.records], [r.message for r in caplog.records]
    assert found == assigned


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_parameters_are_checked_in_the_next_cell(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "check_parameters(globals())" in "".join(code[1]["source"]), \
        f"{path.name}: the cell after the parameters cell must call check_parameters(globals())"
