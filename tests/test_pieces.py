"""The student's pieces: a %%my_clip cell runs as usual, is saved, and later runs with the others."""
from __future__ import annotations

import pytest

from cnclip_edu.course import pieces


def test_saved_pieces_run_together_in_course_order(tmp_path):
    pieces.save("02.1", "def double(t):\n    return encode(t) * 2\n", tmp_path)
    pieces.save("01.4", "def encode(t):\n    return [ord(c) for c in t]\n", tmp_path)
    pieces.save("01.10", "LAST = encode('b')\n", tmp_path)  # 01.10 comes after 01.4, before 02.1
    assert pieces.saved(tmp_path) == ["01.4", "01.10", "02.1"]
    mine = pieces.load_all(tmp_path, needed=("01.4", "02.1"))
    assert mine.double("a") == [97, 97] and mine.LAST == [98]


def test_missing_piece_names_the_exercise_and_notebook(tmp_path):
    pieces.save("01.4", "x = 1\n", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"练习 03\.2（第 03 节）"):
        pieces.load_all(tmp_path, needed=("01.4", "03.2"))


def test_traceback_points_at_the_students_file(tmp_path):
    path = pieces.save("01.4", "def f():\n    return 1 / 0\nf()\n", tmp_path)
    with pytest.raises(ZeroDivisionError) as err:
        pieces.load_all(tmp_path)
    import traceback

    frames = traceback.extract_tb(err.value.__traceback__)
    assert (frames[-1].filename, frames[-1].lineno, frames[-1].line) == (str(path), 3, "return 1 / 0")  # line 1: header


def test_bad_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="exercise id like 01.4"):
        pieces.save("tokenizer", "x = 1\n", tmp_path)


def test_saving_again_replaces_the_piece_atomically(tmp_path):
    pieces.save("01.4", "x = 1\n", tmp_path)
    pieces.save("01.4", "x = 2\n", tmp_path)
    assert pieces.load_all(tmp_path).x == 2
    assert [p.name for p in (tmp_path / pieces.DIRNAME).iterdir()] == ["ex01_4.py"]  # no temp file left
