"""Notebook 11's reading of its recorded runs (cnclip_edu.mllm.records): which rows it compares, and why."""
from __future__ import annotations

from cnclip_edu.deploy.timing import recorded_benchmark, recorded_rows
from cnclip_edu.mllm.records import section_commit, seed_spread, summary


def _run(commit, seed, threads, shape, text="0.125", run="same recipe, one thread"):
    return {"提交": commit, "seed": seed, "线程": threads, "运行": run, "held-out 形状": shape, "held-out 形状 不带图": text}


RUNS = [_run("aaa", "0", "2", "0.65", run="notebook 11, default parameters"), _run("aaa", "0", "1", "0.63"),
        _run("aaa", "1", "1", "0.48"), _run("aaa", "2", "1", "0.49"), _run("old", "3", "1", "0.30"),
        _run("bbb", "0", "2", "0.615", "0.375", run="notebook 11, default parameters (two runs)")]
ABL = [{"seed": "0", "variant": "完整配方", "held-out 形状": "0.605", "held-out 形状 不带图": "0.250"},
       {"seed": "0", "variant": "读最后一层", "held-out 形状": "0.495", "held-out 形状 不带图": "0.125"},
       {"seed": "1", "variant": "读最后一层", "held-out 形状": "0.4", "held-out 形状 不带图": "0.1"}]


def test_seed_spread_keeps_one_commit_and_one_thread_apart_from_every_row():
    s = seed_spread(RUNS)
    assert (s.commit, s.seeds, s.low, s.high) == ("aaa", 3, 0.48, 0.63)   # the lone one-thread 'old' row is not it
    assert (s.every_low, s.every_high) == (0.30, 0.65)
    assert s.threads == {"2": 0.65, "1": 0.63}                              # same code, seed 0: the thread effect


def test_summary_sentences():
    lines = summary(RUNS, ABL, "ccc")
    assert lines[0] == "种子 0，读最后一层 对完整配方：未见组合的形状题 0.495 对 0.605，不带图 0.125 对 0.250"
    assert len([ln for ln in lines if "读最后一层" in ln]) == 1               # seed 1 has no full-recipe row to compare
    assert "只换种子（提交 aaa 的代码、1 个线程、3 个种子）：未见组合的形状题 0.48 到 0.63；" in lines[1]
    assert lines[1].endswith("0.30 到 0.65")
    assert lines[2] == "只换线程数（提交 aaa 的代码、种子 0）：未见组合的形状题 1 个线程 0.63，2 个线程 0.65"
    assert lines[3] == "种子 0、1 个线程的两次记录：提交 aaa 的代码 0.63，消融表（提交 ccc 的代码）0.605"
    assert "提交 aaa、种子 0、2 个线程，未见组合的形状题 0.65" in lines[4]
    assert "提交 bbb、种子 0、2 个线程，未见组合的形状题 0.615、不带图 0.375" in lines[4]
    assert len(lines) == 5


def test_section_commit():
    assert section_commit("Command: `x` started at commit 144d9a3 (the section ...)") == "144d9a3"
    assert section_commit("no commit named") is None and section_commit(None) is None


def test_the_recorded_sections_read():
    runs, abl = recorded_rows("mllm-seeds"), recorded_rows("mllm-ablations")
    lines = summary(runs, abl, section_commit(recorded_benchmark("mllm-ablations")))
    assert any(ln.startswith("只换线程数") for ln in lines) and "?" not in "".join(lines)


