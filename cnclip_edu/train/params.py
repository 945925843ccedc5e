"""The flags of `cnclip-edu train`: cn_clip's names (`cn_clip/training/params.py`), underscore spellings
accepted too, so a cn_clip command line runs here unchanged. Values are checked here, before any
process group, model or dataset exists: a typo costs a second, not a torchrun start-up.
"""
from __future__ import annotations

import argparse

from cnclip_edu.cli import InRange

DESCRIPTION = "Contrastive training / finetuning of Chinese-CLIP, one process or under torchrun."

# cn_clip's per-backbone AdamW defaults (params.get_default_params); course sizes use the ViT ones.
_VIT_DEFAULTS = {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6}
_DEFAULTS = {"RN50": {"lr": 5.0e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1.0e-8},
             "ViT-L-14": {"lr": 4.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6},
             "ViT-L-14-336": {"lr": 4.0e-4, "beta1": 0.9, "beta2": 0.98, "eps": 1.0e-6}}


def _flag(parser: argparse.ArgumentParser, name: str, **kw) -> None:
    """Add `--a-b` together with cn_clip's / argparse's underscore spelling `--a_b`; a numeric flag
    with `lo` / `hi` (and `lo_open` / `hi_open`) is range-checked as it is parsed (`cli.InRange`)."""
    names = [name] + (["--" + name[2:].replace("-", "_")] if "-" in name[2:] else [])
    if kw.get("type") in (int, float):
        kw.setdefault("action", InRange)
    parser.add_argument(*names, **kw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cnclip-edu train", description=DESCRIPTION)
    f = lambda *a, **k: _flag(p, *a, **k)  # noqa: E731
    # data
    f("--train-data", required=True, help="LMDB folder of the training split (with imgs/ and pairs/)")
    f("--val-data", default=None, help="LMDB folder of the validation split; None disables validation")
    f("--num-workers", type=int, default=2, lo=0, help="DataLoader workers for training")
    f("--valid-num-workers", type=int, default=0, lo=0)
    f("--batch-size", type=int, default=64, lo=1, help="batch size per process")
    f("--valid-batch-size", type=int, default=64, lo=1, help="validation batch size per process")
    f("--context-length", type=int, default=52, lo=2, help="max text length incl. [CLS]/[SEP]")
    f("--use-augment", action="store_true", help="random augmentation of training images")
    # model
    f("--vision-model", default="ViT-B-16", help="ViT-B-16, ViT-L-14, ..., RN50, or the course size ViT-Course")
    f("--text-model", default=None, help="RoBERTa-wwm-ext-base-chinese, ..., RBT-Course; default: the vision "
      "model's released pairing (ViT-B-16: RoBERTa-wwm-ext-base-chinese, RN50: RBT3-chinese, ViT-Course: RBT-Course)")
    f("--resume", default=None, help="our checkpoint (full resume) or an official cn_clip .pt / model folder "
      "(weights only); default: <logs>/<name>/checkpoints/epoch_latest.pt if it exists")
    f("--reset-optimizer", action="store_true", help="on resume, start with a fresh optimizer")
    f("--reset-data-offset", action="store_true", help="on resume, start at step 0 of epoch 0")
    f("--freeze-vision", action="store_true", help="train the text tower only")
    f("--mask-ratio", type=float, default=0.0, lo=0, hi=1, hi_open=True,
      help="FLIP: drop this fraction of image patches (ViT)")
    f("--grad-checkpointing", action="store_true", help="recompute activations in backward (less memory)")
    # optimisation
    f("--lr", type=float, default=None, lo=0, lo_open=True)
    f("--beta1", type=float, default=None, lo=0, hi=1, hi_open=True)
    f("--beta2", type=float, default=None, lo=0, hi=1, hi_open=True)
    f("--eps", type=float, default=None, lo=0, lo_open=True)
    f("--wd", type=float, default=0.2, lo=0, help="weight decay (not on norms, biases, logit_scale)")
    f("--warmup", type=int, default=500, lo=0, help="linear warmup steps")
    f("--max-steps", type=int, default=None, lo=1, help="steps to train (wins over --max-epochs)")
    f("--max-epochs", type=int, default=32, lo=1)
    f("--accum-freq", type=int, default=1, lo=1, help="contrastive gradient accumulation over this many batches")
    f("--gather-with-grad", action="store_true", help="all-gather features with full gradient")
    f("--local-loss", action="store_true", help="loss rows for this rank's items only (O(B*N), not O(N*N))")
    f("--known-positives", action="store_true",
      help="identical captions / same image in a batch are positives, not negatives")
    f("--precision", choices=["amp", "fp16", "bf16", "fp32"], default=None,
      help="fp16/amp: fp16 autocast + GradScaler; bf16: bf16 autocast; default bf16 on CUDA, fp32 on CPU")
    f("--compile", action="store_true", help="torch.compile the model")
    # logging / checkpoints
    f("--logs", default="./logs/", help="output root; the run writes to <logs>/<name>/")
    f("--name", default="train_clip")
    f("--log-interval", type=int, default=10, lo=1, help="log every N steps")
    f("--valid-step-interval", type=int, default=None, lo=0, help="validate every N steps; 0: never")
    f("--valid-epoch-interval", type=int, default=1, lo=0, help="validate every N epochs; 0: never")
    f("--save-step-frequency", type=int, default=-1, help="checkpoint every N steps (step{N}.pt + latest); <= 0: never")
    f("--save-epoch-frequency", type=int, default=1, help="checkpoint every N epochs (epoch{N}.pt + latest); <= 0: never")
    f("--keep-step-checkpoints", action="store_true", help="keep step{N}.pt files (default: latest only)")
    # system
    f("--seed", type=int, default=123, lo=0, hi=2**32 - 1)
    f("--backend", default=None, help="torch.distributed backend; default nccl with CUDA, else gloo")
    f("--device", default=None, help="cpu / cuda; default cuda:LOCAL_RANK when CUDA is available")
    f("--dist-timeout", type=float, default=120.0, lo=0, lo_open=True,
      help="seconds before a collective gives up (rank failure)")
    f("--deterministic", action="store_true", help="deterministic kernels: a resumed run equals an uninterrupted one")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from cnclip_edu.model.clip import model_name_from_flags

    args = build_parser().parse_args(argv)
    try:  # a vision model alone means its released pairing
        args.vision_model, args.text_model = model_name_from_flags(args.vision_model, args.text_model).split("@", 1)
    except ValueError as e:
        raise SystemExit(f"cnclip-edu train: {e}") from None
    for k, v in _DEFAULTS.get(args.vision_model, _VIT_DEFAULTS).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args
