"""A notebook's parameters, checked where they enter: right after the `parameters` cell.

    from cnclip_edu.course import QUICK          # in the parameters cell: `max_steps = 40 if QUICK else 800`
    from cnclip_edu.course.parameters import check_parameters
    check_parameters(globals())                  # the next cell: one clear line, before any long work

Why here: a papermill run (`-p batch_size abc`, `-p max_steps -5`) used to fail minutes later, deep in
a torchrun log or a comparison cell. The rules are the command line's own (one source): a parameter
named like a `cnclip-edu train` / `extract-features` / `zeroshot` / `export` flag (`batch_size` ->
`--batch-size`) is checked by that flag's type, choices and `cli.InRange` range; the few that have no
flag (device, paths, step tuples) have their rule here. Unknown names are left alone.

`QUICK` is `CNCLIP_QUICK=1` (grading, the student-notebook tests): notebooks shrink their long runs with
`x = small if QUICK else big` — one `=` per line, which papermill can parse (a `==` on the line makes it
skip the parameter and warn "Passed unknown parameter" when it is overridden).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Iterable

QUICK: bool = os.environ.get("CNCLIP_QUICK") == "1"


class ParameterError(ValueError):
    """A notebook parameter has a value its rule refuses; the message names it, the value and the rule."""

    def _render_traceback_(self) -> list[str]:  # IPython: the one line, not our internals
        return [f"ParameterError: {self}"]


_PARSERS = ("cnclip_edu.train.params:build_parser", "cnclip_edu.eval.features:build_parser",
            "cnclip_edu.eval.topk:build_parser")
# notebook-only counts (no CLI flag): name -> smallest allowed integer
_COUNTS = {"nproc_per_node": 1, "manual_steps": 1, "manual_batch_size": 1, "extra_steps": 0, "n_corpus": 1,
           "n_parity": 1, "n_bench": 1, "bench_repeat": 1, "bench_warmup": 0, "max_batch": 1, "max_side": 16,
           "n_test_per_type": 1, "n_train_canvases": 1, "timing_gallery": 1, "embed_dim": 1, "threads": 1,
           "resolution": 16, "top_k": 1}
# parameters whose value may also be a model name for cc.load rather than a path
_MODEL_OR_PATH = {"resume", "model_name", "clip_model"}
_PATHS = {"data_dir", "photos_dir", "captions"}
# a parameter of this name that is also a CLI flag of another kind is not checked by that flag
_NOT_THE_FLAG = {"device", "resume", "data_dir", "name"}


def _flag_actions() -> dict[str, argparse.Action]:
    """dest -> the argparse action of the CLI flag, from every command whose flags notebooks share."""
    import importlib

    actions: dict[str, argparse.Action] = {}
    for spec in _PARSERS:
        module, func = spec.split(":")
        try:
            parser = getattr(importlib.import_module(module), func)()
        except (ImportError, AttributeError):  # a command without a parser function, or its extra missing
            continue
        for action in parser._actions:  # noqa: SLF001 - argparse has no public list of actions
            actions.setdefault(action.dest, action)
    return actions


def _fail(name: str, value: Any, rule: str) -> ParameterError:
    return ParameterError(f"参数 {name} = {value!r} 不可用：{rule} (parameter {name}: {rule}, got {value!r})")


def _check_flag(name: str, value: Any, action: argparse.Action) -> None:
    kind = action.type
    if value is None:
        return  # "not given": the notebook's own default applies
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and isinstance(value, float)):
            raise _fail(name, value, f"must be {'an integer' if kind is int else 'a number'}")
        rule = getattr(action, "ok", None)
        if rule is not None and not rule(value):
            raise _fail(name, value, f"must be {action.rule()}")
    if action.choices is not None and value not in action.choices:
        raise _fail(name, value, f"must be one of {list(action.choices)}")


def _check_device(value: Any) -> None:
    if not isinstance(value, str):
        raise _fail("device", value, "must be a string: 'cpu', 'cuda' or 'cuda:N'")
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        raise _fail("device", value, "must be 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise _fail("device", value, "needs a CUDA GPU, and torch sees none here (use device='cpu')")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise _fail("device", value, f"this machine has {torch.cuda.device_count()} GPU(s)")


def _check_path(name: str, value: Any, model_names: Iterable[str] = ()) -> None:
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise _fail(name, value, "must be a path (a string) or None")
    if str(value) in model_names:
        return
    if not Path(value).expanduser().exists():
        extra = f" or a model name ({', '.join(model_names)})" if model_names else ""
        raise _fail(name, value, f"must be an existing file or folder{extra}")


def check_parameters(namespace: dict[str, Any], names: Iterable[str] | None = None) -> None:
    """Check the notebook's parameters in `namespace` (the notebook passes `globals()`); raise one
    ParameterError for the first that its rule refuses. `names`: only these (default: every known one)."""
    actions = _flag_actions()
    wanted = set(names) if names is not None else set(namespace)
    for name in sorted(wanted):
        if name not in namespace or name.startswith("_"):
            continue
        value = namespace[name]
        if name == "device":
            _check_device(value)
        elif name in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < _COUNTS[name]:
                raise _fail(name, value, f"must be an integer >= {_COUNTS[name]}")
        elif name in ("vision_model", "text_model") and value is not None:
            from cnclip_edu.model.clip import text_model_names, vision_model_names

            known = vision_model_names() if name == "vision_model" else text_model_names()
            if value not in known:
                raise _fail(name, value, f"must be one of {known}")
        elif name in _MODEL_OR_PATH:
            from cnclip_edu.model.clip import available_models

            _check_path(name, value, ["course", *available_models()])
        elif name in _PATHS:
            _check_path(name, value)
        elif name in ("steps",) and isinstance(value, (tuple, list)):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value) or not any(value):
                raise _fail(name, value, "must be a tuple of integers >= 0, not all 0")
        elif name in actions and name not in _NOT_THE_FLAG:
            _check_flag(name, value, actions[name])
