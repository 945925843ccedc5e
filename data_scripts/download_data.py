"""Thin wrapper: `python data_scripts/download_data.py ...` == `cnclip-edu download ...` (see cnclip_edu/data/download.py)."""
import sys

from cnclip_edu.cli import main

if __name__ == "__main__":
    sys.exit(main(["download", *sys.argv[1:]]))
