"""The chat world: canvases drawn where their description says, answers that are true of the canvas,
captions that parse back, and the course's held-out combinations absent from every training stage."""
from __future__ import annotations

import random

import numpy as np
import pytest

from cnclip_edu.data.toy import COLORS
from cnclip_edu.mllm.chat import ChatVocab, encode_chat, render_chat
from cnclip_edu.mllm.evaluate import parse_caption
from cnclip_edu.mllm.recipe import RecipeConfig, make_world
from cnclip_edu.mllm.world import (COUNT_WORDS, POSITIONS, QTYPES, WorldConfig, ask, caption, chat_samples,
                                   render_canvas, sample_canvas, vocabulary_texts)

WC = WorldConfig()
SMALL = RecipeConfig(n_train_canvases=150, n_text_chats=600, n_test_canvases=60, n_test_per_type=10,
                     n_heldout_per_combo=2, n_multi_round=10)


@pytest.fixture(scope="module")
def world():
    return make_world(SMALL)


def _canvases(n=200, seed=0, combos=None):
    rng = random.Random(seed)
    return [sample_canvas(rng, combos or WC.seen()) for _ in range(n)]


def test_canvases_are_valid_and_deterministic():
    a, b = _canvases(seed=3), _canvases(seed=3)
    assert a == b and a != _canvases(seed=4)
    for cv in a:
        assert 1 <= len(cv.items) <= cv.cells <= 3
        assert len({it.color for it in cv.items}) == len(cv.items) == len({it.shape for it in cv.items})
        assert [it.cell for it in cv.items] == sorted({it.cell for it in cv.items})
    assert {cv.cells for cv in a} == {1, 2, 3} and any(len(cv.items) < cv.cells for cv in a)


def test_each_shape_is_drawn_in_its_cell_in_its_colour():
    for cv in _canvases(60, seed=1):
        img = render_canvas(cv)
        assert img.size == (32 * cv.cells, 32)
        a = np.asarray(img, dtype=np.int32)
        for k in range(cv.cells):
            cell = a[:, 32 * k: 32 * (k + 1)]
            found = {name for name, rgb in COLORS.items() if (np.abs(cell - np.array(rgb)).sum(-1) < 40).sum() >= 6}
            want = {it.color for it in cv.items if it.cell == k}
            assert found == want, (cv, k, found)


def test_answers_are_true_of_the_canvas():
    rng = random.Random(0)
    for cv in _canvases(300, seed=2):
        by = {it.color: it for it in cv.items} | {it.shape: it for it in cv.items}
        for qt in QTYPES:
            if qt == "左右" and len(cv.items) < 2:
                with pytest.raises(ValueError):
                    ask(rng, cv, qt, WC.seen())
                continue
            q, a, _ = ask(rng, cv, qt, WC.seen())
            if qt == "数量":
                assert a == COUNT_WORDS[len(cv.items)]
            elif qt == "有无":
                c, s = q[3:].split("的")[0], q[3:].split("的")[1][:-2]
                assert a == ("有" if (c, s) in cv.combos() else "没有"), (q, a)
            elif qt == "颜色" and q.split("是")[0] in by:
                assert a == by[q.split("是")[0]].color
            elif qt == "形状" and q.split("的")[0] in by:
                assert a == by[q.split("的")[0]].shape
            elif qt == "位置":
                assert a == POSITIONS[cv.cells][by[q.split("的")[0]].cell]


def test_caption_parses_back_to_the_canvas():
    for cv in _canvases(100):
        parsed = parse_caption(caption(cv))
        assert parsed == {cv.position(it): (it.size, it.color, it.shape) for it in cv.items}


def test_vocabulary_covers_every_text_the_world_produces(world):
    vocab = ChatVocab.from_texts(vocabulary_texts())
    samples = world.text_chats + world.sft_chats + world.test_questions + world.heldout_shape + world.multi_round
    for s in samples:
        vocab.to_compact(encode_chat(render_chat(s.turns, 4)))  # raises on an unknown character


