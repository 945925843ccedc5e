"""Exercise 07.5 of notebook 07 (retrieval evaluation): the whole evaluation of one direction, joined
from the student's own pieces (07.2 chunked top-k, with its tie rule, and 07.3 Recall@K) into cn_clip's score object.

Compared with `eval.retrieval.evaluate_features`. The inputs catch the glue's own mistakes: row ids that
are not the row numbers (query ids unsorted, gallery ids large and shuffled), features of very different
lengths (a dot product ranks differently from the cosine), and a gold image that only the 6th-10th places reach (a top-5 answer scores R@10 wrongly). The result is
the prediction dict as an ordered list (the key order is the prediction file's line order) and the score.
Two more cases: exact ties (07.2's exact-float rows, run under `unstable_ties` as in 07.2) and a gallery
smaller than 10 (k = min(10, N), as cn_clip's top-10 on a small gallery).
"""
from __future__ import annotations

import random

from .chunk_gallery import unstable_ties
from .core import Case, Exercise, register
from .nb07_chunked import _tie_inputs


# ----------------------------------------------------------------------------- 07.5 the whole evaluation
def _library_glue(queries, gallery, query_ids, gallery_ids, gold):
    from cnclip_edu.eval.retrieval import evaluate_features

    return evaluate_features(queries.numpy(), gallery.numpy(), query_ids.numpy(), gallery_ids.numpy(), gold)


def _inputs(seed: int, n_q: int, n_g: int, dim: int):
    """Features of unequal lengths, shuffled large ids,
    gold 1-3 gallery ids per query with the first query's gold placed 6th-10th by cosine."""
    import torch

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n_q, dim, generator=gen) * (0.3 + 4 * torch.rand(n_q, 1, generator=gen))
    g = torch.randn(n_g, dim, generator=gen) * (0.2 + 5 * torch.rand(n_g, 1, generator=gen))
    q_ids = torch.tensor(rng.sample(range(3_000_000, 3_000_000 + 5 * n_q), n_q), dtype=torch.long)
    g_ids = torch.tensor(rng.sample(range(3_000_000, 3_000_000 + 5 * n_g), n_g), dtype=torch.long)
    gold = {}
    for r, qid in enumerate(q_ids.tolist()):
        rows = rng.sample(range(n_g), rng.randint(1, 3))
        if r == 0:                                            # only the 6th-10th places reach it
            cos = torch.nn.functional.normalize(g, dim=1) @ torch.nn.functional.normalize(q[0], dim=0)
            rows = [int(torch.sort(cos, descending=True, stable=True).indices[min(rng.randint(5, 9), n_g - 1)])]
        gold[qid] = [int(g_ids[i]) for i in rows]
    return q, g, q_ids, g_ids, gold


def _tie_glue_inputs(seed: int, n_q: int, n_g: int):
    """Exact ties: gallery rows from 3 directions (equal cosines are exactly equal), shuffled large ids."""
    rng = random.Random(seed)
    q, g = _tie_inputs(n_q, n_g, 3, seed)
    import torch

    q_ids = torch.tensor(rng.sample(range(5_000_000, 5_000_000 + 5 * n_q), n_q), dtype=torch.long)
    g_ids = torch.tensor(rng.sample(range(5_000_000, 5_000_000 + 5 * n_g), n_g), dtype=torch.long)
    gold = {qid: [int(g_ids[i]) for i in rng.sample(range(n_g), rng.randint(1, 2))] for qid in q_ids.tolist()}
    return q, g, q_ids, g_ids, gold


def _run(answer, inputs):
    if answer is _library_glue:
        pred, score = answer(*inputs)
    else:
        with unstable_ties():                       # a sort without stable=True may reverse ties
            pred, score = answer(*inputs)
    return {"预测（按键的先后）": [[int(k), [int(i) for i in v]] for k, v in pred.items()], "分数": score}


def _case(label: str, seed: int, n_q: int, n_g: int, dim: int) -> Case:
    return Case(label, lambda f: _run(f, _inputs(seed, n_q, n_g, dim)))


def _tie_case(label: str, seed: int, n_q: int, n_g: int) -> Case:
    return Case(label, lambda f: _run(f, _tie_glue_inputs(seed, n_q, n_g)))


