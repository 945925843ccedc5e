"""pieces.load_all: the saved pieces run together, and what they define still works afterwards.

Run in a fresh interpreter: the failure this guards against (the pieces' globals losing __builtins__,
so that torch's first C-level import from inside a piece fails) only shows before anything else in
the process has called torch.tensor.
"""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from cnclip_edu.course import pieces
work = sys.argv[1]
pieces.save("01.5", "import torch\\n\\n\\ndef row(ids):\\n    return torch.tensor(ids)\\n", work)
pieces.save("01.4", "def encode(text, vocab):\\n    return [vocab[c] for c in text]\\n", work)
mine = pieces.load_all(work, needed=("01.4", "01.5"))
assert mine.row(mine.encode("ab", {"a": 1, "b": 2})).tolist() == [1, 2]
assert not hasattr(mine, "__builtins__")
print("ok")
"""


def test_loaded_piece_can_call_into_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
