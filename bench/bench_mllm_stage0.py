"""Stage 0 alone: does the text-only decoder read the asked shape from a scene written in words?

    OMP_NUM_THREADS=1 python bench/bench_mllm_stage0.py '{"steps": [400, 0, 0], "n_text_binding": 6000}'

Trains only the recipe's stage 0 (the RecipeConfig with the JSON overrides, as bench_mllm_binding.py), then asks
the seen test questions about one shape (颜色, 形状, 大小, 位置) and the held-out shape questions about their canvases
written in words between <img> and </img>; prints accuracy by shapes on the canvas. Minutes instead of a whole run:
if the decoder cannot bind a question to one of several shapes written in words, images will not help it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import cnclip_edu as cc
from cnclip_edu.mllm import evaluate, recipe
from cnclip_edu.mllm import world as W
from cnclip_edu.mllm.train import train_stage

sys.path.insert(0, str(Path(__file__).parent))
from bench_mllm_binding import override  # noqa: E402


def read_scenes(model, world, samples) -> dict[int, float]:
    cvs = [world.test_canvases[s.canvas] for s in samples]
    replies = evaluate.answer_text(model, [W.caption(cv) for cv in cvs], [s.turns[0][0] for s in samples])
    hits: dict[int, list[bool]] = {}
    for s, r, cv in zip(samples, replies, cvs):
        hits.setdefault(len(cv.items), []).append(r == s.turns[0][1])
    return {n: round(sum(v) / len(v), 3) for n, v in sorted(hits.items())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("changes", nargs="?", default="{}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=0, help="print the one-shape reading every N steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clip, preprocess = cc.load("course")
    changes = json.loads(args.changes)
    cfg = override(recipe.RecipeConfig(seed=args.seed), changes)
    world = recipe.make_world(cfg)
    model, bank = recipe.build_model(cfg, world, clip.visual, preprocess)
    one = [s for s in world.test_questions if s.qtypes[0] in evaluate.ONE_SHAPE_QTYPES]

    class Curve:  # the same reading every `--every` steps
        def after_step(self, step, loss):
            if args.every and (step + 1) % args.every == 0:
                print(json.dumps({"step": step + 1, "one_shape_text": read_scenes(model, world, one)}), flush=True)
                model.train()

    t0 = time.perf_counter()
    train_stage(model, world.text_chats, bank, recipe.stages(cfg)[0], Curve())
    train_s = time.perf_counter() - t0
    out = {"changes": changes, "seed": args.seed, "stage0_s": round(train_s, 1),
           "one_shape_text": read_scenes(model, world, one),
           "heldout_shape_text": read_scenes(model, world, world.heldout_shape)}
    print(json.dumps(out, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
