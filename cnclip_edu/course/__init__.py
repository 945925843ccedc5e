"""The course around the library: metrics the notebooks record, the runner that executes them,
the model they evaluate, the recipe of the shipped course model, and the exercises.

    metrics.py   record / load_metrics (`<work_dir>/metrics.json`)
    runner.py    `cnclip-edu course`: every notebook in order with papermill, then a summary
    models.py    which model notebooks 07-09 evaluate (finetuned > shipped > random)
    recipe.py    the course model's training recipe; `python -m cnclip_edu.course.recipe` retrains it
    terminal.py  run_cli: a notebook runs a `cnclip-edu` command and shows it as a terminal would (notebook 10)
    exercises/   the checked build-along exercises: `check("02.1", answer)`, one module per notebook
    student.py   `cnclip-edu student`: the student versions of the notebooks (solutions stubbed out)
    grading/     `cnclip-edu grade` (grade.py): re-run handed-in answers in sandboxed kernels, judge them here, write a CSV
    parameters.py  check_parameters(globals()) after a notebook's parameters cell; QUICK (CNCLIP_QUICK=1)
    pieces.py    %%my_clip: the student's build-along cells saved for the capstone
    timing.py    Laps / step_breakdown / per_item_medians: notebook 05's step-by-step timing of ds[i]
    columns.py   shown_width / left / right / yes: Chinese tables that line up when printed
"""
from .exercises import ExerciseFailed, ExerciseNotAttempted, check, passes  # noqa: F401
from .metrics import load_metrics, record  # noqa: F401
from .parameters import QUICK, check_parameters  # noqa: F401
