"""Thin wrapper: `python data_scripts/convert_dataset.py ...` == `cnclip-edu convert ...` (see cnclip_edu/data/convert.py)."""
import sys

from cnclip_edu.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
