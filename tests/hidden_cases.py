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
