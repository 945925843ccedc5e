"""`python -m cnclip_edu.train ...` (also what torchrun runs: `torchrun ... -m -- cnclip_edu.train`)."""
import sys

from cnclip_edu.train.trainer import main

sys.exit(main())
