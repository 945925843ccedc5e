"""Data: MUGE-format files, LMDB, datasets and transforms (see docs/formats.md)."""
