"""Notebook 10's checked exercises: your photos and captions file -> MUGE records; the converter assembled from 10.1 and 10.2;
a by-photo split; a split by group; a threshold; and, in the optional statistics appendix, a permutation test.
Each part registers its own when imported:

- nb10_records.py: the rows of a captions file -> `{split}_texts.jsonl` records (10.1);
- nb10_prepare.py: one photo file -> the base64 JPEG text of a `{split}_imgs.tsv` line (10.2);
- nb10_convert.py: the converter assembled from 10.1 and 10.2, every split's three files (10.3);
- nb10_split.py: the photos split into train / valid by photo (10.4);
- nb10_group.py: the photos split by group, same-scene photos kept together (10.5);
- nb10_threshold.py: the "nothing found" threshold of a search box, from validation results (10.6);
- nb10_chance.py: could a difference between two groups of captions be chance? (a permutation test, 10.7).

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb10_chance, nb10_convert, nb10_group, nb10_prepare, nb10_records, nb10_split, nb10_threshold  # noqa: F401  (importing registers)
