"""One entry point for every command: `cnclip-edu <command> [flags]` (or `python -m cnclip_edu`).

Each command lives in its own module and exposes `main(argv: list[str] | None) -> int | None`.
Flag names follow the cn_clip scripts, so their users can switch without relearning.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import signal
import sys
import threading
from types import ModuleType
from typing import Iterator

# ----------------------------------------------------------------------------- optional installs ("extras")
# The base install (`pip install cnclip-edu`) is what loading, encoding, searching and converting need:
# torch, torchvision, numpy, pillow, safetensors, tqdm. Everything else is an extra named after what the
# user wants to do ([data] LMDB, [hub] downloads, [export] ONNX, [faiss], [course] notebooks and classroom),
# so that an engineer who only encodes images pulls no Jupyter, matplotlib or HTTP stack into a server
# image; a command or function whose extra is missing says in one line which pip command to run.
# top-level module -> extra that installs it
EXTRA_OF: dict[str, str] = {
    "lmdb": "data",
    "huggingface_hub": "hub",
    "onnx": "export", "onnxscript": "export", "onnxruntime": "export",
    "faiss": "faiss",
    "matplotlib": "course", "papermill": "course", "nbformat": "course", "nbclient": "course",
    "ipykernel": "course", "ipywidgets": "course", "jieba": "course", "skimage": "course",
    "mplfonts": "course", "IPython": "course",
    "tensorrt": "gpu",
}


class MissingExtra(ModuleNotFoundError):
    """A package of an optional extra is not installed; the message is the pip command to run."""


def hint(module: str, what: str = "this") -> str:
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return f"{what} needs the package {top!r}, which is not installed"
    return f"{what} needs {top!r}: pip install 'cnclip-edu[{extra}]'"


def require(module: str, what: str = "this") -> ModuleType:
    """`import module`, or raise MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != module.split(".")[0]:
            raise  # something else is missing inside that package: not ours to rename
        raise MissingExtra(hint(module, what), name=exc.name) from None


def missing_extra_message(exc: ModuleNotFoundError, what: str) -> str | None:
    """The one-line hint for `exc` if it is a package of one of our extras, else None."""
    top = (exc.name or "").split(".")[0]
    return hint(top, what) if top in EXTRA_OF else None


# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "toy-data": ("cnclip_edu.data.toy", "generate the toy world of coloured shapes (MUGE format + zero-shot folders)"),
    "build-lmdb": ("cnclip_edu.data.lmdb_build", "validate a MUGE-format dataset and build its LMDB"),
    "convert": ("cnclip_edu.data.convert", "convert your images + captions (or class folders) into MUGE / zero-shot layout"),
    "download": ("cnclip_edu.data.download", "download MUGE / Flickr30K-CN / ELEVATER data (needs network)"),
    "train": ("cnclip_edu.train.trainer", "contrastive training / finetuning (one process or under torchrun)"),
    "extract-features": ("cnclip_edu.eval.features", "encode images / texts into feature files"),
    "topk": ("cnclip_edu.eval.topk", "top-k retrieval from feature files (torch or faiss)"),
    "recall": ("cnclip_edu.eval.recall", "Recall@1/5/10, mean recall and MR from predictions"),
    "zeroshot": ("cnclip_edu.eval.zeroshot", "zero-shot classification on a label_cn.txt + test/ folder"),
    "export": ("cnclip_edu.deploy.export", "export the image and text towers to ONNX (dynamic batch)"),
    "course": ("cnclip_edu.course.runner", "run every notebook in order with papermill and print a summary"),
    "student": ("cnclip_edu.course.student", "write the student versions of the notebooks (solutions stubbed out)"),
    "grade": ("cnclip_edu.course.grade", "run each student's handed-in notebooks and write their points to a CSV"),
}


class InRange(argparse.Action):
    """A numeric flag checked as it is parsed, before anything is loaded or started:

        p.add_argument("--lr", type=float, action=InRange, lo=0, lo_open=True)   # > 0
        p.add_argument("--workers", type=int, action=InRange, lo=0)              # >= 0

    Out of range (NaN and infinities included) exits like any argparse error, with code 2 and
    one line naming the command and the flag as typed: `cnclip-edu train: --lr must be > 0, got -1.0`.
    """

    def __init__(self, option_strings, dest, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False, hi_open: bool = False, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open

    def rule(self) -> str:
        lo = None if self.lo is None else f"{'>' if self.lo_open else '>='} {self.lo}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='} {self.hi}"
        if lo and hi:
            return f"in {'(' if self.lo_open else '['}{self.lo}, {self.hi}{')' if self.hi_open else ']'}"
        return lo or hi or "a finite number"

    def ok(self, v: float) -> bool:
        return (math.isfinite(v)
                and (self.lo is None or (v > self.lo if self.lo_open else v >= self.lo))
                and (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)))

    def __call__(self, parser, namespace, values, option_string=None):
        if not self.ok(values):
            parser.exit(2, f"{parser.prog}: {option_string} must be {self.rule()}, got {values}\n")
        setattr(namespace, self.dest, values)


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: the clean-up written for Ctrl-C (`finally`, `except BaseException`:
    temporary files removed, worker processes stopped) runs for `kill` / a batch scheduler too."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: cnclip-edu <command> [options]", "", "commands:"]
    lines += [f"  {c.ljust(width)}  {h}" for c, (_, h) in COMMANDS.items()]
    lines += ["", "Run `cnclip-edu <command> --help` for a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"cnclip-edu {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"cnclip-edu: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[cmd][0])
        with sigterm_raises():
            rc = module.main(rest)
    except ModuleNotFoundError as exc:  # an optional extra that is not installed: one line, the pip command
        message = missing_extra_message(exc, f"cnclip-edu {cmd}")
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM, after the command's own clean-up ran
        signum = getattr(e, "signum", signal.SIGINT)
        if not getattr(e, "reported", False):  # a command that said what it stopped needs no second line
            print(f"cnclip-edu {cmd}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
