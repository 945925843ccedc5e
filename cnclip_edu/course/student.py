"""Student versions of the course notebooks: the teacher's solutions taken out, the checks kept.

    cnclip-edu student --out student/                       # every notebook of notebooks/
    cnclip-edu student --out student/ notebooks/02_vision_tower.ipynb

The notebooks in `notebooks/` are the teacher's solution versions. They mark answers the way nbgrader
does, so that a teacher can move to nbgrader later without rewriting them:

- a code answer sits between the lines `### BEGIN SOLUTION` and `### END SOLUTION`; in the student
  version the block becomes `# 在此作答 (YOUR CODE HERE)` + `raise NotImplementedError("练习 02.1")` at
  the indentation of the BEGIN line. The id is the one of the first `check("02.1", ...)` call after
  the block (one block and one check per exercise);
- a markdown answer is a cell tagged `solution`; its text becomes "（在此写下你的答案）";
- a code cell tagged `solution` is an answer key's own experiment (it prints the answer): it becomes an
  empty cell with a one-line comment. It may hold no solution block or check, and nothing later may
  need what it defines (the student version would stop there).

Cells that will raise in the student version are tagged `raises-exception` (nbval, papermill and
JupyterLab's "run all" then go on past them): every check cell (ExerciseNotAttempted) and every cell
whose stub sits at top level rather than inside a def (NotImplementedError). Outputs and execution
counts are cleared; the metadata (kernelspec, tags) is kept.

Everything is checked before anything is written, because a half-stubbed notebook handed out to a
class leaks answers: an unbalanced, nested or misplaced marker, a block no check follows (the stub
could not be named), a check with no block before it (its answer would stay in), a marker line in
a markdown cell or an untagged `<summary>参考答案</summary>` note — each refused as `notebook:cell N:line M: what`, 1-based as a
reader counts cells in JupyterLab (markdown cells included).
"""
from __future__ import annotations

import argparse
import ast
import copy
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import atomic_write
from .runner import REPO_NOTEBOOKS, find_notebooks

STUB_COMMENT = "# 在此作答 (YOUR CODE HERE)"
MARKDOWN_PLACEHOLDER = "（在此写下你的答案）"
CODE_ANSWER_PLACEHOLDER = "# 参考答案里的实验：这一格在学生版里是空的，先自己动手试一试"
RAISES_TAG = "raises-exception"
SOLUTION_TAG = "solution"

_MARKER = re.compile(r"^(?P<indent>[ \t]*)#+[ \t]*(?P<kind>BEGIN|END) SOLUTION[ \t]*$")
_MARKER_TEXT = re.compile(r"(BEGIN|END)\s+SOLUTION")
# in markdown a marker is a line of its own (prose may name the markers: `### BEGIN SOLUTION` in a sentence)
_MARKDOWN_MARKER = re.compile(r"^\s*(#+\s*)?(BEGIN|END)\s+SOLUTION\s*$", re.M)
_ANSWER_NOTE = re.compile(r"<summary>\s*参考答案")   # the collapsible note that holds a written answer
_CHECK = re.compile(r"""(?<![\w.])check\(\s*(?P<q>["'])(?P<id>[^"']+)(?P=q)""")


def stub_lines(exercise_id: str, indent: str) -> list[str]:
    """What a solution block becomes in the student version."""
    return [f"{indent}{STUB_COMMENT}", f'{indent}raise NotImplementedError("练习 {exercise_id}")']


class SolutionMarkerError(ValueError):
    """The teacher's notebook cannot be turned into a student version; every problem is listed."""

    def __init__(self, problems: list[str]):
        super().__init__("cannot write the student version:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class _Block:
    cell: int                      # 0-based index in nb.cells
    begin: int                     # 1-based line numbers in the cell
    end: int
    indent: str
    exercise_id: str | None = None


@dataclass
class StudentReport:
    """What the generator did to one notebook."""
    name: str
    stubs: list[str] = field(default_factory=list)          # exercise ids, in order
    top_level_stubs: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)         # ids of the check cells tagged raises-exception
    markdown_answers: int = 0
    code_answers: int = 0                                   # code cells tagged `solution`, emptied

    def summary(self) -> str:
        code = f", {self.code_answers} code answers" if self.code_answers else ""
        return (f"{self.name}: {len(self.stubs)} stubs ({len(self.top_level_stubs)} at top level), "
                f"{len(self.checks)} checks, {self.markdown_answers} markdown answers{code}")


