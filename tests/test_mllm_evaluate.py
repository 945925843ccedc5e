"""The measurements: mismatched images really are other images, caption slots are scored per slot,
accuracy per type, and the multi-round bookkeeping (history, consistency) on stub models."""
from __future__ import annotations

import random

import pytest
import torch

from cnclip_edu.mllm.batches import ImageBank
from cnclip_edu.mllm.chat import ChatVocab
from cnclip_edu.mllm.evaluate import (accuracy_by_shapes, accuracy_by_type, caption_scores, follow_ups, mismatch,
                                       mismatched_shape_baseline, multi_round, parse_caption, wrong_replies)
from cnclip_edu.mllm.vlm import VLMConfig
from cnclip_edu.mllm.world import Canvas, Item, Sample, WorldConfig, caption, sample_canvas, vocabulary_texts


def test_mismatch_is_a_derangement():
    for n in (2, 3, 10, 101):
        p = mismatch(n, seed=n)
        assert sorted(p) == list(range(n)) and all(p[i] != i for i in range(n))
    with pytest.raises(ValueError):
        mismatch(1)


def test_caption_scores_per_slot():
    cv = Canvas(3, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 2)), 240, 0.0, ((0, 0), (0, 0)))
    gold = caption(cv)
    assert gold == "左边是一个大的红色圆形，右边是一个小的蓝色菱形"
    perfect = caption_scores([cv], [gold])
    assert perfect.exact_match == 1 and perfect.slots == {"大小": 1, "颜色": 1, "形状": 1, "数量": 1}
    wrong_shape = caption_scores([cv], ["左边是一个大的红色圆形，右边是一个小的蓝色十字"])
    assert wrong_shape.exact_match == 0 and wrong_shape.slots == {"大小": 1, "颜色": 1, "形状": 0.5, "数量": 1}
    missing = caption_scores([cv], ["左边是一个大的红色圆形"])
    assert missing.slots == {"大小": 0.5, "颜色": 0.5, "形状": 0.5, "数量": 0}
    extra = caption_scores([cv], [gold + "，中间是一个小的黑色十字"])
    assert extra.slots["数量"] == 0 and extra.slots["颜色"] == 1
    assert parse_caption("胡言乱语") == {}


def test_accuracy_by_type():
    samples = [Sample(0, [("q", "红色")], ["颜色"]), Sample(0, [("q", "圆形")], ["形状"]),
               Sample(0, [("q", "蓝色")], ["颜色"])]
    acc = accuracy_by_type(samples, ["红色", "圆形", "红色"])
    assert acc == {"颜色": 0.5, "形状": 1.0, "全部": 2 / 3}


class _Stub(torch.nn.Module):
    """Answers every prompt with `answer(n_rounds_in_prompt)`, through the real batching code."""

    def __init__(self, answer):
        super().__init__()
        self.vocab = ChatVocab.from_texts(vocabulary_texts())
        self.tokens_per_tile = 4
        self.cfg = VLMConfig()            # the chat layout the prompts are rendered in (image first)
        self.answer = answer

    def tile_features(self, pixels):
        return torch.zeros(pixels.shape[0], 4, 8)

    def generate(self, ids, valid, feats, max_new_tokens):
        start = self.vocab.index[4]  # <|im_start|>
        rounds = ((ids == start) & valid).sum(1) // 2  # two markers per round: user, assistant
        return [self.answer(int(r)) for r in rounds]


@pytest.fixture(scope="module")
def bank():
    from PIL import Image

    rng = random.Random(0)
    cvs = [sample_canvas(rng, WorldConfig().seen()) for _ in range(3)]
    imgs = [Image.new("RGB", (32 * cv.cells, 32)) for cv in cvs]
    from cnclip_edu.data.transforms import image_transform
    from cnclip_edu.mllm.tiling import dynamic_preprocess
    return ImageBank(imgs, lambda im: dynamic_preprocess(im, image_size=32, use_thumbnail=True), image_transform(32))


def test_multi_round_reads_its_own_history(bank):
    chats = [Sample(0, [("图中有几个图形？", "一个"), ("左边的是什么颜色？", "红色"), ("它是什么形状？", "圆形")],
                    ["数量", "颜色", "追问"]),
             Sample(1, [("图中有几个图形？", "两个"), ("图中有红色的圆形吗？", "有")], ["数量", "有无"])]
    same = multi_round(_Stub(lambda r: "红色"), bank, chats)
    assert same.acc_by_round == [0.0, 0.5, 0.0] and same.follow_up_acc == 0 and same.consistency == 1
    # a model whose reply depends on how many rounds it has seen is inconsistent
    drift = multi_round(_Stub(lambda r: "红色" if r > 1 else "有"), bank, chats)
    assert drift.consistency == 0 and drift.acc_by_round == [0.0, 0.5, 0.0]
    assert drift.replies == [["有", "红色", "红色"], ["有", "红色"]]


