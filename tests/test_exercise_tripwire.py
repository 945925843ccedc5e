"""Tripwires (exercises/tripwire.py): an answer that just calls the library routine it should build is
rejected, in Chinese, naming the routine; the library works again after the check; honest answers pass."""
from __future__ import annotations

import pytest
import torch

import cnclip_edu as cc
from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import nb01_encode
from cnclip_edu.eval import hard_negatives
from cnclip_edu.tokenizer import get_tokenizer, load_vocab

TOK = get_tokenizer()
CHEATS = {
    "01.1": (lambda t: TOK.basic_tokenize(t), "Tokenizer.basic_tokenize"),
    "01.2": (lambda w, v: TOK.wordpiece(w), "Tokenizer.wordpiece"),
    "01.3": (load_vocab, "cnclip_edu.tokenizer.load_vocab"),
    "01.4": (lambda ts, v: TOK.encode_batch(ts), "Tokenizer.encode_batch"),
    "01.5": (lambda t, v, L=52: cc.tokenize(t, L), "cnclip_edu.tokenizer.tokenize"),
    "00.1": (lambda i, t, s: cc.model.clip.CLIP.get_similarity(None, None, None), "CLIP.get_similarity"),
    "00.2": (lambda *args: hard_negatives.hard_negative_groups(*args), "hard_negative_groups"),
    "00.3": (lambda *args: hard_negatives.probe_rank(*args), "probe_rank"),
}


@pytest.mark.parametrize("exercise_id", sorted(CHEATS))
def test_calling_the_library_is_named(exercise_id):
    answer, routine = CHEATS[exercise_id]
    with pytest.raises(X.ExerciseFailed) as err:
        X.check(exercise_id, answer)
    assert "库里现成的" in str(err.value) and routine in str(err.value)


def test_library_works_after_a_tripped_check():
    with pytest.raises(X.ExerciseFailed):
        X.check("01.5", CHEATS["01.5"][0])
    assert cc.tokenize("杰尼龟", 6).tolist() == [[101, 3345, 2225, 7991, 102, 0]]
    assert TOK.basic_tokenize("Café") == ["cafe"] and TOK.encode("杰") == [3345]


def test_student_style_answer_using_no_library_routine_passes(capsys):
    X.check("01.5", lambda texts, vocab, L=52: nb01_encode._student_tokenize(texts, vocab, L))
    assert "✅ 练习 01.5 通过" in capsys.readouterr().out
    assert torch.equal(nb01_encode._student_tokenize(["a"], TOK.vocab, 4), torch.tensor([[101, 143, 102, 0]]))
