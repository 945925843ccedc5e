"""A stand-in torchrun worker for tests/test_lifeline.py: writes its pid, then waits to be stopped."""
import os
import time
from pathlib import Path

Path(os.environ["SLEEPER_DIR"], f"rank{os.environ.get('RANK', '0')}.pid").write_text(str(os.getpid()))
time.sleep(600)
