"""One entry point for every command: `cnclip-edu <command> [flags]` (or `python -m cnclip_edu`).

Each command lives in its own module and exposes `main(argv: list[str] | None) -> int | None`.
Flag names follow the cn_clip scripts, so their users can switch without relearning.
"""
from __future__ import annotations

import importlib
import sys

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
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"cnclip-edu: unknown command {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd][0])
    rc = module.main(rest)
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