def _where(name: str, cell: int, line: int | None = None) -> str:
    return f"{name}:cell {cell + 1}" + (f":line {line}" if line is not None else "")


def _scan_code_cell(name: str, index: int, source: str, problems: list[str]) -> tuple[list[_Block], list[tuple[int, str]]]:
    """Solution blocks and check calls (line, id) of one code cell, in order."""
    blocks: list[_Block] = []
    checks: list[tuple[int, str]] = []
    open_block: _Block | None = None
    for n, line in enumerate(source.split("\n"), 1):
        m = _MARKER.match(line)
        if m is None and _MARKER_TEXT.search(line):
            problems.append(f"{_where(name, index, n)}: a solution marker must stand alone on its line "
                            f"(`### BEGIN SOLUTION` / `### END SOLUTION`): {line.strip()!r}")
        elif m and m["kind"] == "BEGIN":
            if open_block is not None:
                problems.append(f"{_where(name, index, n)}: nested ### BEGIN SOLUTION (the block opened at "
                                f"line {open_block.begin} has no ### END SOLUTION yet)")
            else:
                open_block = _Block(index, n, n, m["indent"])
        elif m:  # END
            if open_block is None:
                problems.append(f"{_where(name, index, n)}: ### END SOLUTION without ### BEGIN SOLUTION")
            else:
                open_block.end = n
                blocks.append(open_block)
                open_block = None
        elif open_block is None and not line.lstrip().startswith("#"):
            checks += [(n, c["id"]) for c in _CHECK.finditer(line)]
    if open_block is not None:
        problems.append(f"{_where(name, index, open_block.begin)}: ### BEGIN SOLUTION without ### END SOLUTION")
    return blocks, checks


