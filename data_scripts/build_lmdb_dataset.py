"""Thin wrapper: `python data_scripts/build_lmdb_dataset.py ...` == `cnclip-edu build-lmdb ...` (see cnclip_edu/data/lmdb_build.py)."""
import sys

from cnclip_edu.cli import main

if __name__ == "__main__":
    sys.exit(main(["build-lmdb", *sys.argv[1:]]))
