"""`python -m cnclip_edu.train ...` (also what torchrun runs: `torchrun ... -m -- cnclip_edu.train`)."""
import os
import signal
import sys

from cnclip_edu.data.pool import die_with_parent
from cnclip_edu.train.trainer import main

if "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
    # a torchrun worker: if torchrun itself is killed outright (it cannot stop us then), stop too
    die_with_parent(signal.SIGTERM)
sys.exit(main())
