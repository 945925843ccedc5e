"""What notebook 11's recorded runs say, as Chinese sentences (docs/benchmarks.md: mllm-seeds, mllm-ablations).

Section 10 of the notebook shows the recorded tables and then needs a few comparisons drawn from them: the
spread over seeds alone (one code version, one thread count), the same code and seed with another thread count,
the two records of seed 0 made by different code versions, and which rows are the notebook's own earlier runs
(their `运行` column starts with "notebook 11").
Picking those rows apart is bookkeeping on commit strings, not a lesson about MLLMs, so it lives here (tested in
tests/test_mllm_records.py) and the notebook prints only the sentences.

    runs, abl = recorded_rows("mllm-seeds"), recorded_rows("mllm-ablations")
    print("\\n".join(summary(runs, abl, section_commit(recorded_benchmark("mllm-ablations")))))
"""
from __future__ import annotations

import re
from typing import NamedTuple

SHAPE = "held-out 形状"           # column: held-out shape accuracy with the image
SHAPE_TEXT = "held-out 形状 不带图"  # the same questions without the image
FULL = "完整配方"                  # the ablation table's unchanged recipe


class Spread(NamedTuple):
    """The held-out shape spread in the mllm-seeds table."""
    commit: str                      # the code version with the most one-thread rows
    seeds: int                       # how many seeds that commit ran with one thread
    low: float                       # seed-only range: that commit, one thread
    high: float
    every_low: float                 # every row (other thread counts and code versions too)
    every_high: float
    threads: dict[str, float]        # that commit, seed 0: {thread count: held-out shape}


def section_commit(text: str | None) -> str | None:
    """The commit a recorded section says its command started at ("... at commit 144d9a3 ..."), or None."""
    m = re.search(r"at commit (\w+)", text or "")
    return m.group(1) if m else None


def seed_spread(runs: list[dict[str, str]]) -> Spread:
    """Seed-only spread vs every row's, and the same-code seed-0 rows by thread count (rows of `recorded_rows`)."""
    one = [r for r in runs if r["线程"] == "1"]
    commit = max(dict.fromkeys(r["提交"] for r in one), key=lambda c: sum(r["提交"] == c for r in one))
    same = [float(r[SHAPE]) for r in one if r["提交"] == commit]
    every = [float(r[SHAPE]) for r in runs]
    threads = {r["线程"]: float(r[SHAPE]) for r in runs if r["提交"] == commit and r["seed"] == "0"}
    return Spread(commit, len(same), min(same), max(same), min(every), max(every), threads)


def summary(runs: list[dict[str, str]], abl: list[dict[str, str]], abl_commit: str | None) -> list[str]:
    """The comparisons section 10 reads off the two recorded tables, one Chinese sentence each."""
    lines = []
    full = {r["seed"]: r for r in abl if r["variant"] == FULL}
    for r in abl:
        if r["variant"] != FULL and r["seed"] in full:
            base = full[r["seed"]]
            lines.append(f"种子 {r['seed']}，{r['variant']} 对完整配方：未见组合的形状题 {r[SHAPE]} 对 {base[SHAPE]}，"
                         f"不带图 {r[SHAPE_TEXT]} 对 {base[SHAPE_TEXT]}")
    s = seed_spread(runs)
    lines.append(f"只换种子（提交 {s.commit} 的代码、1 个线程、{s.seeds} 个种子）：未见组合的形状题 {s.low:.2f} 到 {s.high:.2f}；"
                 f"表里所有的行（还换了线程数和代码版本）：{s.every_low:.2f} 到 {s.every_high:.2f}")
    if len(s.threads) >= 2:
        lines.append(f"只换线程数（提交 {s.commit} 的代码、种子 0）：未见组合的形状题 "
                     + "，".join(f"{n} 个线程 {v:.2f}" for n, v in sorted(s.threads.items())))
    if "1" in s.threads and "0" in full:
        lines.append(f"种子 0、1 个线程的两次记录：提交 {s.commit} 的代码 {s.threads['1']:.2f}，"
                     f"消融表（提交 {abl_commit or '?'} 的代码）{full['0'][SHAPE]}")
    own = [r for r in runs if r.get("运行", "").startswith("notebook 11")]
    if own:
        lines.append("表里这本笔记本自己（默认参数）以前的运行：" + "；".join(
            f"提交 {r['提交']}、种子 {r['seed']}、{r['线程']} 个线程，未见组合的形状题 {r[SHAPE]}、不带图 {r[SHAPE_TEXT]}"
            for r in own) + "（表里的 '-' 是那次没有记下的数）")
    return lines


# mllm-binding (bench/bench_mllm_binding.py): each recorded override, as notebook 11 section 6 names it
BINDING_LABELS = {
    "{}": "本节的配方（阶段 2 900 步）", '{"steps": [200, 100, 1800]}': "阶段 2 1800 步",
    '{"steps": [200, 100, 1800], "vlm": {"image_first": false}}': "1800 步，图放在问题后面",
    '{"steps": [200, 100, 2700], "vlm": {"image_first": false}}': "2700 步，图放在问题后面",
    '{"steps": [200, 100, 1800], "train_shapes_keep": [0.3, 1.0, 1.0], "vlm": {"image_first": false}}':
        "1800 步、图在问题后面，单个图形的训练画布只留三成",
    '{"steps": [200, 100, 1800], "vlm": {"image_first": false, "tile_embed": true}}': "1800 步、图在问题后面，每块加一个位置向量",
    '{"steps": [200, 100, 1800], "lrs": [0.002, 0.001, 0.002], "vlm": {"image_first": false}}':
        "1800 步、图在问题后面，阶段 2 的学习率加倍",
    '{"n_sft_binding": 6000}': "阶段 2 多 6000 道问一个图形的题", '{"loss_weighting": "sample"}': "每段对话的损失等权",
}
BINDING_COLUMNS = {"override": "配方的改动", "seed": "种子", "one shape on 1 / 2 / 3-shape canvases": "问一个图形：画布上 1 / 2 / 3 个图形",
                   "有无": "有无", "左右": "左右", "held-out shape vs text-only": "未见组合的形状题（对不带图）",
                   "caption": "描述完全一致"}


def binding_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The mllm-binding table's rows (`recorded_rows`) in notebook 11's words: each override by its Chinese label
    (an override without one stays as recorded), "vs" as "对". Shown with BINDING_COLUMNS."""
    out = []
    for r in rows:
        r = dict(r)
        r["override"] = BINDING_LABELS.get(r["override"].strip("`"), r["override"])
        r["held-out shape vs text-only"] = r["held-out shape vs text-only"].replace(" vs ", " 对 ")
        out.append(r)
    return out
