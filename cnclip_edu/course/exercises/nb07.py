"""Notebook 07 (retrieval evaluation): the student writes the feature-extraction loop, cosine top-k, the
chunked top-k with a running merge (what lets exact retrieval scale past memory), Recall@K / mean recall,
the inversion of the text -> image gold annotation that image -> text scoring needs, the whole
evaluation joined from those pieces, the classifier that says why a top-1 missed (the failure reading of part 4), and a minimal IVF search (part 6). Each part
registers its own when imported:

- nb07_extract.py: the feature-extraction loop (07.0);
- nb07_topk.py: cosine top-k (07.1);
- nb07_chunked.py: the chunked top-k with a running merge (07.2; chunk_gallery.py holds its referees);
- nb07_recall.py: Recall@K and mean recall (07.3);
- nb07_invert.py: the gold annotation inverted, image -> text (07.4);
- nb07_glue.py: the pieces joined, features to cn_clip's score object (07.5).
- nb07_diagnose.py: why a top-1 missed, A / B1 / B2 / C / D (07.6);
- nb07_ivf.py: a minimal IVF search, the approximate index of part 6 (07.7);

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb07_chunked, nb07_diagnose, nb07_extract, nb07_glue, nb07_invert, nb07_ivf, nb07_recall, nb07_topk  # noqa: F401  (importing registers)
