"""The course's checked exercises (classroom mode): `check(id, answer)`, the registry, the outcomes.

`core.py` holds the mechanism; each `nbNN.py` registers the exercises of notebook NN (a large notebook's
`nbNN.py` imports its parts, `nbNN_<part>.py`, each registering its own; the registry imports only `nbNN`).
"""
from .core import (Case, Exercise, ExerciseFailed, ExerciseNotAttempted, all_ids, check, get,  # noqa: F401
                   passes, register)
