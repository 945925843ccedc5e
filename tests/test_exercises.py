"""The exercise checker: every registered exercise accepts its reference and rejects each plausible
wrong answer (mutants); and the mechanism's outcomes, messages and grading log."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from cnclip_edu.course import exercises as X
from cnclip_edu.course.exercises import core
from cnclip_edu.course.exercises.compare import default_compare

IDS = X.all_ids()
MUTANTS = [(i, name) for i in IDS for name in (X.get(i).mutants() if X.get(i).mutants else {})]


@pytest.mark.parametrize("exercise_id", IDS)
def test_reference_passes(exercise_id, capsys):
    X.check(exercise_id, X.get(exercise_id).reference)
    assert f"✅ 练习 {exercise_id} 通过" in capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", IDS)
def test_exercise_is_complete(exercise_id):
    ex = X.get(exercise_id)
    assert re.fullmatch(r"\d\d\.q?\d+", ex.id), ex.id
    assert ex.title and ex.hint and ex.points > 0
    assert ex.mutants is not None and ex.mutants(), f"{ex.id}: no mutants (plausible wrong answers) to reject"


@pytest.mark.parametrize("exercise_id, mutant", MUTANTS, ids=[f"{i}-{m}" for i, m in MUTANTS])
def test_mutant_is_rejected(exercise_id, mutant):
    wrong = X.get(exercise_id).mutants()[mutant]
    with pytest.raises(X.ExerciseFailed) as err:
        X.check(exercise_id, wrong)
    assert exercise_id in str(err.value) and "提示" in str(err.value)


# ----------------------------------------------------------------------------- the mechanism
@pytest.fixture
def toy_exercises():
    """Two exercises registered for the test only (a function and a value)."""
    fn = X.Exercise("99.1", "平方", 2, "逐元素相乘。", reference=lambda x: x * x,
                    cases=lambda: [X.Case("[1, 2, 3]", lambda f: f(torch.tensor([1.0, 2.0, 3.0]))),
                                   X.Case("[-1.5]", lambda f: f(torch.tensor([-1.5])))],
                    mutants=lambda: {"加倍": lambda x: 2 * x})
    val = X.Exercise("99.q1", "补丁数", 1, "(224 / 16)^2。", reference=196)
    X.all_ids()  # load the real ones first
    for ex in (fn, val):
        X.register(ex)
    yield fn, val
    for ex in (fn, val):
        core._REGISTRY.pop(ex.id)


def test_pass_prints_one_line(toy_exercises, capsys):
    X.check("99.1", lambda x: x ** 2)
    X.check("99.q1", 196)
    assert capsys.readouterr().out.splitlines() == ["✅ 练习 99.1 通过 (2/2)", "✅ 练习 99.q1 通过 (1/1)"]


@pytest.mark.parametrize("answer", [None, ..., "stub"])
def test_missing_answer_is_not_attempted(toy_exercises, answer):
    def stub(x):
        raise NotImplementedError("练习 99.1")

    with pytest.raises(X.ExerciseNotAttempted) as err:
        X.check("99.1", stub if answer == "stub" else answer)
    assert isinstance(err.value, AssertionError)
    assert "99.1" in str(err.value) and "提示" in str(err.value)


def test_wrong_answer_names_case_expected_got_and_hint(toy_exercises):
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("99.1", lambda x: x * x if x.numel() > 1 else -x)
    msg = str(err.value)
    assert "用例 2/2「[-1.5]」" in msg and "期望" in msg and "得到" in msg and "提示：逐元素相乘。" in msg
    with pytest.raises(X.ExerciseFailed, match="期望 196，得到 197"):
        X.check("99.q1", 197)


def test_a_decision_table_check_names_the_wrong_stage_but_never_shows_the_answer():
    """11.q1's expected value is the answer itself: a wrong table is told which recipe and which stage (from 1)
    differ, and what it wrote, but not the reference."""
    from cnclip_edu.course.exercises.nb11_stages import _STAGE_TABLE

    wrong = {k: list(v) for k, v in _STAGE_TABLE.items()}
    wrong["llava"] = [("projector",), ("decoder",)]          # the aligned projector left out of stage 2
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("11.q1", wrong)
    msg = str(err.value)
    assert "LLaVA" in msg and "第 2 项" in msg and "期望" not in msg and "('decoder', 'projector')" not in msg
    wrong["llava"] = [("projector",)]
    with pytest.raises(X.ExerciseFailed, match="这个配方有 2 个阶段，你写了 1 个"):
        X.check("11.q1", wrong)


def test_students_exception_is_reported_not_raised(toy_exercises):
    with pytest.raises(X.ExerciseFailed, match="你的代码抛出了 TypeError"):
        X.check("99.1", lambda x: x @ "a")


def test_jupyter_shows_only_the_message(toy_exercises):
    with pytest.raises(X.ExerciseFailed) as err:
        X.check("99.q1", 1)
    lines = err.value._render_traceback_()
    assert lines[0].startswith("ExerciseFailed: 练习 99.q1") and len(lines) == 1


def test_unknown_id_lists_the_known_ones(toy_exercises):
    with pytest.raises(KeyError, match="99.q1"):
        X.check("98.7", 1)


def test_log_for_the_grader(toy_exercises, tmp_path, monkeypatch, capsys):
    log = tmp_path / "checks.jsonl"
    monkeypatch.setenv("CNCLIP_EXERCISE_LOG", str(log))
    X.check("99.q1", 196)
    with pytest.raises(X.ExerciseNotAttempted):
        X.check("99.1", None)
    rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["passed"], r["points"]) for r in rows] == [("99.q1", True, 1), ("99.1", False, 0)]


def test_passes_is_quiet(toy_exercises, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNCLIP_EXERCISE_LOG", str(tmp_path / "checks.jsonl"))
    assert X.passes("99.1", lambda x: x ** 2) and X.passes("99.q1", 196)
    assert not X.passes("99.1", lambda x: 2 * x) and not X.passes("99.1", None)
    assert not X.passes("99.1", lambda x: x @ "a")
    assert capsys.readouterr().out == "" and not (tmp_path / "checks.jsonl").exists()


def test_grading_refuses_the_reference_itself(toy_exercises, monkeypatch):
    monkeypatch.setenv("CNCLIP_GRADING", "1")
    with pytest.raises(X.ExerciseFailed, match="参考实现本身"):
        X.check("99.1", X.get("99.1").reference)


def test_registering_an_id_twice_is_an_error(toy_exercises):
    with pytest.raises(ValueError, match="99.1"):
        X.register(X.Exercise("99.1", "x", 1, "x", reference=1))


# ----------------------------------------------------------------------------- comparison
@pytest.mark.parametrize("expected, got, needle", [
    (torch.zeros(2, 3), torch.zeros(3, 2), "形状"),
    (torch.zeros(2), torch.zeros(2, dtype=torch.long), "数的类型"),
    (torch.ones(3), torch.ones(3) * 1.01, "超出容差"),
    (torch.ones(3), torch.tensor([1.0, float("nan"), 1.0]), "NaN"),
    (np.arange(4), np.arange(4) + (np.arange(4) == 2), "位置 (2,)"),
    ([1, 2, 3], [1, 2], "长度"),
    ([[1, 2], [3, 4]], [[1, 2], [3, 5]], "第 1 个元素 → 第 1 个"),
    ({"a": 1}, {"b": 1}, "缺少 ['a']"),
    (5, 5.5, "期望 5"),
    ("abc", "abd", "期望 'abc'"),
    (3, "3", "应当是一个数"),
    (torch.ones(2), [1.0, 1.0], "torch.Tensor"),
])
def test_compare_says_what_differs(expected, got, needle):
    msg = default_compare(expected, got)
    assert msg is not None and needle in msg, msg


@pytest.mark.parametrize("expected, got", [
    (torch.ones(3), torch.ones(3) * (1 + 1e-6)), (np.eye(2), torch.eye(2, dtype=torch.float64)),
    (0.1 + 0.2, 0.3), ([1, (2.0, "x")], [1, (2.0, "x")]), ({"k": torch.arange(3)}, {"k": torch.arange(3)}),
])
def test_compare_accepts_equal_values(expected, got):
    assert default_compare(expected, got) is None
