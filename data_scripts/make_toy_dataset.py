"""Thin wrapper: `python data_scripts/make_toy_dataset.py ...` == `cnclip-edu toy-data ...` (see cnclip_edu/data/toy.py)."""
import sys

from cnclip_edu.cli import main

if __name__ == "__main__":
    sys.exit(main(["toy-data", *sys.argv[1:]]))
