"""Notebook 11's recipe with fields changed: accuracy by (question type, shapes on the canvas).

    OMP_NUM_THREADS=1 python bench/bench_mllm_binding.py                       # the recipe as it is
    OMP_NUM_THREADS=1 python bench/bench_mllm_binding.py '{"steps": [200, 100, 1200]}' --seeds 0 1 2
    OMP_NUM_THREADS=1 python bench/bench_mllm_binding.py '{"vlm": {"downsample": 0.25}}'

The JSON overrides `recipe.RecipeConfig` fields (nested dataclasses by dict). Prints, per seed, the
chapter's metrics, accuracy per question type and shapes on the canvas, the stage-0 decoder's
reading of scenes written in words, and the wall time of each stage; one JSON line per seed at the end.

    ... --record FILE      # also append each seed's line, with the command, commit and machine
    python bench/bench_mllm_binding.py --write bench/records/mllm_binding.jsonl   # section mllm-binding of docs/benchmarks.md

bench/records/mllm_binding.jsonl holds the lines the section shows (notebook 11 prints that table): append a
new run's line there, in the order the table should list it, and --write again.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

import cnclip_edu as cc
from cnclip_edu.mllm import evaluate, recipe
from cnclip_edu.mllm import world as W
from cnclip_edu.mllm.train import train_stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import git_rev, machine_info, markdown_table, write_section  # noqa: E402


def override(obj, changes: dict):
    kw = {}
    for k, v in changes.items():
        cur = getattr(obj, k)
        if dataclasses.is_dataclass(cur) and isinstance(v, dict):
            kw[k] = override(cur, v)
        else:
            kw[k] = tuple(v) if isinstance(cur, tuple) and isinstance(v, list) else v
    return dataclasses.replace(obj, **kw)


def _summary(world, replies, cells: bool = False) -> dict:
    out = {"types": {k: round(v, 3) for k, v in evaluate.accuracy_by_type(world.test_questions, replies).items()}}
    by = evaluate.accuracy_by_shapes(world.test_questions, replies, world.test_canvases)
    if cells:
        out["cells"] = {f"{qt}{n}": (round(a, 2), c) for (qt, n), (a, c) in by.items()}
    one = evaluate.one_shape_by_shapes(world.test_questions, replies, world.test_canvases)
    for n in (1, 2, 3):
        acc, count = one.get(n, (0.0, 0))
        out[f"one_{n}"] = (round(acc, 3), count)
    return out


def run(changes: dict, seed: int, clip, preprocess, save: str | None = None, eval_every: int = 0) -> dict:
    cfg = override(recipe.RecipeConfig(seed=seed), changes)
    world = recipe.make_world(cfg)
    model, bank = recipe.build_model(cfg, world, clip.visual, preprocess)
    t0 = time.perf_counter()
    data = {"0": world.text_chats, "1": world.caption_chats, "2": world.sft_chats}
    results, text_read = [], {}
    test_bank = recipe.eval_bank(model, world, preprocess, cfg)
    curve = []

    class Curve:  # accuracy on the seen test questions every `eval_every` steps of stage 2
        def after_step(self, step, loss):
            if eval_every and (step + 1) % eval_every == 0:
                test_bank.features = None
                replies = evaluate.ask_single(model, test_bank, world.test_questions)
                curve.append((step + 1, _summary(world, replies)))
                print(json.dumps({"step": step + 1, **curve[-1][1]}, ensure_ascii=False), flush=True)
                model.train()

    for st in recipe.stages(cfg):
        results.append(train_stage(model, data[st.name[0]], bank, st, Curve() if st.name.startswith("2") else None))
        if st.name.startswith("0"):  # the stage-0 decoder reading held-out scenes written in words
            held_cv = [world.test_canvases[s.canvas] for s in world.heldout_shape]
            replies = evaluate.answer_text(model, [W.caption(cv) for cv in held_cv],
                                           [s.turns[0][0] for s in world.heldout_shape])
            text_read = {n: round(a, 2) for (_, n), (a, c) in
                         evaluate.accuracy_by_shapes(world.heldout_shape, replies, world.test_canvases).items()}
    train_s = time.perf_counter() - t0
    test_bank = recipe.eval_bank(model, world, preprocess, cfg)
    t1 = time.perf_counter()
    m = recipe.evaluate_all(model, world, test_bank)
    out = {"seed": seed, "train_s": round(train_s, 1), "eval_s": round(time.perf_counter() - t1, 1),
           "stage_s": [round(r.wall_s, 1) for r in results],
           "seen": round(m["seen_image"]["全部"], 3),
           "heldout_shape": round(m["heldout_shape_image"], 3),
           "heldout_text_only": round(m["heldout_shape_text_only"], 3),
           "gain": round(m["heldout_shape_image"] - m["heldout_shape_text_only"], 3),
           "caption": round(m["caption"].exact_match, 3), "stage0_text_read": text_read}
    if "by_shapes" in m:
        out["by_shapes"] = {str(k): round(v, 3) for k, v in m["by_shapes"].items()}
    out.update(_summary(world, evaluate.ask_single(model, test_bank, world.test_questions), cells=True))
    if save:
        torch.save(model.state_dict(), f"{save}-seed{seed}.pt")
    return out


def write_doc(records: Path) -> str:
    """Section mllm-binding of docs/benchmarks.md from the lines `--record` appended, one row each."""
    rows = []
    recs = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    for r in recs:
        t = r["types"]
        rows.append([f"`{json.dumps(r['changes'], ensure_ascii=False)}`", r["seed"],
                     " / ".join(f"{r[f'one_{n}'][0]:.2f}" for n in (1, 2, 3)), t["有无"], t["左右"], r["seen"],
                     f"{r['heldout_shape']:.3f} vs {r['heldout_text_only']:.3f}", r["caption"],
                     f"{r['train_s']:.0f} ({', '.join(f'{x:.0f}' for x in r['stage_s'])})",
                     r["commit"] + (" rebuilt" if r.get("rebuilt") else ""), r["load"]])
    first = recs[0]
    md = "\n\n".join([
        "## mllm-binding: notebook 11's chat model, questions about one shape by shapes on the canvas",
        f"Command per row: `OMP_NUM_THREADS=1 python bench/bench_mllm_binding.py '<override>' --seeds N --record FILE`, "
        f"then `--write FILE`. Machine: {first['machine']}; the load average at each run's end is in the last column "
        "(2 cores shared with other jobs: a load of 4 gives a run half a core, and its wall times double).",
        markdown_table(["override", "seed", "one shape on 1 / 2 / 3-shape canvases", "有无", "左右", "seen",
                        "held-out shape vs text-only", "caption", "train s (stages)", "commit", "load"], rows),
        "one shape = 颜色, 形状, 大小, 位置 questions (they name one shape; with 2-3 shapes on the canvas the model must "
        "read the named one). Every row is a one-thread run, and one-thread runs repeat exactly (the `{}` row of seed 0 "
        "gave the same numbers at 82f6b64 and at ae7db63). `\"image_first\": false` puts the image after the question "
        "in the first user turn (cnclip_edu/mllm/chat.py says why).",
        *([f"Rows marked `rebuilt` ({', '.join(sorted({r['commit'] for r in recs if r.get('rebuilt')}))}) were copied "
           "from this section's earlier table, whose record lines were not kept; at 3415350 the recipe's default was "
           "1800 stage-2 steps, so those rows ran as `{}`."] if any(r.get("rebuilt") for r in recs) else []),
    ])
    write_section("mllm-binding", md)
    return md


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("changes", nargs="?", default="{}")
    ap.add_argument("--record", type=Path, help="append each seed's JSON line (with command, commit, machine) here")
    ap.add_argument("--write", type=Path, help="write section mllm-binding from a --record file, and train nothing")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=0, help="print the seen-question accuracy every N stage-2 steps")
    ap.add_argument("--save", help="write the trained model's state_dict to SAVE-seedN.pt")
    args = ap.parse_args()
    if args.write:
        print(write_doc(args.write))
        return
    torch.set_num_threads(args.threads)
    clip, preprocess = cc.load("course")
    clip.eval()
    changes = json.loads(args.changes)
    for seed in args.seeds:
        out = run(changes, seed, clip, preprocess, args.save, args.eval_every)
        line = json.dumps({"changes": changes, **out}, ensure_ascii=False)
        print(line, flush=True)
        if args.record:
            with args.record.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"changes": changes, **out, "commit": git_rev(), "machine": machine_info(),
                                    "load": round(os.getloadavg()[0], 1)}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
