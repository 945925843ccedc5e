"""Exercises of notebook 03 (the text tower and checkpoints); each part registers its own when imported:

- nb03_text_tower.py: BERT's embeddings, masked attention, one post-LN layer, `encode_text(model, tokens)`
  (03.1-03.4; default_device.py is 03.1's referee);
- nb03_clip.py: the two towers as CLIP, which tower lost the information (03.5, in part 5);
- nb03_checkpoint.py: loading an official cn_clip checkpoint, the key mapping (03.6) and the strict load
  (03.7; load_probes.py holds its referees);
- nb03_own_modules.py: one layer and then the whole text tower as the student's own modules (03.8, 03.9),
  and one layer's parameter count from a formula (03.10).

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb03_checkpoint, nb03_clip, nb03_own_modules, nb03_text_tower  # noqa: F401  (importing registers)