def _hidden(seed: int):
    rng = random.Random(seed)
    return [_case("随机的 id、模长各不相同的特征", rng.randrange(10 ** 6), rng.randint(3, 8), rng.randint(12, 30), 8),
            _case("另一组随机的 id 和特征", rng.randrange(10 ** 6), rng.randint(10, 25), rng.randint(20, 50), 16),
            _tie_case("同分", rng.randrange(10 ** 6), rng.randint(3, 6), rng.randint(14, 30)),
            _case("检索库不满 10 条", rng.randrange(10 ** 6), rng.randint(2, 5), rng.randint(3, 9), 8)]


def _glue_mistake(kind: str):
    def evaluate_retrieval(queries, gallery, query_ids, gallery_ids, gold):
        import numpy as np
        import torch

        from cnclip_edu.eval import recall, topk

        q, g = queries, gallery
        if kind != "no_norm":
            q = torch.nn.functional.normalize(q, dim=1)
            g = torch.nn.functional.normalize(g, dim=1)
        k = 5 if kind == "top5" else 10
        if kind == "k10" and len(g) < k:
            torch.zeros(len(g)).topk(k)                     # raises, as topk(sims, 10) on a small gallery does
        if kind == "ties_last":                             # equal scores: the higher row first
            sims = (torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T).numpy()
            order = np.argsort(-sims[:, ::-1], axis=1, kind="stable")[:, :min(k, len(g))]
            idx = len(g) - 1 - order
        else:
            _, idx = topk.topk_predictions(q.numpy(), g.numpy(), k)
        pred = {}
        for r, row in enumerate(idx.tolist()):
            key = r if kind == "row_keys" else int(query_ids[r])
            pred[key] = list(row) if kind == "row_values" else [int(gallery_ids[i]) for i in row]
        if kind == "sorted_keys":
            pred = dict(sorted(pred.items()))
        scored = recall.evaluate(gold, pred) if kind != "row_keys" else \
            recall.evaluate(gold, {int(query_ids[r]): v for r, v in pred.items()})
        return pred, (scored if kind == "raw" else recall.score_json(scored))
    return evaluate_retrieval


register(Exercise(
    id="07.5", title="把各块接起来：从特征到 cn_clip 的分数", points=1,
    hint="检索库可能不满 10 条：取 min(10, N) 个。你的 top-k 交出的是检索库的行号，预测文件和标注里用的却是 id：先把行号换成 id，再以查询的 id 为键、按查询的先后排好。"
         "分数要的是 cn_clip 输出的格式（百分数、平均召回率），库里写这个格式的函数在第 3 部分打分那一格用过。"
         "常见错误：交出行号而不是 id、用行号当键、对键排序、只取前 5、交出没换格式的召回率。",
    reference=_library_glue,
    cases=lambda: [_case("4 条查询、检索库 12 条：id 没排序，模长各不相同", 0, 4, 12, 6),
                   _case("5 条查询、检索库 16 条", 1, 5, 16, 4),
                   _case("20 条查询、检索库 40 条", 2, 20, 40, 16),
                   _tie_case("同分：检索库 14 条只有 3 个不同方向（同方向、不同长度）", 3, 4, 14),
                   _case("检索库只有 6 条（不满 10 条）", 4, 3, 6, 8)],
    hidden=_hidden,
    builds=("cnclip_edu.eval.retrieval.evaluate_features",),
    needs=("07.2", "07.3"),
    mutants=lambda: {
        "交出检索库的行号，不是 id": _glue_mistake("row_values"),
        "用查询的行号当键，不是查询的 id": _glue_mistake("row_keys"),
        "把预测按查询 id 排了序（预测文件的行序变了）": _glue_mistake("sorted_keys"),
        "没有归一化（排的是点积，不是余弦）": _glue_mistake("no_norm"),
        "只取前 5（R@10 就算错了）": _glue_mistake("top5"),
        "交出的是召回率的小数，不是 cn_clip 的输出格式": _glue_mistake("raw"),
        "同分时行号大的排在前面（cn_clip 的稳定排序让行号小的在前）": _glue_mistake("ties_last"),
        "总取 10 个（检索库不满 10 条时出错）": _glue_mistake("k10"),
    },
))
