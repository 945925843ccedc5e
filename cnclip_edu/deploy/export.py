"""Export the image and text towers to ONNX (dynamic batch and caption length), and run them with ONNX Runtime.

    cnclip-edu export --resume runs/course/experiments/course/final --save-dir deploy/          # fp32
    cnclip-edu export --resume runs/course/experiments/course/final --save-dir deploy/ --int8   # CPU int8
    cnclip-edu export --vision-model ViT-B-16 --resume clip_cn_vit-b-16.pt --save-dir deploy/ --fp16

    image_onnx, text_onnx = export_onnx(model, "deploy/")          # deploy/course.img.fp32.onnx, .txt.
    image_q, text_q = export_onnx(model, "deploy/", int8=True)      # deploy/course.img.int8.onnx, .txt.
    enc = OnnxEncoder(image_onnx, text_onnx)                        # TensorRT EP > CUDA EP > CPU
    enc.encode_image(images)  # (B, 3, R, R) float -> (B, E);  enc.encode_text(tokens)  # (B, L) int -> (B, E)

Like cn_clip's deploy scripts, each tower is its own graph, so a search service can load only the
text side. Unlike them, the batch axis is dynamic: one file serves batch 1 and batch 1024; and the
text graph's sequence axis is dynamic too, so the runner can cut the padding off a batch of short
captions (onnx_runner.trim_padding) instead of computing all 52 positions. We use the dynamo
exporter (`torch.onnx.export(..., dynamo=True)`), which tracks batch and length as symbolic
dimensions; the legacy tracer records the example's shapes, and any shape the code turns into a
Python int becomes a constant without a word (then another batch can give wrong results silently).
We check that the exported inputs really have symbolic axes.

Three precisions: fp32 (the portable graph: any ONNX runtime, TensorRT), fp16 (GPUs), int8
(dynamic quantisation for ONNX Runtime on the CPU, built from the ORT-optimised graph; see
optimize.py). `optimize=True` also saves the fp32 graph as ONNX Runtime optimised it
(`*.fp32.ort.onnx`: fused operators, ONNX Runtime only).

Files are self-contained: the normalization, resolution, context length, embed dim and precision
travel in the ONNX `metadata_props`, so a runner needs nothing but the file. Weights are stored
inside the file, except for towers over ~2 GB (protobuf's limit), whose weights go into
`<file>.data` beside it (a relative name: move both together).

fp16 files keep float32 inputs and outputs (casts at the graph's edges, like cn_clip's
`keep_io_types=True`): the same preprocessed images and the same code feed fp32 and fp16 files;
text input is int64 token ids in both.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from cnclip_edu import fileio
from cnclip_edu.data.transforms import CLIP_MEAN, CLIP_STD
from .onnx_runner import (OnnxEncoder, check_image_input, check_text_input, default_providers,  # noqa: F401
                          read_metadata, trim_padding, trimmed_length)
from .optimize import ort_optimize, to_int8  # noqa: F401

PRODUCER = "cnclip_edu"
EXTERNAL_DATA_BYTES = 1_800_000_000  # keep well below protobuf's 2 GiB, the graph needs room too
IMAGE_INPUT, TEXT_INPUT = "image", "text"
IMAGE_OUTPUT, TEXT_OUTPUT = "image_features", "text_features"  # unnormalized, as the PyTorch model
_DEBUG_KEYS = ("pkg.torch.onnx.stack_trace",)  # node metadata holding absolute source paths


# ----------------------------------------------------------------------------- export
class Tower(nn.Module):
    """One tower of a CLIP as a module with a single tensor input `x` (what the exporter traces)."""

    def __init__(self, model: nn.Module, kind: str):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the dense text path: the unpadded one has data-dependent shapes (nonzero); we keep the graph's shapes
        # a function of the input shapes only (TensorRT profiles, fixed-size buffers) and trim padding outside
        return self.model.encode_image(x) if self.kind == "image" else self.model.encode_text(x, unpad=False)


def _model_info(model: nn.Module) -> dict[str, Any]:
    """What a runner needs, read from the model (works for any object with the CLIP interface)."""
    cfg = getattr(model, "config", None)
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    vision = d.get("vision_model") or getattr(cfg, "vision_model", None) or "unknown"
    text = d.get("text_model") or getattr(cfg, "text_model", None) or "unknown"
    name = d.get("name") or getattr(cfg, "name", None) or f"{vision}@{text}"
    return {
        "model_name": str(name), "vision_model": str(vision), "text_model": str(text),
        "image_resolution": int(model.image_resolution), "context_length": int(model.context_length),
        "vocab_size": int(d.get("vocab_size", 0)) or None, "config": d,
    }


def file_prefix(model_name: str) -> str:
    """'ViT-B-16@RoBERTa-wwm-ext-base-chinese' -> 'vit-b-16', 'ViT-Course@RBT-Course' -> 'course' (cn_clip's naming)."""
    from cnclip_edu.model.clip import ALIASES

    short = {full: alias for alias, full in ALIASES.items()}.get(model_name, model_name.split("@")[0])
    return short.replace("/", "-").lower() or "model"


def _example_input(kind: str, info: dict[str, Any]) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "image":
        r = info["image_resolution"]
        return torch.randn(2, 3, r, r, generator=g)  # (2, 3, R, R): batch 2, so 1 is not special-cased
    L = info["context_length"]
    hi = min(7992, info["vocab_size"] or 7992)
    ids = torch.randint(min(672, hi // 2), hi, (2, L), generator=g)  # ordinary CJK ids of the vocab
    ids[:, 0], ids[0, 5], ids[0, 6:], ids[1, L - 1] = 101, 102, 0, 102  # [CLS] ... [SEP] [PAD]...
    return ids  # (2, L) int64


def _metadata(kind: str, info: dict[str, Any], precision: str, embed_dim: int, opset: int) -> dict[str, str]:
    md = {
        "producer": PRODUCER, "tower": kind, "model_name": info["model_name"],
        "vision_model": info["vision_model"], "text_model": info["text_model"],
        "embed_dim": str(embed_dim), "precision": precision, "opset": str(opset),
        "input_name": IMAGE_INPUT if kind == "image" else TEXT_INPUT,
        "output_name": IMAGE_OUTPUT if kind == "image" else TEXT_OUTPUT,
        "features": "unnormalized (L2-normalize before cosine similarity)",
    }
    if kind == "image":
        md.update(image_resolution=str(info["image_resolution"]), input_dtype="float32",
                  input_layout="(batch, 3, R, R), RGB, resized to R x R (bicubic), scaled to [0, 1], normalized",
                  image_mean=json.dumps(list(CLIP_MEAN)), image_std=json.dumps(list(CLIP_STD)))
    else:
        md.update(context_length=str(info["context_length"]), input_dtype="int64", pad_id="0",
                  input_layout="(batch, L) BERT ids, L <= context_length: [CLS] ... [SEP] then [PAD]=0 (cc.tokenize); "
                               "trailing all-[PAD] columns may be cut off (same features)")
        if info["vocab_size"]:
            md["vocab_size"] = str(info["vocab_size"])
    return md


def export_program(tower: nn.Module, kind: str, example: torch.Tensor, opset: int | None = None,
                   dynamic_length: bool = True):
    """`torch.onnx.export` of one tower (dynamo): batch axis symbolic, and for text the length (1..L) too."""
    name_in, name_out = (IMAGE_INPUT, IMAGE_OUTPUT) if kind == "image" else (TEXT_INPUT, TEXT_OUTPUT)
    dims = {0: torch.export.Dim("batch", min=1, max=65536)}
    if kind == "text" and dynamic_length:
        dims[1] = torch.export.Dim("length", min=1, max=int(example.shape[1]))  # never above the context length
    return torch.onnx.export(
        tower, (example,), dynamo=True, input_names=[name_in], output_names=[name_out],
        dynamic_shapes={"x": dims}, opset_version=opset, optimize=True, verbose=False,
    )


def convert_to_fp16(proto):
    """fp32 graph -> fp16 weights and compute, float32 inputs/outputs kept (casts at the edges).

    ONNX Runtime's converter clips constants to the fp16 range (the text tower's padding bias
    of -3.4e38 becomes -65504, still "minus infinity" after softmax) and keeps ops without fp16
    kernels in fp32. It appends the input casts at the end of the node list, so we re-sort the graph
    topologically, as the ONNX checker requires.
    """
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=True)
    model = ir.serde.deserialize_model(proto)
    model.graph.sort()
    return ir.serde.serialize_model(model)


def _strip_debug(proto) -> None:
    """Drop the exporter's per-node stack traces: they embed absolute paths of the exporting machine."""
    for node in proto.graph.node:
        keep = [p for p in node.metadata_props if p.key not in _DEBUG_KEYS]
        del node.metadata_props[:]
        node.metadata_props.extend(keep)
        node.doc_string = ""


def _save_proto(proto, path: Path, metadata: dict[str, str]) -> None:
    """Write `proto` to `path` with `metadata`; weights in `<name>.data` only when the file would be too big."""
    import onnx

    _strip_debug(proto)
    old = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    for k, v in {**old, **metadata}.items():
        proto.metadata_props.add(key=k, value=v)
    weight_bytes = sum(len(t.raw_data) for t in proto.graph.initializer)
    big = weight_bytes > EXTERNAL_DATA_BYTES
    onnx.save_model(proto, str(path), save_as_external_data=big, all_tensors_to_one_file=True,
                    location=path.name + ".data" if big else None, size_threshold=1024)


def export_onnx(model: nn.Module, out_dir: str | os.PathLike, fp16: bool = False, opset: int | None = None,
                towers: Sequence[str] = ("image", "text"), prefix: str | None = None, check: bool = True,
                int8: bool = False, optimize: bool = False, dynamic_length: bool = True,
                text_exporter: Callable | None = None) -> tuple[str | None, str | None]:
    """Export `model`'s image and text towers to `<out_dir>/<prefix>.{img,txt}.<precision>.onnx`.

    precision: fp32 by default; `fp16=True` fp16 weights (GPUs); `int8=True` dynamic int8 for ONNX
    Runtime on the CPU (optimize.to_int8, from the ORT-optimised graph); `optimize=True` (fp32 only)
    the ORT-optimised fp32 graph, `*.fp32.ort.onnx`. `dynamic_length=False` fixes the text graph's
    length at the context length (for runtimes that need static shapes).

    `text_exporter(tower, example, path, context_length)`, if given, writes the text graph instead of
    `export_program` (notebook 09 passes the student's exercise 09.1 answer once it is right); the file
    it writes then gets the same axis check, metadata and conversions as the library's own.

    Returns (image_path, text_path); a tower not in `towers` gives None. The model is not changed
    (a float32 CPU copy is exported when it lives elsewhere). Files appear atomically: they are written
    in a temporary folder next to `out_dir`'s files and renamed into place when complete.
    """
    from cnclip_edu.cli import require

    onnx = require("onnx", "ONNX export")
    towers_needed = [f"encode_{'image' if t == 'image' else 'text'}" for t in towers]
    if not isinstance(model, nn.Module) or not all(hasattr(model, m) for m in towers_needed):
        hint = " (a name or path: load it first, model, _ = cc.load(...))" if isinstance(model, (str, os.PathLike)) else ""
        raise TypeError(f"model must be a cnclip_edu CLIP (a module with {' and '.join(towers_needed)}), "
                        f"got {type(model).__name__}{hint}")
    bad = set(towers) - {"image", "text"}
    if bad or not towers:
        raise ValueError(f"towers must be a non-empty subset of ('image', 'text'), got {tuple(towers)}")
    if fp16 and (int8 or optimize):
        raise ValueError("fp16 is for GPUs; int8 and optimize are ONNX Runtime CPU formats built from fp32: pick one")
    info = _model_info(model)
    p = next(iter(model.parameters()), None)
    src = model if p is None or (p.dtype == torch.float32 and p.device.type == "cpu") else None
    if src is None:
        import copy

        src = copy.deepcopy(model).float().cpu()
    was_training = src.training
    src.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    precision = "fp16" if fp16 else "fp32"
    prefix = prefix or file_prefix(info["model_name"])
    paths: dict[str, str | None] = {"image": None, "text": None}
    tmp = fileio.make_temp_dir(out / "export")
    try:
        for kind in ("image", "text"):
            if kind not in towers:
                continue
            example = _example_input(kind, info)
            tower = Tower(src, kind).eval()
            with torch.no_grad():
                embed_dim = int(tower(example).shape[-1])
            if kind == "text" and text_exporter is not None:
                text_exporter(tower, example, str(tmp / "exported.onnx"), int(example.shape[1]))
                proto = onnx.load(str(tmp / "exported.onnx"))
            else:
                proto = export_program(tower, kind, example, opset, dynamic_length).model_proto
            _check_symbolic_axes(proto, kind, dynamic_length)
            used_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
            if fp16:
                proto = convert_to_fp16(proto)
            stem = f"{prefix}.{'img' if kind == 'image' else 'txt'}"
            name = f"{stem}.{precision}.onnx"
            _save_proto(proto, tmp / name, _metadata(kind, info, precision, embed_dim, used_opset))
            if check:
                onnx.checker.check_model(str(tmp / name), full_check=True)
            if int8:
                name = Path(to_int8(tmp / name, tmp / f"{stem}.int8.onnx")).name
            elif optimize:
                name = Path(ort_optimize(tmp / name)).name
            data = tmp / (name + ".data")
            stale = out / (name + ".data")
            if data.exists():
                os.replace(data, stale)
            elif stale.exists():
                stale.unlink()  # an earlier, bigger export left weights this file no longer uses
            os.replace(tmp / name, out / name)
            paths[kind] = str(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        src.train(was_training)
    return paths["image"], paths["text"]


def _check_symbolic_axes(proto, kind: str, dynamic_length: bool) -> None:
    """Refuse a graph whose batch (or text length) axis came out as a constant."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if not dims[0].dim_param:
        raise RuntimeError(f"exporting the {kind} tower fixed the batch axis to {dims[0].dim_value}: the model's "
                           f"code turns the batch size into a constant (e.g. int(x.shape[0]))")
    if kind == "text" and dynamic_length and not dims[1].dim_param:
        raise RuntimeError(f"exporting the text tower fixed the length axis to {dims[1].dim_value}: the model's "
                           f"code turns the caption length into a constant (e.g. int(x.shape[1]))")


def to_fp16(onnx_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> str:
    """Convert an exported fp32 file to fp16 (cn_clip's deploy step); `x.fp32.onnx` -> `x.fp16.onnx`."""
    import onnx

    src = Path(onnx_path)
    meta = read_metadata(src)
    if meta.get("precision") != "fp32":
        raise ValueError(f"{src}: expected an fp32 export (metadata precision=fp32), got {meta.get('precision')!r}")
    dst = Path(out_path) if out_path else src.with_name(src.name.replace(".fp32.onnx", ".fp16.onnx"))
    if dst.resolve() == src.resolve():
        raise ValueError(f"{src}: give an out_path (the name has no '.fp32.onnx' to replace)")
    proto = convert_to_fp16(onnx.load(str(src)))
    tmp = fileio.make_temp_dir(dst.parent / "export")
    try:
        _save_proto(proto, tmp / dst.name, {**meta, "precision": "fp16"})
        onnx.checker.check_model(str(tmp / dst.name), full_check=True)
        if (tmp / (dst.name + ".data")).exists():
            os.replace(tmp / (dst.name + ".data"), dst.parent / (dst.name + ".data"))
        os.replace(tmp / dst.name, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(dst)


# ----------------------------------------------------------------------------- inspection
def describe_graph(path: str | os.PathLike) -> dict[str, Any]:
    """Inputs/outputs with their (symbolic) shapes and types, opset, node-type counts, metadata."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)

    def io(v) -> dict[str, Any]:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    return {
        "inputs": [io(v) for v in proto.graph.input], "outputs": [io(v) for v in proto.graph.output],
        "opset": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "node_types": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        "num_nodes": len(proto.graph.node),
        "num_weights": int(sum(np.prod(t.dims) for t in proto.graph.initializer)),
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }


# ----------------------------------------------------------------------------- CLI
def _load_model(args: argparse.Namespace) -> nn.Module:
    import cnclip_edu as cc
    from cnclip_edu.model.clip import model_name_from_flags, released_name

    name = None
    if args.vision_model or args.text_model:
        try:
            name = model_name_from_flags(args.vision_model, args.text_model)
        except ValueError as e:
            raise SystemExit(f"cnclip-edu export: {e}") from None
    if args.resume is None:
        if name is None:
            raise SystemExit("cnclip-edu export: give --resume CKPT, or a model name (--vision-model ViT-B-16)")
        short = released_name(name)
        if short is None:
            raise SystemExit(f"cnclip-edu export: no released weights for {name}: give --resume CKPT")
        model, _ = cc.load(short, device="cpu", download_root=args.download_root)
        return model
    path = Path(args.resume)
    if not path.exists() and name is None:  # a model name, as every --resume takes: 'course', 'ViT-B-16', ...
        try:
            model, _ = cc.load(args.resume, device="cpu", download_root=args.download_root)
        except FileNotFoundError as e:
            raise SystemExit(f"cnclip-edu export: checkpoint not found: {e}") from None
        return model
    if not path.exists():
        raise SystemExit(f"cnclip-edu export: checkpoint not found: {path}")
    if name is None:  # our checkpoints and HF folders name their own architecture
        model, _ = cc.load(str(path), device="cpu")
        return model
    model = cc.create_model(name)
    state = cc.checkpoint.load_state_dict_any(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"cnclip-edu export: {path} does not fit {name}: missing {list(missing)[:5]}, "
                         f"unexpected {list(unexpected)[:5]}")
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cnclip-edu export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--resume", "--pytorch-ckpt-path", "--pytorch_ckpt_path", default=None,
                    help="checkpoint: cn_clip .pt, HF folder or ours (default: download the released weights)")
    ap.add_argument("--vision-model", "--vision_model", "--model-arch", "--model_arch", default=None,
                    help="e.g. ViT-B-16, RN50, ViT-Course (alone: its released pairing)")
    ap.add_argument("--text-model", "--text_model", default=None, help="e.g. RoBERTa-wwm-ext-base-chinese")
    ap.add_argument("--save-dir", "--save_dir", default=None, help="output folder")
    ap.add_argument("--save-onnx-path", "--save_onnx_path", default=None,
                    help="cn_clip style path prefix: writes PREFIX.img.fp32.onnx etc.")
    ap.add_argument("--convert-image", "--convert_image", "--convert-vision", "--convert_vision",
                    action="store_true", help="export the image tower (default: both towers)")
    ap.add_argument("--convert-text", "--convert_text", action="store_true", help="export the text tower")
    ap.add_argument("--fp16", action="store_true", help="fp16 weights (float32 inputs/outputs kept; for GPUs)")
    ap.add_argument("--int8", action="store_true",
                    help="dynamic int8 weights for ONNX Runtime on the CPU (*.int8.onnx; measure the accuracy cost)")
    ap.add_argument("--ort-optimize", "--ort_optimize", action="store_true",
                    help="save the fp32 graph as ONNX Runtime optimised it (*.fp32.ort.onnx; ONNX Runtime only)")
    ap.add_argument("--static-length", "--static_length", action="store_true",
                    help="fix the text graph's length at the context length (default: dynamic, padding trimmed)")
    ap.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    ap.add_argument("--download-root", "--download_root", default=None)
    args = ap.parse_args(argv)
    if args.save_onnx_path:
        prefix_path = Path(args.save_onnx_path)
        out_dir, prefix = prefix_path.parent, prefix_path.name
    elif args.save_dir:
        out_dir, prefix = Path(args.save_dir), None
    else:
        ap.error("give --save-dir DIR (or cn_clip's --save-onnx-path PREFIX)")
    if args.fp16 and (args.int8 or args.ort_optimize):
        ap.error("--fp16 is for GPUs; --int8 / --ort-optimize are ONNX Runtime CPU formats: pick one")
    towers = [t for t, on in (("image", args.convert_image), ("text", args.convert_text)) if on] or ["image", "text"]
    model = _load_model(args)
    image_path, text_path = export_onnx(model, out_dir, fp16=args.fp16, opset=args.opset, towers=towers,
                                        prefix=prefix, int8=args.int8, optimize=args.ort_optimize,
                                        dynamic_length=not args.static_length)
    for kind, path in (("image", image_path), ("text", text_path)):
        if path:
            g = describe_graph(path)
            print(f"{kind:5s} -> {path}  inputs {[(i['name'], i['dtype'], i['shape']) for i in g['inputs']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
