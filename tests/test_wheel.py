"""The library as a pip user gets it: the wheel built from this checkout, installed into a fresh venv with
the base dependencies only, used from a folder outside the repository.

The fresh venv does not download PyTorch again: the base dependencies already installed here (torch,
torchvision, numpy, pillow, safetensors, tqdm and what they need) are linked into it through a `.pth`
folder, and pip installs the wheel with `--no-index`, so nothing else can come in. The [course] venv
(slow: it installs Jupyter & co. from the package index) runs `student` and `course` the same way.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
BASE = ("torch", "torchvision", "numpy", "pillow", "safetensors", "tqdm")
NOT_IN_BASE = ("lmdb", "matplotlib", "huggingface_hub", "onnx", "onnxruntime", "papermill", "nbformat", "faiss",
               "transformers", "IPython")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names) -> set[str]:
    """The distributions `names` need, transitively, with the extras each requirement asks for, as installed here."""
    seen: set[tuple[str, str]] = set()
    todo = [(_norm(n), "") for n in names]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for req in md.distribution(name).requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": extra}):
                try:
                    md.distribution(r.name)
                except md.PackageNotFoundError:
                    continue  # an optional platform dependency that is not installed here
                todo += [(_norm(r.name), e) for e in ("", *sorted(r.extras))]
    return {name for name, _ in seen}


def _link_site(dists: set[str], folder: Path) -> None:
    """Symlink every top-level file of these installed distributions (package folders, .so, dist-info) into folder."""
    folder.mkdir(parents=True)
    for name in dists:
        dist = md.distribution(name)
        for f in dist.files or []:
            top = Path(f).parts[0]
            if top in ("..", "bin") or (folder / top).exists():
                continue
            src = Path(dist.locate_file(top))
            if src.exists():
                (folder / top).symlink_to(src)


def _venv(tmp: Path, name: str) -> Path:
    venv = tmp / name
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    for old in ("setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth"):  # ensurepip's old
        for path in site.glob(old + "*"):  # setuptools would shadow the linked one (torch needs setuptools>=77)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    _link_site(_closure(BASE), tmp / f"{name}-base-site")
    (site / "zz_base_deps.pth").write_text(str(tmp / f"{name}-base-site") + "\n")
    return venv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of a copy of this checkout (the build writes its build/ folder there, not here)."""
    src = tmp_path_factory.mktemp("src")
    for item in ("cnclip_edu", "notebooks"):
        shutil.copytree(ROOT / item, src / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "notebooks"
                                                                                if item == "cnclip_edu" else "x"))
    for item in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / item, src / item)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    return next(out.glob("cnclip_edu-*.whl"))


def _run(venv: Path, args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, **kw)


def test_wheel_carries_the_notebooks_and_is_typed(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "cnclip_edu/py.typed" in names and "cnclip_edu/assets/course_model/model.safetensors" in names
    shipped = sorted(n.split("/")[-1] for n in names if n.startswith("cnclip_edu/notebooks/"))
    assert shipped == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert not [n for n in names if n.startswith("tests/")]


def test_base_install_runs_the_readme_quick_start_outside_the_repo(wheel, tmp_path):
    venv = _venv(tmp_path, "base")
    # --isolated: no pip config either (no find-links folder of other wheels), so nothing but the wheel comes in
    pip = _run(venv, ["python", "-m", "pip", "install", "--isolated", "--no-index", "-q", str(wheel)], cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr
    listed = _run(venv, ["python", "-m", "pip", "list", "--format=json"], cwd=tmp_path)
    installed = {_norm(p["name"]) for p in json.loads(listed.stdout)}
    assert installed <= _closure(BASE) | {"cnclip-edu", "pip", "setuptools"}, installed - _closure(BASE)
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % (NOT_IN_BASE,)
    assert _run(venv, ["python", "-c", probe], cwd=tmp_path).stdout.strip() == "[]"  # nothing leaked in

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- library-quickstart -->\n```python\n(.*?)```", readme, re.S)
    assert len(blocks) == 2 and blocks[0] == blocks[1], "the quick start appears once per language, identical"
    work = tmp_path / "user project"
    work.mkdir()
    (work / "quickstart.py").write_text(blocks[0], encoding="utf-8")
    run = _run(venv, ["python", "quickstart.py"], cwd=work, timeout=600)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == ["一个红色的圆形 -> image 0", "一个蓝色的正方形 -> image 1",
                                                          "一个绿色的三角形 -> image 2"]
    for saved in ("my_model", "my_model.pt", "my_model_hf"):
        again = _run(venv, ["python", "-c", f"import cnclip_edu as cc; print(cc.load({saved!r})[0].config.name)"],
                     cwd=work)
        assert again.stdout.strip() == "ViT-Course@RBT-Course", again.stderr
    hint = _run(venv, ["cnclip-edu", "export", "--resume", "course", "--save-dir", "onnx"], cwd=work)
    assert hint.returncode == 1 and hint.stderr.strip() == \
        "cnclip-edu export needs 'onnx': pip install 'cnclip-edu[export]'"
    version = _run(venv, ["cnclip-edu", "--version"], cwd=work)
    assert version.stdout.strip().startswith("cnclip-edu ")


@pytest.mark.slow
def test_course_extra_runs_student_and_course_outside_the_repo(wheel, tmp_path):
    venv = _venv(tmp_path, "course")
    pip = _run(venv, ["python", "-m", "pip", "install", "-q", f"{wheel}[course]"], cwd=tmp_path, timeout=1800)
    assert pip.returncode == 0, pip.stderr
    _run(venv, ["python", "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], cwd=tmp_path)
    work = tmp_path / "teacher"
    work.mkdir()
    student = _run(venv, ["cnclip-edu", "student", "--out", "student"], cwd=work, timeout=600)
    assert student.returncode == 0, student.stderr
    assert (work / "student" / "01_tokenizer.ipynb").is_file()
    course = _run(venv, ["cnclip-edu", "course", "--notebooks", "00", "--work-dir", "runs"], cwd=work, timeout=1200)
    assert course.returncode == 0, course.stdout + course.stderr
    assert json.loads((work / "runs" / "metrics.json").read_text())
