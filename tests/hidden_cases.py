"""Running an exercise's cases against an answer, for the tests of the grading cases (`Exercise.hidden`)."""
from __future__ import annotations

from cnclip_edu.course.exercises.compare import default_compare


def first_difference(ex, answer, cases) -> str | None:
    """The first case on which `answer` differs from the reference ("label: what differs"), or None.
    An answer that raises differs (a mutant that crashes is rejected; a reference that crashes fails)."""
    compare = ex.compare or default_compare
    for case in cases:
        try:
            diff = compare(case.run(ex.reference), case.run(answer))
        except Exception as err:  # noqa: BLE001
            return f"{case.label}: {type(err).__name__}: {err}"
        if diff:
            return f"{case.label}: {diff}"
    return None


def assert_hidden_cases_catch_every_mutant(exercise_id: str, seeds: range) -> None:
    """The reference passes each seed's hidden draw and every mutant fails it (not only the public cases)."""
    from cnclip_edu.course import exercises as X

    ex = X.get(exercise_id)
    for seed in seeds:
        assert first_difference(ex, ex.reference, ex.hidden(seed)) is None, f"{exercise_id} seed {seed}: the reference"
        for name, wrong in ex.mutants().items():
            assert first_difference(ex, wrong, ex.hidden(seed)) is not None, f"{exercise_id} seed {seed}: {name}"
