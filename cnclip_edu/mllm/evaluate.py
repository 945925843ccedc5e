"""Honest measurements of a small multimodal chat model: does it look at the image?

- `answer_all`: greedy replies to many prompts, batched with left padding, with the real image, no
  image at all (text-only baseline: the language prior alone), or another canvas's image
  (mismatched: an answer that stays right is not about the image);
- `accuracy_by_type`: exact-match accuracy per question type (颜色, 形状, …);
- `caption_scores`: exact match of the canonical caption and per-slot accuracy (colour, shape,
  size of the shape at each position, and the number of shapes);
- `multi_round`: the same questions asked in a 3-round chat, the model reading its own earlier
  answers: accuracy per round, and consistency with the answer the question gets when asked alone;
- `follow_ups`: the follow-up ("它…") rounds split by whether the model's own previous reply was right,
  and those after a wrong reply asked again with the gold history (does an error carry into the next round?);
  `history_effect` sorts those by what the gold history changed;
- `gain_by_shapes`: what the image adds, split by the shapes on the canvas; `off_canvas_prior`: whether a wrong
  shape that is not on the canvas is the model's own text-only reply (its language prior).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import torch

from .batches import ImageBank, model_device, prompt_batch
from .chat import encode_chat, render_chat
from .world import CAPTION_PROMPT, ONE_SHAPE_QTYPES, Canvas, Sample

MODES = ("image", "text_only", "mismatched")


def mismatch(n: int, seed: int = 0) -> list[int]:
    """A permutation of range(n) with no fixed point: every sample gets another canvas's image."""
    if n < 2:
        raise ValueError("mismatched images need at least two canvases")
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, n, (1,), generator=g).item()
    return [(i + shift) % n for i in range(n)]


@torch.no_grad()
def answer_all(model, bank: ImageBank, prompts: Sequence[tuple[int | None, list]], batch_size: int = 256,
               max_new_tokens: int = 8) -> list[str]:
    """Replies to prompts (bank index or None, turns ending with (question, None))."""
    model.eval()
    device = model_device(model)
    if bank.features is None:
        bank.cache_features(model)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i][1]))  # similar lengths together
    replies: dict[int, str] = {}
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        b = prompt_batch([prompts[i] for i in idx], bank, model.vocab, model.tokens_per_tile,
                         model.cfg.image_first).to(device)
        feats = bank.feats(model, b.images) if b.images else None
        for i, r in zip(idx, model.generate(b.ids, b.valid, feats, max_new_tokens)):
            replies[i] = r
    return [replies[i] for i in range(len(prompts))]


@torch.no_grad()
def answer_text(model, scenes: Sequence[str], questions: Sequence[str], max_new_tokens: int = 8) -> list[str]:
    """Replies to questions about scenes written in words between <img> and </img>, no image at all:
    what the text-only stage-0 decoder learned (reading the answer from the context)."""
    model.eval()
    rows = [model.vocab.to_compact(encode_chat(render_chat([(q, None)], image_text=s, image_first=model.cfg.image_first)))
            for s, q in zip(scenes, questions)]
    L = max(len(r) for r in rows)
    device = model_device(model)
    ids = torch.tensor([[0] * (L - len(r)) + r for r in rows], device=device)  # left padding
    return model.generate(ids, ids != 0, None, max_new_tokens)


