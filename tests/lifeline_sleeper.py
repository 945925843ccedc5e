"""A stand-in torchrun worker for tests/test_lifeline.py: writes its pid, then waits to be stopped.

Like every worker module the course launches (cnclip_edu.train, cnclip_edu.train.ddp_demo) it dies with
torchrun: torchrun does not always stop its workers when it is itself killed (seen in about 1 of 5 runs:
both workers left running, reparented to init)."""
import os
import signal
import time
from pathlib import Path

from cnclip_edu.data.pool import die_with_parent

die_with_parent(signal.SIGTERM)

Path(os.environ["SLEEPER_DIR"], f"rank{os.environ.get('RANK', '0')}.pid").write_text(str(os.getpid()))
time.sleep(600)