class _ReadsHistory(_Stub):
    """Colour questions get "蓝色" (wrong here), "它" questions "圆形" only if "红色" was said before, else "正方形"."""

    def generate(self, ids, valid, feats, max_new_tokens):
        from cnclip_edu.tokenizer import get_tokenizer

        out = []
        for row, v in zip(ids, valid):
            said = get_tokenizer().decode(self.vocab.to_tokenizer(row[v].tolist())).replace(" ", "")
            out.append("圆形" if "它" in said and "红色" in said else "正方形" if "它" in said
                       else "蓝色" if "颜色" in said else "一个")
        return out


def test_follow_ups_with_own_and_gold_history(bank):
    chats = [Sample(0, [("图中有几个图形？", "一个"), ("左边的是什么颜色？", "红色"), ("它是什么形状？", "圆形")],
                    ["数量", "颜色", "追问"]),
             Sample(1, [("图中有几个图形？", "一个"), ("它是什么形状？", "圆形")], ["数量", "追问"])]
    model = _ReadsHistory(lambda r: None)
    mr = multi_round(model, bank, chats)
    assert mr.replies == [["一个", "蓝色", "正方形"], ["一个", "正方形"]]
    fu = follow_ups(model, bank, chats, mr.replies)
    assert fu.after_right == (0.0, 1)                   # chat 1: round 1 right, the follow-up wrong
    assert fu.after_wrong == (0.0, 1) and fu.after_wrong_gold == 1.0   # chat 0: the gold "红色" fixes round 3
    assert fu.redone == [(0, 2, "正方形", "圆形")]


def test_answer_text_reads_the_scene_from_words_only():
    """The text probe puts the scene between <img> and </img> and asks, with no image tokens."""
    from cnclip_edu.mllm.evaluate import answer_text

    class Echo(torch.nn.Module):  # replies with the compact ids it was given, to see the prompt
        def __init__(self):
            super().__init__()
            self.vocab = ChatVocab.from_texts(vocabulary_texts())
            self.cfg = VLMConfig()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, ids, valid, feats, max_new_tokens):
            assert feats is None and not (ids == self.vocab.index[3]).any()  # no <IMG_CONTEXT>
            assert bool(valid[:, -1].all()) and not bool(valid[0, 0])  # left padding, shorter row first
            return [self.vocab.decode(row[v].tolist()) for row, v in zip(ids, valid)]

    out = answer_text(Echo(), ["红色圆形", "左边是一个大的红色圆形"], ["它是什么形状？", "红色的是什么形状？"])
    assert "红色圆形" in out[0].replace(" ", "") and "左边是一个大的红色圆形" in out[1].replace(" ", "")


def test_accuracy_by_shapes_and_where_wrong_replies_come_from():
    one = Canvas(1, (Item("红色", "圆形", "大", 0),), 240, 0.0, ((0, 0),))
    two = Canvas(2, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 1)), 240, 0.0, ((0, 0), (0, 0)))
    canvases = [one, two]
    samples = [Sample(0, [("红色的是什么形状？", "圆形")], ["形状"]),
               Sample(1, [("红色的是什么形状？", "圆形")], ["形状"]),
               Sample(1, [("菱形是什么颜色？", "蓝色")], ["颜色"]),
               Sample(1, [("圆形是什么颜色？", "红色")], ["颜色"])]
    replies = ["圆形", "菱形", "蓝色", "绿色"]  # right; the other shape's shape; right; a colour not on the canvas
    assert accuracy_by_shapes(samples, replies, canvases) == {("形状", 1): (1.0, 1), ("形状", 2): (0.0, 1),
                                                              ("颜色", 2): (0.5, 2)}
    assert wrong_replies(samples, replies, canvases) == (1, 1)


def test_one_shape_questions_by_shapes_on_the_canvas():
    from cnclip_edu.mllm.evaluate import one_shape_by_shapes

    one = Canvas(1, (Item("红色", "圆形", "大", 0),), 240, 0.0, ((0, 0),))
    two = Canvas(2, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 1)), 240, 0.0, ((0, 0), (0, 0)))
    samples = [Sample(0, [("红色的是什么形状？", "圆形")], ["形状"]), Sample(1, [("左边的是大的还是小的？", "大的")], ["大小"]),
               Sample(1, [("红色的圆形在哪里？", "左边")], ["位置"]), Sample(1, [("图中有几个图形？", "两个")], ["数量"])]
    replies = ["圆形", "小的", "左边", "两个"]  # the count question is about all shapes: not counted
    assert one_shape_by_shapes(samples, replies, [one, two]) == {1: (1.0, 1), 2: (0.5, 2)}


