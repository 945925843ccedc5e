"""What bench/bench_onnx.py recorded in docs/benchmarks.md, read back as data for notebook 09's appendix B.

The section is markdown written for people: a "Command: ... Machine: ..." paragraph, a table of speed-ups
over PyTorch fp32 and a table of the toy-world scores of fp32 and int8. The notebook shows both tables and
compares the recorded numbers with its own run; the text parsing lives here, tested, so the lesson shows
only the comparison.

    rec = onnx_record(recorded_benchmark("onnx"))       # None when the section is absent (an installed package)
    rec["date"], rec["machine"], rec["speedup"], rec["fp32_scores"], io_binding_changes(rec["rows"])
"""
from __future__ import annotations

import re


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def onnx_record(section: str | None) -> dict | None:
    """The recorded run as data: date, machine, threads, command (text or "?"), the two tables as markdown
    (`speedup`, `int8_cost`), `rows` (the speed-up table as {column: cell}), `fp32_scores` (the ORT fp32 row of
    the score table, {metric: float}) and `longest_caption` (tokens a big text batch was cut to, or None)."""
    if section is None:
        return None
    blocks = section.split("\n\n")
    about = next((b for b in blocks if b.startswith("Command:")), "")

    def grab(pattern: str) -> str:
        found = re.search(pattern, about)
        return found.group(1) if found else "?"

    speedup = next((b for b in blocks if b.startswith("| model | tower | batch | ORT")), "")
    int8_cost = next((b for b in blocks if b.startswith("| course model")), "")
    lines = speedup.splitlines()
    rows = [dict(zip(_cells(lines[0]), _cells(ln))) for ln in lines[2:]] if len(lines) > 2 else []
    cost = [_cells(ln) for ln in int8_cost.splitlines()]
    fp32 = next((r for r in cost[2:] if r and r[0] == "ORT fp32"), None)
    cut = re.search(r"longest caption \((\d+) tokens\)", section)
    return {"date": grab(r"(\d{4}-\d{2}-\d{2})"), "machine": grab(r"Machine: (.*?), torch"),
            "threads": grab(r"both ran with (\d+) CPU thread"), "command": grab(r"Command: `(.*?)`"),
            "speedup": speedup, "int8_cost": int8_cost, "rows": rows,
            "fp32_scores": {k: float(v) for k, v in zip(cost[0][1:], fp32[1:])} if fp32 else {},
            "longest_caption": int(cut.group(1)) if cut else None}


def io_binding_changes(rows: list[dict[str, str]]) -> list[tuple[str, float]]:
    """(row label, latency change of IO binding against the plain ORT fp32 run) for rows that measured both;
    negative: binding was faster. The table holds speed-ups over PyTorch, so latency ratio = plain / bound."""
    out = []
    for r in rows:
        if r.get("ORT fp32 IO binding", "-") != "-":
            plain, bound = float(r["ORT fp32"].rstrip("x")), float(r["ORT fp32 IO binding"].rstrip("x"))
            out.append((f"{r['model']} {r['tower']} batch {r['batch']}", plain / bound - 1))
    return out


def course_row(rows: list[dict[str, str]], tower: str, batch: int) -> dict[str, str] | None:
    """The course model's row of the speed-up table for one tower and batch, or None."""
    return next((r for r in rows if (r.get("model"), r.get("tower"), r.get("batch")) == ("course", tower, str(batch))), None)


def course_lines(rows: list[dict[str, str]], towers: dict[str, str], batches: list[int],
                 columns: tuple[str, ...] = ("ORT fp32", "ORT int8")) -> list[str]:
    """The recorded speed-ups of the course model, one line per (tower, batch) that the record has."""
    lines = []
    for tower, name in towers.items():
        for b in batches:
            row = course_row(rows, tower, b)
            if row:
                lines.append(f"  {name} batch {b:>2d}：" + "，".join(f"{c} {row[c]}" for c in columns if c in row))
    return lines
