"""Exercise 07.7 of notebook 07 (retrieval evaluation): the whole evaluation of one direction, joined
from the student's own pieces (07.1 cosine top-k, 07.3 Recall@K) into cn_clip's score object.

Compared with `eval.retrieval.evaluate_features`. The inputs catch the glue's own mistakes: row ids that
are not the row numbers (query ids unsorted, gallery ids large and shuffled), features of very different
lengths (a dot product ranks differently from the cosine), and a gold image that only the 6th-10th places reach (a top-5 answer scores R@10 wrongly). The result is
the prediction dict as an ordered list (the key order is the prediction file's line order) and the score.
Random floats, no duplicated rows: 07.1 may use `Tensor.topk`, whose order among equal scores is unspecified
(tie order is 07.2's subject), so no case depends on a tie.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 07.7 the whole evaluation
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
            rows = [int(torch.sort(cos, descending=True, stable=True).indices[rng.randint(5, 9)])]
        gold[qid] = [int(g_ids[i]) for i in rows]
    return q, g, q_ids, g_ids, gold


def _run(answer, inputs):
    pred, score = answer(*inputs)
    return {"预测（按键的先后）": [[int(k), [int(i) for i in v]] for k, v in pred.items()], "分数": score}


def _case(label: str, seed: int, n_q: int, n_g: int, dim: int) -> Case:
    return Case(label, lambda f: _run(f, _inputs(seed, n_q, n_g, dim)))


def _hidden(seed: int):
    rng = random.Random(seed)
    return [_case("随机的 id、模长各不相同的特征", rng.randrange(10 ** 6), rng.randint(3, 8), rng.randint(12, 30), 8),
            _case("另一组随机的 id 和特征", rng.randrange(10 ** 6), rng.randint(10, 25), rng.randint(20, 50), 16)]


def _glue_mistake(kind: str):
    def evaluate_retrieval(queries, gallery, query_ids, gallery_ids, gold):
        import torch

        from cnclip_edu.eval import recall, topk

        q, g = queries, gallery
        if kind != "no_norm":
            q = torch.nn.functional.normalize(q, dim=1)
            g = torch.nn.functional.normalize(g, dim=1)
        k = 5 if kind == "top5" else 10
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
    id="07.7", title="把各块接起来：从特征到 cn_clip 的分数", points=1,
    hint="你的 top-k 交出的是检索库的行号，预测文件和标注里用的却是 id：先把行号换成 id，再以查询的 id 为键、按查询的先后排好。"
         "分数要的是 cn_clip 输出的格式（百分数、平均召回率），库里写这个格式的函数在第 3 部分打分那一格用过。"
         "常见错误：交出行号而不是 id、用行号当键、对键排序、只取前 5、交出没换格式的召回率。",
    reference=_library_glue,
    cases=lambda: [_case("4 条查询、检索库 12 条：id 没排序，模长各不相同", 0, 4, 12, 6),
                   _case("5 条查询、检索库 16 条", 1, 5, 16, 4),
                   _case("20 条查询、检索库 40 条", 2, 20, 40, 16)],
    hidden=_hidden,
    builds=("cnclip_edu.eval.retrieval.evaluate_features",),
    needs=("07.1", "07.3"),
    mutants=lambda: {
        "交出检索库的行号，不是 id": _glue_mistake("row_values"),
        "用查询的行号当键，不是查询的 id": _glue_mistake("row_keys"),
        "把预测按查询 id 排了序（预测文件的行序变了）": _glue_mistake("sorted_keys"),
        "没有归一化（排的是点积，不是余弦）": _glue_mistake("no_norm"),
        "只取前 5（R@10 就算错了）": _glue_mistake("top5"),
        "交出的是召回率的小数，不是 cn_clip 的输出格式": _glue_mistake("raw"),
    },
))
