"""Exercises of notebook 05 (data: TSV, LMDB, a worker-safe Dataset, the capstone); each part registers its
own when imported:

- nb05_tsv_line.py: read one line of a `{split}_imgs.tsv` strictly (05.1);
- nb05_lmdb_writer.py: write cn_clip's LMDB layout by hand (05.2);
- nb05_dataset.py: a Dataset that is safe under DataLoader workers, a capstone piece (05.3);
- nb05_capstone.py: the capstone, the student's own tokenizer, towers, loss and Dataset in one training
  step (05.4, `capstone.py`).

References are the library's own code (`formats.decode_b64` / `open_image`, `lmdb_build.build_lmdb`,
`dataset.LMDBDataset`) run, for every case, on a tiny dataset written in a temporary folder
(nb05_tiny_data.py). The registry (`core._load_all`) imports only the `nbNN` modules: this one is the
notebook's entry.
"""
from . import nb05_capstone, nb05_dataset, nb05_lmdb_writer, nb05_tsv_line  # noqa: F401  (importing registers)
