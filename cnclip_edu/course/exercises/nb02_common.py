"""What the parts of notebook 02's exercises share: the module path of the vision tower, from which each
part spells the dotted names of the routines its exercises build (`Exercise.builds`, the tripwires)."""
from __future__ import annotations

_VISION = "cnclip_edu.model.vision."
