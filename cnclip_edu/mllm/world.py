"""The chat world of chapter 11: wide toy canvases, a canonical caption, and questions with checkable answers.

A canvas is a row of 1-3 cells, each 32 px (one tile of the course ViT), holding 1-3 shapes of the
course's toy world: distinct colours and distinct shapes in one canvas, so that "红色的" or "圆形"
names exactly one shape. Cells are drawn like the course's toy images (`toy_draw.render_scene` at
64 px, then bicubic to 32 px, which is how the course CLIP read its training images), so a tile looks
to the ViT like what it was trained on; the thumbnail of a 3-cell canvas squashes every shape to a
third of its width. Some cells stay empty, so the number of shapes is not the number of tiles.

Every question's answer is computed from the canvas: 颜色 (colour), 形状 (shape), 大小 (size),
位置 (position), 数量 (count), 有无 (yes/no), 左右 (left/right of another shape), and in multi-round
chats 追问 (a follow-up about "它", the shape of the previous round). The course's held-out
(colour, shape) combinations (`cnclip_edu.data.toy.heldout_combos`) never appear in a training
canvas nor in any training text (not even as a "没有" question); the held-out test asks about them.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field

from PIL import Image

from cnclip_edu.data.toy import COLORS, SHAPES, ToyConfig, heldout_combos
from cnclip_edu.data.toy_draw import render_scene
from cnclip_edu.data.toy_text import Shape

POSITIONS = {1: ("中间",), 2: ("左边", "右边"), 3: ("左边", "中间", "右边")}
# Shape height as a fraction of the cell side. Larger than the toy world's 0.42 / 0.28 of a 64-px image:
# a 32-px tile then shows a shape of 22 / 14 px instead of 13 / 9, and an MLP reading the frozen ViT's
# tile tokens names the shape of 97 % of held-out single-shape tiles after 600 steps, vs 86 % at toy sizes.
SIZE_SCALE = {"大": 0.7, "小": 0.45}
COUNT_WORDS = {1: "一个", 2: "两个", 3: "三个"}
CAPTION_PROMPT = "描述这张图片。"
QTYPES = ("颜色", "形状", "大小", "位置", "数量", "有无", "左右")
# Questions whose answer is an attribute of the one shape they name (by colour, shape or position): on a canvas with
# 2-3 shapes they need the question bound to the right shape. 数量 is about all shapes, 有无 / 左右 about pairs.
ONE_SHAPE_QTYPES = ("颜色", "形状", "大小", "位置")


@dataclass(frozen=True)
class Item:
    color: str
    shape: str
    size: str      # "大" / "小"
    cell: int      # 0-based, left to right


@dataclass(frozen=True)
class Canvas:
    cells: int
    items: tuple[Item, ...]  # sorted by cell
    background: int
    angle: float
    jitter: tuple[tuple[float, float], ...]  # per item: centre offset in the cell, fraction of its side

    def position(self, item: Item) -> str:
        return POSITIONS[self.cells][item.cell]

    def combos(self) -> set[tuple[str, str]]:
        return {(it.color, it.shape) for it in self.items}


@dataclass
class Sample:
    """One chat about one canvas: rounds of (question, answer) and the type of each question."""
    canvas: int
    turns: list[tuple[str, str]]
    qtypes: list[str]
    meta: dict = field(default_factory=dict)


@dataclass
class WorldConfig:
    seed: int = 0
    cell_px: int = 32                   # one tile of the course ViT
    render_px: int = 64                 # cells are drawn at the toy world's 64 px, then resized
    cells_probs: tuple[float, float, float] = (0.25, 0.35, 0.40)  # P(1, 2, 3 cells)
    size_scale: dict = field(default_factory=lambda: dict(SIZE_SCALE))  # shape height / cell side
    toy: ToyConfig = field(default_factory=ToyConfig)              # whose held-out combos we keep out

    def heldout(self) -> list[tuple[str, str]]:
        return heldout_combos(self.toy)

    def seen(self) -> list[tuple[str, str]]:
        held = set(self.heldout())
        return [(c, s) for c in COLORS for s in SHAPES if (c, s) not in held]


# ----------------------------------------------------------------------------- canvases
def sample_canvas(rng: random.Random, combos: list[tuple[str, str]], cells_probs=(0.25, 0.35, 0.40),
                  must_include: tuple[str, str] | None = None) -> Canvas:
    """1-3 cells, 1..cells shapes with distinct colours and shapes drawn from `combos`."""
    cells = rng.choices((1, 2, 3), weights=cells_probs)[0]
    n = rng.randint(1, cells)
    picked: list[tuple[str, str]] = [must_include] if must_include else []
    pool = [c for c in combos if c != must_include]
    rng.shuffle(pool)
    for c, s in pool:
        if len(picked) == n:
            break
        if all(c != pc and s != ps for pc, ps in picked):
            picked.append((c, s))
    rng.shuffle(picked)
    slots = sorted(rng.sample(range(cells), n))
    items = tuple(Item(c, s, rng.choice(("大", "小")), k) for (c, s), k in zip(picked, slots))
    jitter = tuple((rng.uniform(-0.07, 0.07), rng.uniform(-0.07, 0.07)) for _ in items)
    return Canvas(cells, items, rng.randint(232, 255), rng.uniform(-12, 12), jitter)


def render_canvas(cv: Canvas, cell_px: int = 32, render_px: int = 64, size_scale: dict | None = None) -> Image.Image:
    """The canvas as an RGB image of (cells * cell_px) x cell_px."""
    size_scale = size_scale or SIZE_SCALE
    big = Image.new("RGB", (cv.cells * render_px, render_px), (cv.background,) * 3)
    by_cell = {it.cell: (it, j) for it, j in zip(cv.items, cv.jitter)}
    for k in range(cv.cells):
        shapes = []
        if k in by_cell:
            it, (dx, dy) = by_cell[k]
            shapes = [Shape(it.color, it.shape, it.size, None, 0.5 + dx, 0.5 + dy, size_scale[it.size])]
        png = render_scene({"shapes": shapes, "background": cv.background, "angle": cv.angle}, render_px)
        big.paste(Image.open(io.BytesIO(png)).convert("RGB"), (k * render_px, 0))
    return big.resize((cv.cells * cell_px, cell_px), Image.Resampling.BICUBIC)


# ----------------------------------------------------------------------------- text
def caption(cv: Canvas) -> str:
    """The canonical caption: left to right, '左边是一个大的红色圆形，右边是一个小的蓝色菱形'."""
    return "，".join(f"{cv.position(it)}是一个{it.size}的{it.color}{it.shape}" for it in cv.items)


def _ref(rng: random.Random, cv: Canvas, it: Item, by: tuple[str, ...]) -> str:
    """A phrase that names exactly `it`: by colour ('红色的'), shape ('圆形') or position ('左边的')."""
    kind = rng.choice(by)
    if kind == "color":
        return f"{it.color}的"
    if kind == "shape":
        return it.shape
    return f"{cv.position(it)}的"


def ask(rng: random.Random, cv: Canvas, qtype: str, allowed: list[tuple[str, str]],
        item: Item | None = None) -> tuple[str, str, Item | None]:
    """One question of `qtype` about the canvas -> (question, answer, the shape it is about or None).

    `allowed`: the combinations a question may name when they are *not* in the canvas (yes/no)."""
    it = item or rng.choice(cv.items)
    if qtype == "颜色":
        return f"{_ref(rng, cv, it, ('shape', 'position'))}是什么颜色？", it.color, it
    if qtype == "形状":
        return f"{_ref(rng, cv, it, ('color', 'position'))}是什么形状？", it.shape, it
    if qtype == "大小":
        return f"{_ref(rng, cv, it, ('color', 'shape', 'position'))}是大的还是小的？", f"{it.size}的", it
    if qtype == "位置":
        return f"{it.color}的{it.shape}在哪里？", cv.position(it), it
    if qtype == "数量":
        return "图中有几个图形？", COUNT_WORDS[len(cv.items)], None
    if qtype == "有无":
        if rng.random() < 0.5:
            return f"图中有{it.color}的{it.shape}吗？", "有", it
        present = cv.combos()
        # half of the "no" questions share a colour or a shape with the canvas: one attribute is not enough
        near = [c for c in allowed if c not in present and any(c[0] == p[0] or c[1] == p[1] for p in present)]
        far = [c for c in allowed if c not in present]
        c, s = rng.choice(near if near and rng.random() < 0.5 else far)
        return f"图中有{c}的{s}吗？", "没有", None
    if qtype == "左右":
        if len(cv.items) < 2:
            raise ValueError("a left/right question needs two shapes")
        a, b = rng.sample(cv.items, 2)
        side = "左边" if a.cell < b.cell else "右边"
        by = ("color", "shape")
        return f"{_ref(rng, cv, a, by)}在{_ref(rng, cv, b, by)}的左边还是右边？", side, a
    raise ValueError(f"unknown question type {qtype!r}; known: {QTYPES}")


def follow_up(rng: random.Random, it: Item, asked: str) -> tuple[str, str]:
    """A question about '它' (the previous round's shape) on an attribute the last question did not give."""
    options = [o for o in ("颜色", "形状", "大小") if o != asked]
    kind = rng.choice(options)
    if kind == "颜色":
        return "它是什么颜色？", it.color
    if kind == "形状":
        return "它是什么形状？", it.shape
    return "它是大的还是小的？", f"{it.size}的"


def possible_qtypes(cv: Canvas) -> list[str]:
    return [q for q in QTYPES if q != "左右" or len(cv.items) >= 2]


def chat_samples(rng: random.Random, canvases: list[Canvas], allowed: list[tuple[str, str]], per_canvas: int = 4,
                 multi_round: float = 0.3, captions: float = 0.2) -> list[Sample]:
    """Training chats: per canvas, `per_canvas` samples: a caption, single questions, or 2-3 rounds."""
    out = []
    for ci, cv in enumerate(canvases):
        for _ in range(per_canvas):
            r = rng.random()
            if r < captions:
                out.append(Sample(ci, [(CAPTION_PROMPT, caption(cv))], ["描述"]))
                continue
            rounds = rng.choice((2, 3)) if r < captions + multi_round else 1
            out.append(conversation(rng, ci, cv, allowed, rounds))
    return out


def referring_questions(rng: random.Random, canvases: list[Canvas], allowed: list[tuple[str, str]], n: int,
                        qtypes: tuple[str, ...] = ONE_SHAPE_QTYPES) -> list[Sample]:
    """`n` single questions about one shape of a canvas with 2-3 shapes: the binding drill. With one shape on the
    canvas any shape read from it is the answer; with several the question must pick the one it names."""
    many = [ci for ci, cv in enumerate(canvases) if len(cv.items) >= 2]
    if not many:
        raise ValueError("referring questions need canvases with at least two shapes")
    out = []
    for _ in range(n):
        ci = rng.choice(many)
        qt = rng.choice(qtypes)
        q, a, _ = ask(rng, canvases[ci], qt, allowed)
        out.append(Sample(ci, [(q, a)], [qt]))
    return out


def conversation(rng: random.Random, ci: int, cv: Canvas, allowed: list[tuple[str, str]], rounds: int,
                 follow_ups: float = 0.5) -> Sample:
    """`rounds` distinct questions about one canvas; after a question about one shape, with
    probability `follow_ups` the next round asks about "它" (that shape)."""
    turns, types, prev = [], [], None
    while len(turns) < rounds:
        if prev is not None and prev[1] is not None and rng.random() < follow_ups:
            q, a = follow_up(rng, prev[1], prev[0])
            qt, prev = "追问", None
        else:
            qt = rng.choice(possible_qtypes(cv))
            q, a, it = ask(rng, cv, qt, allowed)
            prev = (qt, it)
        if any(q == t[0] for t in turns):
            prev = None
            continue  # ask something new
        turns.append((q, a))
        types.append(qt)
    return Sample(ci, turns, types)


def vocabulary_texts() -> list[str]:
    """Every string the world can say (for the decoder's restricted output vocabulary)."""
    words = list(COLORS) + list(SHAPES) + [p for ps in POSITIONS.values() for p in ps] + list(COUNT_WORDS.values())
    return words + [CAPTION_PROMPT, "是一个大的小，", "是什么颜色形状？还在哪里图中有几吗没它左右边",
                    "图中有几个图形？", "有", "没有"]
