"""Notebook 07 (retrieval evaluation): the student writes the feature-extraction loop, cosine top-k, the
chunked top-k with a running merge (what lets exact retrieval scale past memory), Recall@K / mean recall,
and the inversion of the text -> image gold annotation that image -> text scoring needs. Each part
registers its own when imported:

- nb07_extract.py: the feature-extraction loop (07.0);
- nb07_topk.py: cosine top-k (07.1);
- nb07_chunked.py: the chunked top-k with a running merge (07.2; chunk_gallery.py holds its referees);
- nb07_recall.py: Recall@K and mean recall (07.3);
- nb07_invert.py: the gold annotation inverted, image -> text (07.4).

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb07_chunked, nb07_extract, nb07_invert, nb07_recall, nb07_topk  # noqa: F401  (importing registers)
