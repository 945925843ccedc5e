"""Recorded tables of docs/benchmarks.md as rows (notebook 11 shows them without their English notes)."""
from __future__ import annotations

from cnclip_edu.deploy.timing import markdown_table, recorded_rows

DOC = """intro
<!-- BEGIN demo -->
## demo: a section

Command and machine, in English.

| seed | 线程 | held-out 形状 |
|---|---|---|
| 0 | 1 | 0.63 |
| 1 | 1 | 0.48 |
<!-- END demo -->
"""


def test_recorded_rows_and_markdown_table(tmp_path):
    md = tmp_path / "benchmarks.md"
    md.write_text(DOC, encoding="utf-8")
    rows = recorded_rows("demo", md)
    assert rows == [{"seed": "0", "线程": "1", "held-out 形状": "0.63"}, {"seed": "1", "线程": "1", "held-out 形状": "0.48"}]
    assert recorded_rows("absent", md) is None and recorded_rows("demo", tmp_path / "none.md") is None
    assert markdown_table(rows, {"seed": "种子", "held-out 形状": "形状题"}).splitlines() == [
        "| 种子 | 形状题 |", "|---|---|", "| 0 | 0.63 |", "| 1 | 0.48 |"]


def test_the_notebook_11_sections_are_tables():
    for section in ("mllm-seeds", "mllm-ablations"):
        rows = recorded_rows(section)
        assert rows and all("held-out 形状" in r and "seed" in r for r in rows), section
