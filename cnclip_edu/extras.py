"""Which optional install ("extra") brings which package, and the one-line hint when one is missing.

The base install (`pip install cnclip-edu`) is what loading, encoding, searching and converting
checkpoints need: torch, torchvision, numpy, pillow, safetensors, tqdm. Everything else comes with
an extra named after what the user wants to do, so that an engineer who only encodes images does
not pull Jupyter, matplotlib or an HTTP stack into a server image:

    pip install 'cnclip-edu[data]'     # LMDB datasets, build-lmdb, training data
    pip install 'cnclip-edu[hub]'      # downloading official weights / datasets
    pip install 'cnclip-edu[export]'   # ONNX export and ONNX Runtime
    pip install 'cnclip-edu[faiss]'    # faiss top-k
    pip install 'cnclip-edu[course]'   # the notebooks: course, student, grade, plots
"""
from __future__ import annotations

import importlib
from types import ModuleType

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
