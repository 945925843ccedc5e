"""Notebook 11's ablations, recorded: the full recipe and variants with one field changed, from one stage-0 decoder.

    OMP_NUM_THREADS=1 python bench/bench_mllm_ablations.py                          # seed 0: full, last ViT layer
    OMP_NUM_THREADS=1 python bench/bench_mllm_ablations.py --variants full no_stage1 thumbnail --seeds 1

Exactly what notebook 11's `run_ablations` cell does: stage 0 (the text-only decoder) is trained once per
seed, then every variant builds a fresh model, loads that decoder and trains stages 1 and 2 (`recipe.run_stages`
with `decoder_state`), so a row differs from the full recipe in its one changed field only. Each variant is a
full training of stages 1 and 2 (minutes on a CPU core). Writes the section `mllm-ablations` of
docs/benchmarks.md (one row per seed and variant, with the command, commit, machine and threads); notebook 11
reads and prints that section.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import git_rev, machine_info, markdown_table, write_section  # noqa: E402
import cnclip_edu as cc  # noqa: E402
from cnclip_edu.mllm import evaluate, recipe  # noqa: E402
from cnclip_edu.mllm.train import train_stage  # noqa: E402

SECTION = "mllm-ablations"
# name -> (label printed in notebook 11, the one field changed)
VARIANTS = {
    "full": ("完整配方", lambda c: c),
    "last_layer": ("读最后一层", lambda c: replace(c, vlm=replace(c.vlm, select_layer=-1))),
    "no_stage1": ("没有阶段 1", lambda c: replace(c, skip_stage1=True)),
    "thumbnail": ("只用缩略图", lambda c: replace(c, vlm=replace(c.vlm, max_num=1))),
    "train_vit": ("ViT 也训练", lambda c: replace(c, train_vit=True)),
}
COLUMNS = ["seed", "variant", "颜色", "形状", "数量", "见过的全部", "held-out 形状", "held-out 形状 不带图",
           "held-out 1 个图形", "held-out 2-3 个图形", "描述 exact", "阶段 1+2 s"]


def run_seed(seed: int, names: list[str], clip, preprocess, steps=None, canvases=None) -> list[list[object]]:
    cfg = recipe.RecipeConfig(seed=seed)
    if steps:  # a smoke test: fewer steps / canvases (the recorded command shows it)
        cfg = replace(cfg, steps=tuple(steps), n_train_canvases=canvases or cfg.n_train_canvases)
    world = recipe.make_world(cfg)
    model, bank = recipe.build_model(cfg, world, clip.visual, preprocess)
    train_stage(model, world.text_chats, bank, recipe.stages(cfg)[0])          # stage 0, shared by every variant
    decoder0 = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    rows = []
    for name in names:
        label, change = VARIANTS[name]
        vc = change(cfg)
        m, b = recipe.build_model(vc, world, clip.visual, preprocess)
        t0 = time.perf_counter()
        recipe.run_stages(m, world, b, vc, decoder_state=decoder0)
        train_s = time.perf_counter() - t0
        tb = recipe.eval_bank(m, world, preprocess, vc)
        seen = evaluate.accuracy_by_type(world.test_questions, evaluate.ask_single(m, tb, world.test_questions))
        held = evaluate.ask_single(m, tb, world.heldout_shape)
        held_text = evaluate.ask_single(m, tb, world.heldout_shape, "text_only")
        by = evaluate.accuracy_by_shapes(world.heldout_shape, held, world.test_canvases)
        one = [h for (_, n), h in by.items() if n == 1]
        many = [h for (_, n), h in by.items() if n >= 2]
        many_acc = sum(a * c for a, c in many) / max(1, sum(c for _, c in many))
        caps = evaluate.describe(m, tb, world.caption_ids)
        cap = evaluate.caption_scores([world.test_canvases[i] for i in world.caption_ids], caps)
        row = [seed, label, seen["颜色"], seen["形状"], seen["数量"], seen["全部"],
               evaluate.accuracy_by_type(world.heldout_shape, held)["全部"],
               evaluate.accuracy_by_type(world.heldout_shape, held_text)["全部"],
               one[0][0] if one else float("nan"), many_acc, cap.exact_match, round(train_s)]
        print(dict(zip(COLUMNS, row)), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=["full", "last_layer"], choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, nargs=3, help="smoke test only: steps of stages 0, 1, 2")
    ap.add_argument("--canvases", type=int, help="smoke test only: training canvases")
    ap.add_argument("--no-write", action="store_true", help="print only, leave docs/benchmarks.md alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rev = git_rev()  # the code this run imports (HEAD may move while it trains)
    clip, preprocess = cc.load("course")
    clip.eval()
    rows = []
    for seed in args.seeds:
        rows += run_seed(seed, args.variants, clip, preprocess, args.steps, args.canvases)
    fmt = [[f"{v:.3f}" if isinstance(v, float) else v for v in r] for r in rows]
    cmd = "OMP_NUM_THREADS=1 python bench/bench_mllm_ablations.py " + " ".join(sys.argv[1:])
    md = (f"## mllm-ablations: notebook 11's recipe with one field changed\n\n"
          f"Command: `{cmd.strip()}` at commit {rev}, {time.strftime('%Y-%m-%d', time.gmtime())}.  \n"
          f"Machine: {machine_info()}.\n\n"
          "Every variant of a seed starts from the same stage-0 decoder and trains stages 1 and 2 again "
          "(RecipeConfig defaults: 3000 canvases, 200 + 100 + 900 steps). Accuracies are exact match; "
          "held-out shape split by the shapes on the canvas; `阶段 1+2 s` is the wall time of that training.\n\n"
          + markdown_table(COLUMNS, fmt))
    if not args.no_write:
        write_section(SECTION, md)
    print(md)


if __name__ == "__main__":
    main()
