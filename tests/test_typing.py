"""The public API as a type checker sees it: `cc.load` gives a CLIP, `cc.search` tensors, and the
public modules type-check. mypy runs on them with the repository's own settings (pyproject.toml)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["cnclip_edu/__init__.py", "cnclip_edu/eval/search.py", "cnclip_edu/cli.py", "cnclip_edu/model/clip.py",
          "cnclip_edu/model/checkpoint.py", "cnclip_edu/tokenizer.py"]
USE = '''
import cnclip_edu as cc
model, preprocess = cc.load("course")
reveal_type(model)
feats = model.encode_text(cc.tokenize(["一只猫"]))
reveal_type(feats)
scores, indices = cc.search(feats, feats, k=1)
reveal_type(indices)
cc.load(42)  # wrong: a name or a path
'''


def test_public_api_type_checks(tmp_path):
    pytest.importorskip("mypy")
    use = tmp_path / "use_cnclip.py"
    use.write_text(USE, encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
                          "--cache-dir", str(ROOT / ".pytest_cache" / "mypy"), "--no-error-summary",
                          str(use), *PUBLIC], cwd=ROOT, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    notes = [line.split("Revealed type is ")[1] for line in lines if "Revealed type is" in line]
    assert notes == ['"cnclip_edu.model.clip.CLIP"', '"torch._tensor.Tensor"', '"torch._tensor.Tensor"'], out.stdout
    errors = [line for line in lines if ": error:" in line]
    # the one deliberate mistake is caught, and nothing else is reported in the public modules
    assert len(errors) == 1 and "use_cnclip.py:9" in errors[0] and "load" in errors[0], out.stdout


def test_package_is_marked_typed():
    assert (ROOT / "cnclip_edu" / "py.typed").is_file()