def test_summary_row_has_every_column_the_ablation_exercises_need():
    """Section 10's run_ablations prints one row per variant with recipe.summary_row: every seen question type,
    the held-out shape questions with / without the image, split 1 vs 2-3 shapes, and the caption exact match."""
    from types import SimpleNamespace

    from cnclip_edu.mllm import recipe
    from cnclip_edu.mllm.evaluate import accuracy_by_type
    from cnclip_edu.mllm.world import QTYPES

    cfg = recipe.RecipeConfig(n_train_canvases=5, n_text_chats=5, n_test_per_type=4, n_heldout_per_combo=2,
                              n_multi_round=2, n_test_canvases=40)
    world = recipe.make_world(cfg)
    gold = [s.turns[0][1] for s in world.heldout_shape]
    wrong = ["?" for _ in world.heldout_shape]
    one = [k for k, s in enumerate(world.heldout_shape) if len(world.test_canvases[s.canvas].items) == 1]
    mixed = [g if k in one else "?" for k, g in enumerate(gold)]   # right exactly on the one-shape canvases
    metrics = {"seen_image": accuracy_by_type(world.test_questions, [s.turns[0][1] for s in world.test_questions]),
               "heldout_shape_image": accuracy_by_type(world.heldout_shape, mixed)["全部"],
               "heldout_shape_text_only": 0.0, "heldout_shape_image_replies": mixed,
               "heldout_shape_text_only_replies": wrong, "caption": SimpleNamespace(exact_match=0.5)}
    row = recipe.summary_row(metrics, world)
    assert list(row) == [*QTYPES, "见过的全部", "未见组合形状", "同上不带图", "1 个图形", "2-3 个图形", "描述完全一致"]
    assert all(row[t] == 1.0 for t in QTYPES) and row["见过的全部"] == 1.0
    assert one and len(one) < len(gold)
    assert (row["1 个图形"], row["2-3 个图形"], row["描述完全一致"]) == (1.0, 0.0, 0.5)
    assert abs(row["未见组合形状"] - len(one) / len(gold)) < 1e-9


def test_binding_records_name_every_question_type_and_shape_count():
    """Issue 25's metrics: one per seen question type and the one-shape questions by shapes on the canvas."""
    from cnclip_edu.mllm import recipe
    from cnclip_edu.mllm.evaluate import accuracy_by_type, one_shape_by_shapes
    from cnclip_edu.mllm.world import QTYPES

    cfg = recipe.RecipeConfig(n_train_canvases=5, n_text_chats=5, n_test_per_type=12, n_heldout_per_combo=2,
                              n_multi_round=2, n_test_canvases=60)
    world = recipe.make_world(cfg)
    qs, cvs = world.test_questions, world.test_canvases
    # right exactly on the questions about canvases with one shape, and on every 数量 question
    replies = [s.turns[0][1] if len(cvs[s.canvas].items) == 1 or s.qtypes[0] == "数量" else "?" for s in qs]
    metrics = {"seen_image": accuracy_by_type(qs, replies), "one_shape_by_shapes": one_shape_by_shapes(qs, replies, cvs)}
    rec = recipe.binding_records(metrics)
    assert {f"mllm_vqa_seen_{recipe.QTYPE_KEYS[t]}_acc" for t in QTYPES} | \
        {"mllm_vqa_1shape_acc", "mllm_vqa_2shapes_acc", "mllm_vqa_3shapes_acc"} == set(rec)
    assert rec["mllm_vqa_1shape_acc"] == 1.0 and rec["mllm_vqa_2shapes_acc"] == 0.0 == rec["mllm_vqa_3shapes_acc"]
    assert rec["mllm_vqa_seen_count_acc"] == 1.0
    assert 0 < rec["mllm_vqa_seen_color_acc"] < 1      # colour questions on 1- and on 2-3-shape canvases


def test_the_binding_section_has_what_notebook_11_shows():
    """Section 6 of notebook 11 prints the mllm-binding table (written by bench/bench_mllm_binding.py --write from
    bench/records/mllm_binding.jsonl): the columns it picks exist, and the recipe itself has three seeds."""
    rows = recorded_rows("mllm-binding")
    cols = {"override", "seed", "one shape on 1 / 2 / 3-shape canvases", "有无", "左右", "held-out shape vs text-only",
            "caption"}
    assert rows and all(cols <= set(r) for r in rows)
    assert sorted(r["seed"] for r in rows if r["override"] == "`{}`") == ["0", "1", "2"]
    assert all(len(r["one shape on 1 / 2 / 3-shape canvases"].split(" / ")) == 3 for r in rows)
    from cnclip_edu.mllm.records import BINDING_COLUMNS, binding_rows

    shown = binding_rows(rows)
    assert all(not r["override"].startswith("`") for r in shown)     # every recorded override has its label
    assert all(" 对 " in r["held-out shape vs text-only"] for r in shown) and set(BINDING_COLUMNS) <= set(shown[0])
    assert rows[0]["override"] == "`{}`"                                # the recorded rows are left as they were
