"""Every exercise's cases run with the exercise's tripwires armed, as the grader runs them
(grading/probe.py): a case may not itself reach a routine the exercise builds, or a correct answer
would be graded "library used". Found by bench/bench_grade.py: 03.8's cases built the library layer
whose weights they load inside `run`, so the teacher's own solution scored 0 on 03.8.

The answer here is a stand-in that refuses to be used (it raises at its first call or attribute
lookup) and notes how many wires had tripped by then: what a case does before it reaches the answer
must not trip one. (After a refused answer a case may explain the failure with library helpers; a
correct answer never takes that path.)"""
from __future__ import annotations

import pytest

from cnclip_edu.course import exercises as X
from cnclip_edu.course.grading import tripwires

IDS = [i for i in X.all_ids() if X.get(i).builds]


class Refused(Exception):
    """The stand-in answer was used."""


class StandIn:
    def __init__(self, armed: tripwires.Armed):
        self._armed, self.hits_before = armed, None

    def _refuse(self, what: str):
        if self.hits_before is None:
            self.hits_before = list(self._armed.hits)
        raise Refused(what)

    def __call__(self, *args, **kwargs):
        self._refuse("the stand-in answer was called")

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        self._refuse(f"the stand-in answer's .{name} was read")


@pytest.mark.parametrize("exercise_id", IDS)
def test_cases_do_not_trip_their_own_exercise(exercise_id):
    ex = X.get(exercise_id)
    cases = list(ex.run_cases()) + (list(ex.hidden(0)) if ex.hidden is not None else [])
    cases[0].run(ex.reference)  # as the student's own check cell did before grading: library caches warm
    tripped = []
    for case in cases:
        armed = tripwires.arm(tuple(ex.builds))
        answer = StandIn(armed)
        try:
            case.run(answer)
        except tripwires.Tripped:
            pass
        except Exception:  # noqa: BLE001 - Refused, or the case's own reaction to a broken answer
            pass
        finally:
            hits = list(armed.hits) if answer.hits_before is None else answer.hits_before
            armed.disarm()
        if hits:
            tripped.append(f"{case.label}: {hits[0]}")
    assert not tripped, f"{exercise_id}: its cases reach what it builds, so a correct answer would score 0: {tripped}"
