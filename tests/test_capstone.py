"""The capstone (exercise 05.4): the student's own pieces from notebooks 01-05 run one training step.

Pieces for 01-03 are written here as a student would (reference answers of this test, not the library's
functions under the contract's names); 04.1 and 05.3 are the teacher's `%%my_clip` cells of notebooks 04
and 05 themselves. The check must accept them, name the piece that is wrong, name the exercise whose
piece is still a stub, and stand in for a piece whose notebook has not run.
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from cnclip_edu.course import capstone, pieces
from cnclip_edu.course import exercises as X

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

PIECE_01 = '''
import torch

from cnclip_edu.tokenizer import get_tokenizer as _wordpiece   # this test's stand-in for the student's 01.1 / 01.2


def load_vocab(path):
    with open(path, encoding="utf-8") as f:
        vocab = {}
        for i, line in enumerate(f):
            vocab.setdefault(line.rstrip("\\n"), i)
        return vocab


def encode(text, vocab):
    return _wordpiece().encode(text)


def tokenize(texts, vocab, context_length=52):
    texts = [texts] if isinstance(texts, str) else list(texts)
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [vocab["[CLS]"]] + encode(text, vocab)[: context_length - 2] + [vocab["[SEP]"]]
        out[row, : len(ids)] = torch.tensor(ids)
    return out
'''

PIECE_02 = '''
def encode_image(model, images):
    v = model.visual
    x = v.embed(images)                        # (B, 1 + N, D): [CLS] + patches, positions added
    x = v.transformer(v.ln_pre(x))
    return v.ln_post(x[:, 0]) @ v.proj         # (B, E)
'''

PIECE_03 = '''
def encode_text(model, tokens):
    return model.bert(tokens)[:, 0] @ model.text_projection     # the [CLS] state, projected: (B, E)
'''

STEP = '''
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cnclip_edu.tokenizer import VOCAB_PATH


def training_step(mine, model, lmdb_split_dir, batch_size):
    vocab = mine.load_vocab(VOCAB_PATH)
    dataset = mine.MyLMDBDataset(lmdb_split_dir, model.image_resolution, context_length=model.context_length,
                                 tokenizer=lambda texts, context_length: mine.tokenize(texts, vocab, context_length))
    images, tokens = next(iter(DataLoader(dataset, batch_size=batch_size)))
    model.zero_grad()
    img = F.normalize(mine.encode_image(model, images), dim=-1)
    txt = F.normalize(mine.encode_text(model, tokens), dim=-1)
    loss = mine.clip_loss(img, txt, model.logit_scale.exp())
    loss.backward()
    return loss
'''


def _my_clip_cell(notebook: str, exercise_id: str) -> str:
    """The teacher's `%%my_clip ID` cell of a notebook, without the magic line and the solution markers."""
    book = nbformat.read(str(NOTEBOOKS / notebook), 4)
    cell = next(c.source for c in book.cells if c.source.startswith(f"%%my_clip {exercise_id}"))
    return "\n".join(line for line in cell.split("\n")[1:] if "### BEGIN SOLUTION" not in line
                     and "### END SOLUTION" not in line)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A work folder holding every piece, as after running notebooks 01-05 in order."""
    monkeypatch.setattr(pieces, "_dir", None)
    pieces.enable(tmp_path)
    for exercise_id, source in [("01.4", PIECE_01), ("02.6", PIECE_02), ("03.6", PIECE_03),
                                ("04.1", _my_clip_cell("04_contrastive_loss.ipynb", "04.1")),
                                ("05.3", _my_clip_cell("05_data_lmdb.ipynb", "05.3"))]:
        pieces.save(exercise_id, textwrap.dedent(source), tmp_path)
    return tmp_path


def _step():
    namespace: dict = {}
    exec(STEP, namespace)  # noqa: S102 - the student's step, as the notebook cell defines it
    return namespace["training_step"]


def test_own_pieces_pass_and_are_reported_as_the_students(work, capsys):
    mine = capstone.my_pieces(work)
    out = capsys.readouterr().out
    assert out.count("你写的") == len(capstone.NEEDED), out
    X.check("05.4", _step())
    assert "✅ 练习 05.4 通过 (2/2)" in capsys.readouterr().out
    assert mine.clip_loss.__code__.co_filename.endswith("ex04_1.py")


def test_a_wrong_piece_is_named(work):
    pieces.save("04.1", "import torch.nn.functional as F\nimport torch\n\n\ndef clip_loss(i, t, s):\n"
                        "    logits = s * i @ t.T\n    return F.cross_entropy(logits, torch.arange(len(i)))\n", work)
    with pytest.raises(X.ExerciseFailed, match="损失（04 的 clip_loss）"):
        X.check("05.4", _step())


def test_a_wrong_tokenizer_is_named(work):
    pieces.save("01.4", PIECE_01.replace('+ [vocab["[SEP]"]]', ""), work)
    with pytest.raises(X.ExerciseFailed, match="一批 tokens"):
        X.check("05.4", _step())


def test_a_stub_piece_names_its_exercise(work, capsys):
    pieces.save("02.6", 'def encode_image(model, images):\n    # 在此作答 (YOUR CODE HERE)\n'
                        '    raise NotImplementedError("练习 02.6")\n', work)
    capstone.my_pieces(work)
    assert "还是空的：练习 02.6 还没有完成" in capsys.readouterr().out
    with pytest.raises(X.ExerciseFailed, match="练习 02.6 还没有完成"):
        X.check("05.4", _step())


def test_a_missing_notebook_is_named_and_stood_in_for(work, capsys):
    pieces.piece_path("03.6", work).unlink()
    mine = capstone.my_pieces(work)
    out = capsys.readouterr().out
    assert re.search(r"encode_text\s+← 第 03 节：没找到：先运行第 03 节", out), out
    assert mine.encode_text is capstone.library_pieces().encode_text
    X.check("05.4", _step())


def test_the_student_version_is_not_attempted(work):
    def stub(mine, model, lmdb_split_dir, batch_size):
        raise NotImplementedError("练习 05.4")

    with pytest.raises(X.ExerciseNotAttempted, match="练习 05.4"):
        X.check("05.4", stub)


def test_the_librarys_step_is_not_the_students(work):
    with pytest.raises(X.ExerciseFailed, match="调用了库里"):
        X.check("05.4", lambda *a: capstone.training_step(*a))


def test_the_teachers_pieces_of_notebooks_01_to_05_pass(tmp_path, monkeypatch, capsys):
    """Every `%%my_clip` cell of the teacher's notebooks 01-05, saved as running them in order would:
    the capstone runs on them and agrees with the library."""
    monkeypatch.setattr(pieces, "_dir", None)
    pieces.enable(tmp_path)
    for path in sorted(NOTEBOOKS.glob("0[1-5]_*.ipynb")):
        for cell in nbformat.read(str(path), 4).cells:
            if cell.cell_type == "code" and cell.source.startswith("%%my_clip "):
                exercise_id = cell.source.split("\n", 1)[0].split()[1]
                pieces.save(exercise_id, _my_clip_cell(path.name, exercise_id), tmp_path)
    _, rows = capstone.collect(tmp_path)
    missing = [name for name, _, status in rows if not status.startswith("你写的")]
    if missing:
        pytest.skip(f"notebooks 01-05 do not define {missing} in a %%my_clip cell yet")
    X.check("05.4", _step())
    assert "✅ 练习 05.4 通过" in capsys.readouterr().out
