"""Notebook 04's checked exercises: the symmetric InfoNCE loss (a capstone piece), gradient accumulation
with a feature cache, and what one rank computes when the batch is spread over W ranks (the default
gather of cn_clip, and open_clip's `local_loss`).

Every reference is the library's own code path (`ClipLoss`, `accumulated_step`, `replace_local_chunk`,
`contrastive_loss`), run on small fixed features (and, for grading, on features drawn from a seed);
the mutants are the slips a student makes. While an answer runs, the routines it builds are tripwires
(`tripwire.py`): an answer that only calls them is told so. Each part registers its own when imported:

- nb04_infonce.py: the symmetric InfoNCE loss `clip_loss` (04.1);
- nb04_accumulate.py: gradient accumulation with a feature cache (04.2);
- nb04_gather.py: one rank's loss on the gathered batch, its own slice keeping the gradient (04.3);
- nb04_local_loss.py: open_clip's `local_loss`, the rank's B rows against all W·B columns (04.4).

nb04_common.py holds the feature pairs they share. The references stay importable from here (the hidden
tests import `local_rank_loss` from this module), and 04.4's tripwire names it by this path. The registry
(`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb04_accumulate, nb04_gather, nb04_infonce, nb04_local_loss  # noqa: F401  (importing registers)
from .nb04_accumulate import feature_cache_step  # noqa: F401
from .nb04_gather import rank_loss  # noqa: F401
from .nb04_infonce import clip_loss  # noqa: F401
from .nb04_local_loss import local_rank_loss  # noqa: F401