def test_gain_by_shapes_pools_by_question_counts():
    from cnclip_edu.mllm.evaluate import gain_by_shapes

    one = Canvas(1, (Item("红色", "圆形", "大", 0),), 240, 0.0, ((0, 0),))
    two = Canvas(2, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 1)), 240, 0.0, ((0, 0), (0, 0)))
    three = Canvas(3, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 1), Item("绿色", "十字", "小", 2)),
                   240, 0.0, ((0, 0),) * 3)
    q = ("红色的是什么形状？", "圆形")
    samples = [Sample(0, [q], ["形状"]), Sample(0, [q], ["形状"]), Sample(1, [q], ["形状"]), Sample(2, [q], ["形状"]),
               Sample(2, [q], ["形状"])]
    split = gain_by_shapes(samples, {"image": ["圆形", "圆形", "圆形", "圆形", "菱形"],
                                     "text_only": ["菱形", "圆形", "圆形", "菱形", "菱形"]}, [one, two, three])
    assert split.rows[1] == {"n": 2, "image": 1.0, "text_only": 0.5, "gain": 0.5}
    assert split.rows[2]["gain"] == 0.0 and split.rows[3]["gain"] == 0.5
    assert split.many_n == 3 and abs(split.many_gain - 1 / 3) < 1e-9   # (0 * 1 + 0.5 * 2) / 3


def test_off_canvas_prior_counts_replies_equal_to_the_text_only_one():
    from cnclip_edu.mllm.evaluate import off_canvas_prior

    two = Canvas(2, (Item("红色", "五角星", "大", 0), Item("蓝色", "菱形", "小", 1)), 240, 0.0, ((0, 0), (0, 0)))
    q = ("红色的是什么形状？", "五角星")
    samples = [Sample(0, [q], ["形状"])] * 4
    replies = ["五角星", "菱形", "圆形", "十字"]     # right; on the canvas; off it (= the prior); off it (not the prior)
    shapes = ("圆形", "正方形", "三角形", "五角星", "菱形", "十字")
    off, same, chance = off_canvas_prior(samples, replies, ["圆形"] * 4, [two], shapes)
    assert (off, same) == (2, 1) and abs(chance - 2 / 4) < 1e-9   # 4 shapes off the canvas, the prior one of them


def test_history_effect_sorts_the_redone_follow_ups():
    from cnclip_edu.mllm.evaluate import Redone, history_effect

    chats = [Sample(0, [("图中有几个图形？", "一个"), ("它是什么颜色？", "红色")], ["数量", "追问"])] * 4
    redone = [Redone(0, 1, "蓝色", "红色"), Redone(1, 1, "红色", "蓝色"), Redone(2, 1, "蓝色", "蓝色"),
              Redone(3, 1, "蓝色", "绿色")]
    eff = history_effect(chats, redone)
    assert [len(eff[k]) for k in ("fixed", "broken", "same", "other")] == [1, 1, 1, 1]
    assert eff["fixed"][0].gold_history == "红色" and redone[0] == (0, 1, "蓝色", "红色")   # still a plain tuple


def test_mismatched_shape_baseline_reads_the_swapped_in_canvas():
    """Three one-shape canvases and their mismatch: the baseline looks at the canvas that replaces each one."""
    cvs = [Canvas(1, (Item("红色", sh, "大", 0),), 240, 0.0, ((0, 0),)) for sh in ("圆形", "菱形", "圆形")]
    qs = [Sample(canvas=i, turns=[("红色的是什么形状？", cv.items[0].shape)], qtypes=["形状"]) for i, cv in enumerate(cvs)]
    swap = mismatch(3)
    want = [cvs[swap[i]].items[0].shape == cvs[i].items[0].shape for i in range(3)]
    held, expect = mismatched_shape_baseline(qs, cvs)
    assert held == expect == sum(want) / 3
    two = [Canvas(2, (Item("红色", "圆形", "大", 0), Item("蓝色", "菱形", "小", 1)), 240, 0.0, ((0, 0), (0, 0))),
           Canvas(1, (Item("蓝色", "圆形", "小", 0),), 240, 0.0, ((0, 0),))]
    q = [Sample(canvas=1, turns=[("蓝色的是什么形状？", "圆形")], qtypes=["形状"])]
    assert mismatched_shape_baseline(q, two) == (1.0, 0.5)   # the other canvas holds 圆形 among 2 shapes
