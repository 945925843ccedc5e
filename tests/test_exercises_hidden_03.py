"""Notebook 03: 03.7's check sees the arguments of the student's `torch.load` / `load_state_dict` (a bare
`torch.load(path)` is refused even where torch's default happens to be safe). Every exercise's grading
cases: test_exercises_hidden.py."""
from __future__ import annotations

import pytest
import torch

from cnclip_edu.course import exercises as X


def _bare_load(model, path):
    from cnclip_edu.model.checkpoint import normalize_keys

    obj = torch.load(path)                     # wrapped checkpoint or bare state_dict, both accepted
    model.load_state_dict(normalize_keys(obj.get("state_dict", obj)), strict=True)
    return model


def test_03_6_refuses_a_bare_torch_load_and_says_why():
    with pytest.raises(X.ExerciseFailed, match="weights_only=True") as err:
        X.check("03.7", _bare_load)
    assert "2.6" in str(err.value) and "map_location" in str(err.value)


def test_03_6_record_restores_load_state_dict():
    from cnclip_edu.course.exercises import nb03_checkpoint

    before = torch.nn.Module.load_state_dict
    assert nb03_checkpoint._explicit_arguments(nb03_checkpoint._library_load).startswith("weights_only=True")
    assert torch.nn.Module.load_state_dict is before


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_03_8_hidden_draw_rejects_every_mutant(seed):
    """The whole text tower (03.9): every seed's hidden configuration tells each plausible wrong module apart
    (names, table sizes, the embedding LayerNorm's eps), and the reference passes it."""
    from hidden_cases import first_difference

    ex = X.get("03.9")
    cases = ex.hidden(seed)
    assert first_difference(ex, ex.reference, cases) is None
    let_through = [name for name, wrong in ex.mutants().items() if first_difference(ex, wrong, cases) is None]
    assert not let_through, let_through


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_03_5_hidden_draw_rejects_every_mutant(seed):
    """Which tower lost the information (03.5): every seed's hidden draw (rows other than 0 and 1, a near
    pair whose gap lies between ln 2 and 2 with a cosine above 0.99) tells each wrong verdict apart."""
    from hidden_cases import first_difference

    ex = X.get("03.5")
    cases = ex.hidden(seed)
    assert first_difference(ex, ex.reference, cases) is None
    let_through = [name for name, wrong in ex.mutants().items() if first_difference(ex, wrong, cases) is None]
    assert not let_through, let_through


def _own_layer(attention_stand_in):
    """A correct MyBertLayer whose 03.3 uses either the student's own attention or 03.3's allowed stand-in."""
    from cnclip_edu.course.exercises import nb03_own_modules as M
    from cnclip_edu.model.text import padding_bias

    Correct = M._mutant_layer()

    class Layer(Correct):
        def forward(self, x, ids):
            if not attention_stand_in:
                return super().forward(x, ids)
            a = self.attention.self(x, padding_bias(ids, x.dtype))   # the stand-in 03.3 accepts
            x = self.attention.output.LayerNorm(x + self.attention.output.dense(a))
            return self.output.LayerNorm(x + self.output.dense(torch.nn.functional.gelu(self.intermediate.dense(x))))
    return Layer


def _own_tower(embeddings_stand_in=False, layer_stand_in=False, attention_stand_in=False):
    """A correct MyTextTower whose 03.4 uses the student's own pieces or one of the stand-ins 03.4 accepts."""
    from cnclip_edu.course.exercises import nb03_own_modules as M
    from cnclip_edu.model.text import padding_bias

    Layer = _own_layer(attention_stand_in)

    class Tower(M._mutant_tower()):
        def __init__(self, cfg, E):
            super().__init__(cfg, E)
            self.bert.encoder.layer = torch.nn.ModuleList(
                Layer(cfg.text_hidden_size, cfg.text_num_attention_heads, cfg.text_intermediate_size)
                for _ in range(cfg.text_num_hidden_layers))

        def forward(self, ids):
            emb = self.bert.embeddings
            x = emb(ids) if embeddings_stand_in else M._embeddings(emb, ids)
            for layer in self.bert.encoder.layer:
                x = layer(x, padding_bias(ids, x.dtype)) if layer_stand_in else layer(x, ids)
            return x[:, 0] @ self.text_projection
    return Tower


@pytest.mark.parametrize("exercise_id, answer, needle", [
    ("03.8", _own_layer(attention_stand_in=True), "你自己的 03.2"),
    ("03.9", _own_tower(attention_stand_in=True), "你自己的 03.2"),
    ("03.9", _own_tower(embeddings_stand_in=True), "你自己的 03.1"),
    ("03.9", _own_tower(layer_stand_in=True), "你自己的 03.3"),
])
def test_03_8_03_9_name_the_earlier_piece_a_stand_in_replaces(exercise_id, answer, needle):
    """03.3 / 03.4 pass with the library's modules standing in for 03.1 / 03.2 / 03.3; in the student's own
    modules those stand-ins cannot run, and 03.8 / 03.9 say which earlier piece must be the student's own."""
    with pytest.raises(X.ExerciseFailed) as err:
        X.check(exercise_id, answer)
    assert needle in str(err.value) and "代替写法" in str(err.value), str(err.value)


@pytest.mark.parametrize("exercise_id, answer", [("03.8", _own_layer(False)), ("03.9", _own_tower())])
def test_03_8_03_9_pass_with_the_students_own_pieces(exercise_id, answer, capsys):
    X.check(exercise_id, answer)
    assert "✅" in capsys.readouterr().out