def test_heldout_combinations_absent_from_every_training_stage(world):
    held = WC.heldout()
    assert len(held) == 8
    for cv in world.train_canvases:
        assert not cv.combos() & set(held)
    for s in world.text_chats + world.caption_chats + world.sft_chats:
        text = "|".join(q + "|" + a for q, a in s.turns)
        for c, sh in held:
            assert f"{c}的{sh}" not in text and f"{c}{sh}" not in text, text
            # a shape question about the held-out colour never has the held-out shape as its answer
            assert not any(q.startswith(c) and a == sh for q, a in s.turns)


def test_heldout_test_asks_about_the_heldout_shape(world):
    for s in world.heldout_shape:
        cv = world.test_canvases[s.canvas]
        c = s.turns[0][0].split("的")[0]
        (it,) = [it for it in cv.items if it.color == c]
        assert (it.color, it.shape) in WC.heldout() and s.turns[0][1] == it.shape
    assert len(world.heldout_shape) == 8 * SMALL.n_heldout_per_combo


def test_training_chats_mix_captions_questions_and_rounds():
    cvs = _canvases(100)
    chats = chat_samples(random.Random(0), cvs, WC.seen(), per_canvas=4)
    kinds = [s.qtypes for s in chats]
    assert any(k == ["描述"] for k in kinds) and any(len(k) == 3 for k in kinds) and any("追问" in k for k in kinds)
    for s in chats:
        assert len({q for q, _ in s.turns}) == len(s.turns)  # no question asked twice in one chat


def test_train_shapes_keep_thins_one_shape_training_canvases_only():
    from dataclasses import replace

    base = make_world(SMALL)
    thin = make_world(replace(SMALL, train_shapes_keep=(0.2, 1.0, 1.0)))
    ones = lambda cvs: sum(len(cv.items) == 1 for cv in cvs) / len(cvs)  # noqa: E731
    assert ones(thin.train_canvases) < ones(base.train_canvases) / 2
    assert thin.test_canvases == base.test_canvases  # the test is drawn as before


def test_referring_questions_ask_about_one_of_several_shapes():
    from cnclip_edu.mllm.world import referring_questions

    cvs = _canvases(100, seed=5)
    qs = referring_questions(random.Random(0), cvs, WC.seen(), 200)
    assert len(qs) == 200 and {s.qtypes[0] for s in qs} == {"颜色", "形状", "大小", "位置"}
    for s in qs:
        cv = cvs[s.canvas]
        assert len(cv.items) >= 2
        q, a = s.turns[0]
        named = [it for it in cv.items if it.color in q or it.shape in q or f"{cv.position(it)}的" in q]
        assert len(named) == 1 and a in (named[0].color, named[0].shape, f"{named[0].size}的", cv.position(named[0]))
    with pytest.raises(ValueError, match="two shapes"):
        referring_questions(random.Random(0), [cv for cv in cvs if len(cv.items) == 1], WC.seen(), 1)


def test_binding_drills_are_added_and_leave_the_other_chats_as_they_were():
    from dataclasses import replace

    base = make_world(SMALL)
    drill = make_world(replace(SMALL, n_text_binding=50, n_sft_binding=40))
    assert drill.text_chats[:len(base.text_chats)] == base.text_chats and len(drill.text_chats) == len(base.text_chats) + 50
    assert drill.sft_chats[:len(base.sft_chats)] == base.sft_chats and len(drill.sft_chats) == len(base.sft_chats) + 40
    for s in drill.text_chats[len(base.text_chats):]:
        assert s.meta["context"].count("是一个") >= 2   # the scene in words, with 2-3 shapes
    for s in drill.sft_chats[len(base.sft_chats):]:
        assert len(drill.train_canvases[s.canvas].items) >= 2
    assert drill.test_questions == base.test_questions and drill.test_canvases == base.test_canvases