def ask_single(model, bank: ImageBank, samples: Sequence[Sample], mode: str = "image", seed: int = 0,
               max_new_tokens: int = 8) -> list[str]:
    """The reply to each sample's first question, in one of MODES."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    swap = mismatch(len(bank), seed) if mode == "mismatched" else None
    prompts = []
    for s in samples:
        img = None if mode == "text_only" else (swap[s.canvas] if swap else s.canvas)
        prompts.append((img, [(s.turns[0][0], None)]))
    return answer_all(model, bank, prompts, max_new_tokens=max_new_tokens)


def mismatched_shape_baseline(samples: Sequence[Sample], canvases: Sequence[Canvas], seed: int = 0) -> tuple[float, float]:
    """What a mismatched image offers a "<colour>的是什么形状？" question (ask_single's mode "mismatched", same seed):
    (share of the swapped-in canvases that hold the asked shape in some colour, accuracy of naming one shape of the
    swapped-in canvas at random). A model that reads *a* shape off the wrong image scores about the second number,
    above a text-only guess that is one fixed shape per question."""
    swap = mismatch(len(canvases), seed)
    held, expect = [], []
    for s in samples:
        shapes = [it.shape for it in canvases[swap[s.canvas]].items]
        held.append(s.turns[0][1] in shapes)
        expect.append(shapes.count(s.turns[0][1]) / len(shapes))
    return sum(held) / len(held), sum(expect) / len(expect)


def accuracy_by_type(samples: Sequence[Sample], replies: Sequence[str]) -> dict[str, float]:
    """Exact-match accuracy of first-round replies, per question type and overall ("全部")."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for s, r in zip(samples, replies):
        ok = r == s.turns[0][1]
        hits[s.qtypes[0]].append(ok)
        hits["全部"].append(ok)
    return {k: sum(v) / len(v) for k, v in hits.items()}


def accuracy_by_shapes(samples: Sequence[Sample], replies: Sequence[str],
                       canvases: Sequence[Canvas]) -> dict[tuple[str, int], tuple[float, int]]:
    """(question type, shapes on the sample's canvas) -> (accuracy, number of questions), first round.

    With one shape a question cannot pick the wrong one; with 2-3 it must bind the question to one of them."""
    hits: dict[tuple[str, int], list[bool]] = defaultdict(list)
    for s, r in zip(samples, replies):
        hits[(s.qtypes[0], len(canvases[s.canvas].items))].append(r == s.turns[0][1])
    return {k: (sum(v) / len(v), len(v)) for k, v in sorted(hits.items())}




def one_shape_by_shapes(samples: Sequence[Sample], replies: Sequence[str],
                        canvases: Sequence[Canvas]) -> dict[int, tuple[float, int]]:
    """Shapes on the canvas (1, 2, 3) -> (accuracy, number of questions) of the ONE_SHAPE_QTYPES questions."""
    hits: dict[int, list[bool]] = defaultdict(list)
    for s, r in zip(samples, replies):
        if s.qtypes[0] in ONE_SHAPE_QTYPES:
            hits[len(canvases[s.canvas].items)].append(r == s.turns[0][1])
    return {n: (sum(v) / len(v), len(v)) for n, v in sorted(hits.items())}


def wrong_replies(samples: Sequence[Sample], replies: Sequence[str], canvases: Sequence[Canvas]) -> tuple[int, int]:
    """Wrong first-round replies split into (a colour or shape of some shape on the same canvas - the
    wrong shape was picked, a word that names nothing on the canvas - the attribute was misread)."""
    on = off = 0
    for s, r in zip(samples, replies):
        if r == s.turns[0][1]:
            continue
        present = {a for it in canvases[s.canvas].items for a in (it.color, it.shape)}
        on, off = (on + 1, off) if r in present else (on, off + 1)
    return on, off



@dataclass
class ShapeSplit:
    """First-round accuracy of one question set in every mode, split by the shapes on the canvas."""
    rows: dict[int, dict]   # shapes on the canvas -> {"n": questions, "image" / "text_only" / "mismatched": accuracy,
    #                         "gain": image minus text-only}
    many_n: int             # questions about canvases with 2-3 shapes
    many_gain: float        # image minus text-only over those questions together (weighted by questions)


def gain_by_shapes(samples: Sequence[Sample], replies: dict[str, Sequence[str]],
                   canvases: Sequence[Canvas]) -> ShapeSplit:
    """Where does looking help? `replies`: mode -> the replies to `samples` in that mode (MODES). With one shape
    on the canvas, finding the asked shape is free; with 2-3 the question must be bound to one of them."""
    split = {m: accuracy_by_shapes(samples, r, canvases) for m, r in replies.items()}   # (qtype, n) -> (acc, count)
    rows: dict[int, dict] = {}
    for (qtype, n), (_, count) in split["image"].items():   # the same samples in every mode: the same keys
        row = rows.setdefault(n, {"n": 0, **{m: 0.0 for m in split}})
        for m in split:   # several question types pool, weighted by their counts
            row[m] = (row[m] * row["n"] + split[m][(qtype, n)][0] * count) / (row["n"] + count)
        row["n"] += count
    for row in rows.values():
        row["gain"] = row["image"] - row["text_only"]
    many = [r for n, r in rows.items() if n >= 2]
    many_n = sum(r["n"] for r in many)
    return ShapeSplit(rows, many_n, sum(r["gain"] * r["n"] for r in many) / max(1, many_n))


def off_canvas_prior(samples: Sequence[Sample], replies: Sequence[str], prior: Sequence[str],
                     canvases: Sequence[Canvas], shapes: Sequence[str]) -> tuple[int, int, float]:
    """Wrong shape replies naming a shape that is not on the canvas: is the model falling back on what it says
    without looking? -> (such replies, how many equal the text-only reply `prior` to the same question, how many
    would if the wrong shape were drawn uniformly from the shapes neither on the canvas nor the right one)."""
    off = same = 0
    chance = 0.0
    for s, r, p in zip(samples, replies, prior):
        on_canvas = {it.shape for it in canvases[s.canvas].items}
        if r == s.turns[0][1] or r in on_canvas or r not in shapes:
            continue
        off += 1
        same += r == p
        candidates = [x for x in shapes if x not in on_canvas]
        chance += (p in candidates) / len(candidates)
    return off, same, chance


# ----------------------------------------------------------------------------- captions
_CLAUSE = re.compile(r"(左边|中间|右边)是一个(大|小)的(\w\w)(\w+)")


def parse_caption(text: str) -> dict[str, tuple[str, str, str]]:
    """'左边是一个大的红色圆形，…' -> {'左边': ('大', '红色', '圆形'), …} (clauses that do not parse are dropped)."""
    out = {}
    for clause in text.split("，"):
        m = _CLAUSE.fullmatch(clause)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return out


@dataclass
class CaptionScores:
    exact_match: float
    slots: dict[str, float]   # 颜色 / 形状 / 大小: share of gold shapes whose slot is right; 数量: count right


def caption_scores(canvases: Sequence[Canvas], replies: Sequence[str]) -> CaptionScores:
    from .world import caption

    exact, count_ok, n_items = 0, 0, 0
    slot_ok = {"大小": 0, "颜色": 0, "形状": 0}
    for cv, r in zip(canvases, replies):
        exact += r == caption(cv)
        pred = parse_caption(r)
        count_ok += len(pred) == len(cv.items) and len(r.split("，")) == len(cv.items)
        for it in cv.items:
            n_items += 1
            got = pred.get(cv.position(it))
            if got:
                slot_ok["大小"] += got[0] == it.size
                slot_ok["颜色"] += got[1] == it.color
                slot_ok["形状"] += got[2] == it.shape
    slots = {k: v / max(1, n_items) for k, v in slot_ok.items()}
    slots["数量"] = count_ok / max(1, len(canvases))
    return CaptionScores(exact / max(1, len(canvases)), slots)


def describe(model, bank: ImageBank, canvas_ids: Sequence[int], max_new_tokens: int = 48) -> list[str]:
    return answer_all(model, bank, [(i, [(CAPTION_PROMPT, None)]) for i in canvas_ids], max_new_tokens=max_new_tokens)


# ----------------------------------------------------------------------------- multi-round
@dataclass
class MultiRound:
    acc_by_round: list[float]      # accuracy of round 1, 2, 3 with the model's own history
    follow_up_acc: float           # rounds about "它" (needs the previous round)
    consistency: float             # same reply in the chat as when asked alone (non-follow-up rounds >= 2)
    replies: list[list[str]] = field(default_factory=list)   # the model's reply in every round of every chat


def multi_round(model, bank: ImageBank, chats: Sequence[Sample]) -> MultiRound:
    n_rounds = max(len(c.turns) for c in chats)
    history: list[list[tuple[str, str]]] = [[] for _ in chats]
    replies: list[list[str]] = [[] for _ in chats]
    for k in range(n_rounds):
        live = [i for i, c in enumerate(chats) if len(c.turns) > k]
        prompts = [(chats[i].canvas, history[i] + [(chats[i].turns[k][0], None)]) for i in live]
        for i, r in zip(live, answer_all(model, bank, prompts)):
            history[i].append((chats[i].turns[k][0], r))
            replies[i].append(r)
    alone_idx = [(i, k) for i, c in enumerate(chats) for k in range(1, len(c.turns)) if c.qtypes[k] != "追问"]
    alone = answer_all(model, bank, [(chats[i].canvas, [(chats[i].turns[k][0], None)]) for i, k in alone_idx])
    acc = []
    for k in range(n_rounds):
        ok = [replies[i][k] == c.turns[k][1] for i, c in enumerate(chats) if len(c.turns) > k]
        acc.append(sum(ok) / max(1, len(ok)))
    fu = [replies[i][k] == c.turns[k][1] for i, c in enumerate(chats) for k in range(len(c.turns))
          if c.qtypes[k] == "追问"]
    same = [replies[i][k] == a for (i, k), a in zip(alone_idx, alone)]
    return MultiRound(acc, sum(fu) / max(1, len(fu)), sum(same) / max(1, len(same)), replies)


class Redone(NamedTuple):
    """A follow-up after a wrong own reply, asked with the model's own history and again with the gold one."""
    chat: int            # index into the chats
    round: int           # 0-based round of the follow-up
    own: str             # the reply under the model's own history
    gold_history: str    # the reply when every earlier round holds the gold answer


@dataclass
class FollowUps:
    after_right: tuple[float, int]    # (accuracy, questions): follow-ups whose previous own reply was right
    after_wrong: tuple[float, int]    # ... whose previous own reply was wrong (the model's own history)
    after_wrong_gold: float           # those same follow-ups asked again with the gold answers as the history
    # (chat index, round) of the follow-ups after a wrong reply, with the reply under the own / the gold history
    redone: list[Redone] = field(default_factory=list)


def follow_ups(model, bank: ImageBank, chats: Sequence[Sample], replies: Sequence[Sequence[str]]) -> FollowUps:
    """Does a wrong reply carry into the follow-up after it? Accuracy of the "它" rounds after a right and after a
    wrong own reply (`multi_round`'s replies), and the second group asked again with every earlier round answered
    by the gold reply: the same question, only the history differs."""
    right, wrong = [], []
    for i, c in enumerate(chats):
        for k in range(1, len(c.turns)):
            if c.qtypes[k] == "追问":
                (right if replies[i][k - 1] == c.turns[k - 1][1] else wrong).append((i, k))
    gold = answer_all(model, bank, [(chats[i].canvas, list(chats[i].turns[:k]) + [(chats[i].turns[k][0], None)])
                                    for i, k in wrong]) if wrong else []

    def acc(pairs, got):
        return (sum(g == chats[i].turns[k][1] for (i, k), g in zip(pairs, got)) / max(1, len(pairs)), len(pairs))

    own = [replies[i][k] for i, k in wrong]
    return FollowUps(acc(right, [replies[i][k] for i, k in right]), acc(wrong, own), acc(wrong, gold)[0],
                     [Redone(i, k, o, g) for (i, k), o, g in zip(wrong, own, gold)])


def history_effect(chats: Sequence[Sample], redone: Sequence[Redone]) -> dict[str, list[Redone]]:
    """The follow-ups after a wrong reply, by what the gold history did to them: "fixed" (wrong with the own
    history, right with the gold one: the earlier error carried over), "broken" (right -> wrong) and "same"
    (the same reply under both histories: the error did not carry over)."""
    out: dict[str, list[Redone]] = {"fixed": [], "broken": [], "same": [], "other": []}
    for r in redone:
        gold = chats[r.chat].turns[r.round][1]
        key = ("same" if r.own == r.gold_history else "fixed" if r.gold_history == gold
               else "broken" if r.own == gold else "other")
        out[key].append(r)
    return out