def raises_at_top_level(source: str) -> bool:
    """True if a `raise NotImplementedError("练习 …")` of this cell runs when the cell runs (not in a def)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager  # %magics -> plain Python

        source = TransformerManager().transform_cell(source)
    except ImportError:
        pass
    try:
        tree = ast.parse(source)
    except SyntaxError:  # not Python we can read: judge by indentation
        return any(line.startswith("raise NotImplementedError(\"练习") for line in source.split("\n"))

    def visit(node: ast.AST, in_def: bool) -> bool:
        if isinstance(node, ast.Raise) and not in_def and "NotImplementedError" in ast.unparse(node):
            return True
        nested = in_def or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        return any(visit(child, nested) for child in ast.iter_child_nodes(node))

    return visit(tree, False)


def _tag(cell, tag: str) -> None:
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if tag not in tags:
        tags.append(tag)


def make_student_version(nb, name: str, known_ids: set[str] | None = None):
    """(student notebook, report) for a teacher's notebook (an nbformat NotebookNode, left unchanged).

    Raises SolutionMarkerError listing every problem. `known_ids`: if given, every check must name one.
    """
    problems: list[str] = []
    blocks_by_cell: dict[int, list[_Block]] = {}
    events: list[tuple[int, int, str, object]] = []   # (cell, line, kind, block | id), in reading order
    for i, cell in enumerate(nb.cells):
        source = cell.get("source", "")
        if cell.cell_type == "code":
            blocks, checks = _scan_code_cell(name, i, source, problems)
            blocks_by_cell[i] = blocks
            if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []) and (blocks or checks):
                problems.append(f"{_where(name, i)}: a code cell tagged '{SOLUTION_TAG}' is emptied in the student "
                                f"version, so it may hold no solution block or check")
            events += [(i, b.end, "block", b) for b in blocks] + [(i, n, "check", cid) for n, cid in checks]
        elif cell.cell_type == "markdown":
            for n, line in enumerate(source.split("\n"), 1):
                if _MARKDOWN_MARKER.match(line):
                    problems.append(f"{_where(name, i, n)}: a solution marker in a markdown cell (markdown answers "
                                    f"go in a cell tagged '{SOLUTION_TAG}')")
            tags = cell.get("metadata", {}).get("tags", [])
            if _ANSWER_NOTE.search(source) and SOLUTION_TAG not in tags:
                problems.append(f"{_where(name, i)}: a markdown cell with a <summary>参考答案</summary> note is not "
                                f"tagged '{SOLUTION_TAG}' (its answer would be handed out)")
    events.sort(key=lambda e: (e[0], e[1]))

    # each block is named by the first check after it; each check must close exactly one block
    pending: list[_Block] = []
    check_cells: dict[int, list[str]] = {}
    for cell_i, line, kind, item in events:
        if kind == "block":
            pending.append(item)  # type: ignore[arg-type]
            continue
        cid = str(item)
        if known_ids is not None and cid not in known_ids:
            problems.append(f"{_where(name, cell_i, line)}: check({cid!r}) names no registered exercise")
        if not pending:
            problems.append(f"{_where(name, cell_i, line)}: check({cid!r}) has no solution block before it "
                            f"(its answer would stay in the student version)")
        elif len(pending) > 1:
            others = ", ".join(_where(name, b.cell, b.begin) for b in pending)
            problems.append(f"{_where(name, cell_i, line)}: {len(pending)} solution blocks ({others}) before one "
                            f"check({cid!r}): one solution block per exercise")
        else:
            pending[0].exercise_id = cid
            check_cells.setdefault(cell_i, []).append(cid)
        pending = []
    for b in pending:
        problems.append(f"{_where(name, b.cell, b.begin)}: solution block with no check(\"NN.k\", ...) after it "
                        f"(the stub cannot be named)")
    if problems:
        raise SolutionMarkerError(problems)

    student = copy.deepcopy(nb)
    report = StudentReport(name)
    for i, cell in enumerate(student.cells):
        if cell.cell_type == "code" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = CODE_ANSWER_PLACEHOLDER
            cell.outputs = []
            cell.execution_count = None
            report.code_answers += 1
        elif cell.cell_type == "code":
            blocks = blocks_by_cell.get(i, [])
            if blocks:
                lines = cell.source.split("\n")
                for b in reversed(blocks):  # from the bottom, so earlier line numbers stay valid
                    lines[b.begin - 1: b.end] = stub_lines(str(b.exercise_id), b.indent)
                cell.source = "\n".join(lines)
                report.stubs += [str(b.exercise_id) for b in blocks]
                if raises_at_top_level(cell.source):
                    report.top_level_stubs += [str(b.exercise_id) for b in blocks]
                    _tag(cell, RAISES_TAG)
            if i in check_cells:
                report.checks += check_cells[i]
                _tag(cell, RAISES_TAG)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown" and SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = MARKDOWN_PLACEHOLDER
            cell.pop("attachments", None)
            report.markdown_answers += 1
    return student, report


def write_student_versions(notebooks: list[Path], out_dir: str | os.PathLike,
                           known_ids: set[str] | None = None) -> list[StudentReport]:
    """Check every notebook, then write all student versions into `out_dir` (same file names).

    Nothing is written if any notebook is refused; each file is written atomically (`fileio`).
    """
    import nbformat

    results, problems = [], []
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        try:
            results.append((path.name, *make_student_version(nb, path.name, known_ids)))
        except SolutionMarkerError as exc:
            problems += exc.problems
    if problems:
        raise SolutionMarkerError(problems)
    out = Path(out_dir)
    for name, student, _ in results:
        atomic_write(out / name, lambda tmp, nb=student: nbformat.write(nb, str(tmp)))
    return [report for _, _, report in results]


def main(argv: list[str] | None = None) -> int:
    from ..cli import require

    require("nbformat", "cnclip-edu student")
    ap = argparse.ArgumentParser(prog="cnclip-edu student", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="teacher notebooks (.ipynb paths or prefixes like 02); default: all")
    ap.add_argument("--out", required=True, help="folder for the student versions (same file names)")
    ap.add_argument("--notebooks-dir", default=str(REPO_NOTEBOOKS), help="where the teacher notebooks are")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.notebooks if p.endswith(".ipynb")]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"cnclip-edu student: no such notebook: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    prefixes = [p for p in args.notebooks if not p.endswith(".ipynb")]
    if prefixes or not paths:
        paths += find_notebooks(Path(args.notebooks_dir), prefixes or None)
    from .exercises import all_ids

    try:
        reports = write_student_versions(paths, args.out, set(all_ids()))
    except SolutionMarkerError as exc:
        print(f"cnclip-edu student: {exc}", file=sys.stderr)
        return 1
    for r in reports:
        print(r.summary())
    print(f"{len(reports)} student notebooks written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
