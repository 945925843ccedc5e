"""`cnclip-edu grade`: the grader lives in the `grading` package (one concept per module); this name
stays for the CLI and for `from cnclip_edu.course import grade`."""
from __future__ import annotations

import sys

from .grading import (DEFAULT_CELL_TIMEOUT_S, DEFAULT_TIMEOUT_S, ExerciseResult, StudentGrade,  # noqa: F401
                      find_submission, grade, main, read_submissions)

if __name__ == "__main__":
    sys.exit(main())
