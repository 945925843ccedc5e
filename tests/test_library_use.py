"""Using cnclip_edu as a library: the version, the one-line hint for a missing extra, `--resume course`
everywhere a checkpoint is taken, and `cc.search`."""
from __future__ import annotations

import argparse
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import cnclip_edu as cc
from cnclip_edu import cli


def test_version_has_one_source():
    import tomllib
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", "cnclip_edu", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"cnclip-edu {cc.__version__}"
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


@pytest.mark.parametrize("command, module, extra", [
    (["export", "--resume", "course", "--save-dir", "x"], "onnx", "export"),
    (["build-lmdb", "--data-dir", "x"], "lmdb", "data"),
    (["course", "--notebooks", "00"], "papermill", "course"),
])
def test_a_command_whose_extra_is_missing_says_what_to_install(monkeypatch, capsys, command, module, extra):
    # a package that is not installed: importing it raises ModuleNotFoundError(name=module)
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    for name in ("cnclip_edu.data.lmdb_build", "cnclip_edu.data.dataset"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert cli.main(command) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnclip-edu {command[0]} needs {module!r}: pip install 'cnclip-edu[{extra}]'"]


def test_require_names_the_extra_and_leaves_other_errors_alone(monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(cli.MissingExtra, match=r"pip install 'cnclip-edu\[data\]'"):
        cli.require("lmdb", "LMDB datasets")
    assert cli.require("json").dumps([1]) == "[1]"


def test_export_takes_a_model_name_as_resume():
    from cnclip_edu.deploy.export import _load_model

    args = argparse.Namespace(vision_model=None, text_model=None, resume="course", download_root=None)
    model = _load_model(args)
    assert model.config.name == "ViT-Course@RBT-Course"
    args.resume = "no-such-model-or-file"
    with pytest.raises(SystemExit, match="checkpoint not found: 'no-such-model-or-file' is neither"):
        _load_model(args)


def test_search_normalizes_and_ranks():
    gallery = torch.tensor([[10.0, 0.0], [0.6, 0.8], [0.0, -3.0]])   # item 0 has a big norm
    scores, indices = cc.search(torch.tensor([0.5, 0.9]), gallery, k=2)
    assert indices.tolist() == [[1, 0]]                               # cosine, not dot product
    assert torch.allclose(scores, torch.tensor([[0.9907, 0.4856]]), atol=1e-4)
    s2, i2 = cc.search(np.array([[0.5, 0.9]], np.float32), gallery.numpy(), k=10)
    assert i2.shape == (1, 3) and torch.equal(i2, torch.tensor([[1, 0, 2]]))  # k capped at the gallery size
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        cc.search(gallery, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="queries have 3 dimensions, gallery 2"):
        cc.search(torch.ones(1, 3), gallery)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        cc.search(gallery, gallery, k=0)


def test_public_names_are_listed():
    for name in ("load", "tokenize", "search", "create_model", "CLIP", "available_models", "checkpoint", "export"):
        assert name in dir(cc)


@pytest.mark.parametrize("images, error, words", [
    (torch.zeros(3, 32, 32), ValueError, "add a batch axis, images[None]"),
    (torch.zeros(2, 3, 64, 64), ValueError, "shape (B, 3, 32, 32) for this model, got (2, 3, 64, 64)"),
    (torch.zeros(1, 1, 32, 32), ValueError, "got (1, 1, 32, 32)"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, "raw uint8 pixels need `preprocess` first"),
    (np.zeros((1, 3, 32, 32), np.float32), TypeError, "must be a torch.Tensor"),
])
def test_encode_image_names_what_is_wrong_with_its_input(images, error, words):
    model, _ = cc.load("course")
    with pytest.raises(error, match=re.escape(words)):
        model.encode_image(images)


@pytest.mark.parametrize("tokens, error, words", [
    (torch.zeros(52, dtype=torch.long), ValueError, "shape (B, L), got (52,)"),
    (torch.zeros(1, 52), TypeError, "integer ids (torch.long), got torch.float32"),
    (torch.full((1, 4), 21128), ValueError, "id 21128, outside the vocabulary [0, 21128)"),
    (torch.tensor([[101, -1, 102]]), ValueError, "id -1, outside the vocabulary"),
    (torch.zeros(1, 513, dtype=torch.long), ValueError, "length 513, longer than the model's 512 positions"),
])
def test_encode_text_names_what_is_wrong_with_its_input(tokens, error, words):
    model, _ = cc.load("course")
    with pytest.raises(error, match=re.escape(words)):
        model.encode_text(tokens)
    ok = model.encode_text(cc.tokenize(["一个红色的圆形"]))  # and the right input still works
    assert ok.shape == (1, model.config.embed_dim)


def test_export_onnx_names_a_wrong_model_argument(tmp_path):
    pytest.importorskip("onnx")
    from cnclip_edu.deploy.export import export_onnx

    with pytest.raises(TypeError, match=r"model must be a cnclip_edu CLIP .*got str \(a name or path: load it first"):
        export_onnx("course", tmp_path)
    with pytest.raises(TypeError, match="model must be a cnclip_edu CLIP .*got Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written
