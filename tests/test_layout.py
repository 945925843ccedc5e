"""The package layout (docs/architecture.md): one sub-package per chapter, a small top level, no two
modules importing each other, and every public name, old module path, CLI command and flag still
working after the move."""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "cnclip_edu"


def test_public_api_of_design_section_4():
    import cnclip_edu as cc

    for name in ["load", "create_model", "available_models", "tokenize", "decode", "image_transform"]:
        assert callable(getattr(cc, name)), name
    for name in ["save", "save_hf", "load_state_dict_any"]:
        assert callable(getattr(cc.checkpoint, name)), f"cc.checkpoint.{name}"
    assert callable(cc.export.export_onnx) and isinstance(cc.export.OnnxEncoder, type)
    assert callable(cc.course.record)
    assert "ViT-B-16" in cc.available_models()
    from cnclip_edu.train import main

    assert callable(main)


@pytest.mark.parametrize("old, new", [("cnclip_edu.checkpoint", "cnclip_edu.model.checkpoint"),
                                      ("cnclip_edu.export", "cnclip_edu.deploy.export"),
                                      ("cnclip_edu.zeroshot", "cnclip_edu.eval.zeroshot")])
def test_old_module_paths_are_the_moved_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__name__ == new  # the alias does not rename the module


def test_old_module_path_works_in_a_fresh_interpreter():
    code = ("from cnclip_edu.checkpoint import save_hf; from cnclip_edu.export import export_onnx, OnnxEncoder; "
            "import cnclip_edu.model.checkpoint as m; assert save_hf is m.save_hf; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "ok", out.stderr


def _help_flags(module: str) -> set[str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            rc = importlib.import_module(module).main(["--help"])
        except SystemExit as exc:  # argparse's --help; torch's @record (train) turns it into a return
            rc = exc.code
    assert rc in (0, None), f"{module} --help exited with {rc}"
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", buf.getvalue()))


def test_every_cli_command_keeps_its_flags():
    """tests/data/cli_flags.json was taken from `--help` of every command before the layout change."""
    from cnclip_edu.cli import COMMANDS

    before = json.loads((ROOT / "tests" / "data" / "cli_flags.json").read_text())
    assert set(before) <= set(COMMANDS), f"commands lost: {set(before) - set(COMMANDS)}"
    for cmd, flags in before.items():
        missing = set(flags) - _help_flags(COMMANDS[cmd][0])
        assert not missing, f"cnclip-edu {cmd}: flags lost {sorted(missing)}"


def test_python_m_train_still_runs_the_trainer():
    out = subprocess.run([sys.executable, "-m", "cnclip_edu.train", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "--train-data" in out.stdout and "--accum-freq" in out.stdout


def test_top_level_is_small():
    modules = sorted(p.name for p in PKG.glob("*.py"))
    assert len(modules) <= 8, modules
    for chapter in ["model", "data", "train", "eval", "deploy", "course", "viz"]:
        assert (PKG / chapter / "__init__.py").is_file(), chapter


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of the package that `path` imports, at any depth (function-level imports count)."""
    name, is_pkg = _module_name(path)
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # `if TYPE_CHECKING:` imports are for type checkers only: they never run, so they make no cycle
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                 and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                 for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            mod = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            subs = [f"{mod}.{a.name}" for a in node.names]
            # `from . import protocol` imports the submodule; the package counts only for names it defines
            targets = subs + ([mod] if not all(t in modules for t in subs) else [])
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        found |= {t for t in targets if t in modules and t != name}
    return found


def test_no_two_modules_import_each_other():
    files = list(PKG.rglob("*.py"))
    modules = {_module_name(p)[0] for p in files}
    graph = {_module_name(p)[0]: _imports(p, modules) for p in files}
    mutual = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert not mutual, f"modules that import each other: {mutual}"
