"""Notebook 00's course map names real files: every notebook it lists exists, every notebook in
notebooks/ is listed, and every library path in its last column exists under cnclip_edu/.
(The map once listed `05_data_formats.ipynb` and `06_finetune.ipynb`, which never existed.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _map_rows() -> list[str]:
    nb = json.loads((NOTEBOOKS / "00_quickstart.ipynb").read_text(encoding="utf-8"))
    text = next("".join(c["source"]) for c in nb["cells"]
                if c["cell_type"] == "markdown" and "课程地图" in "".join(c["source"]))
    return [line for line in text.splitlines() if re.match(r"\|\s*\d\d\s*\|", line)]


def test_every_listed_notebook_exists_and_every_notebook_is_listed():
    listed = [re.search(r"`(\d\d_\w+\.ipynb)`", row).group(1) for row in _map_rows()]
    on_disk = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert sorted(listed) == on_disk, f"course map in 00_quickstart.ipynb: {listed} vs notebooks/: {on_disk}"
    for row, name in zip(_map_rows(), listed):
        assert row.split("|")[1].strip() == name[:2], row


def test_every_library_path_in_the_map_exists():
    for row in _map_rows():
        last = row.strip().strip("|").split("|")[-1]
        paths = re.findall(r"`([\w/]+(?:\.py|/))`", last)
        assert paths, f"no library path in: {row}"
        for rel in paths:
            assert (ROOT / "cnclip_edu" / rel).exists(), f"course map names cnclip_edu/{rel}, which does not exist"
