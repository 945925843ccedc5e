"""InternVL's chat layout over the course tokenizer, the restricted vocabulary, and the answer-only labels.

Mini-InternVL-Chat-2B talks in InternLM2's ChatML template; the image sits in the first user turn
as `<img>` + N x `<IMG_CONTEXT>` + `</img>`, and the N placeholders are later *replaced* by the
projector's outputs (N = 256 per tile there, 4 per tile here):

    <|im_start|>user
    <img><IMG_CONTEXT>…<IMG_CONTEXT></img>
    红色的是什么形状？<|im_end|>
    <|im_start|>assistant
    五角星<|im_end|>

`image_first=False` puts the image after the question instead (`红色的是什么形状？\n<img>…</img>`). The decoder
is causal: an image token sees only what comes before it. After the question, every image token already
knows which shape is asked about; before it, only the few positions of the reply can look the shape up.
InternVL's template accepts its `<image>` marker anywhere in the prompt, so this is a choice of data, not
of architecture. Notebook 11 keeps InternVL's order; the other one is measured in docs/benchmarks.md
(section mllm-binding) with `VLMConfig(image_first=False)`.

(InternVL also starts with a system turn, "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型…";
we leave it out: it is the same in every sample and would only lengthen our sequences.)

Tokens. The course tokenizer (BERT's Chinese vocab, one token per character) has no chat markers,
but BERT reserved `[unused1]`…`[unused99]` for exactly this: our five special tokens are ids 1-5.
Newlines are whitespace to BERT and vanish; `user` is one token, `assistant` three word pieces.
The decoder does not need 21,128 output rows when the toy world uses ~100 characters: `ChatVocab`
maps the tokenizer's ids to a compact range (0 = [PAD]) and back; the output layer, tied to the
input embedding, covers only those.

Loss. Only the assistant's replies are the model's job: `assistant_labels` keeps the tokens after
each `<|im_start|>assistant` header up to and including its `<|im_end|>` (which teaches the model
to stop), and sets everything else - the image, the question, the headers - to -100 (ignored).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from cnclip_edu.tokenizer import PAD_ID, get_tokenizer

IMG_START, IMG_END, IMG_CONTEXT, IM_START, IM_END = "<img>", "</img>", "<IMG_CONTEXT>", "<|im_start|>", "<|im_end|>"
# BERT's reserved [unused1..5] slots carry the chat markers.
SPECIAL_IDS = {IMG_START: 1, IMG_END: 2, IMG_CONTEXT: 3, IM_START: 4, IM_END: 5}
IMG_START_ID, IMG_END_ID, IMG_CONTEXT_ID, IM_START_ID, IM_END_ID = (SPECIAL_IDS[t] for t in SPECIAL_IDS)
IGNORE_INDEX = -100
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_IDS) + ")")


def image_placeholder(n_tokens: int) -> str:
    """`<img>` + n x `<IMG_CONTEXT>` + `</img>` (n = tiles x tokens per tile)."""
    return IMG_START + IMG_CONTEXT * n_tokens + IMG_END


def render_chat(turns: Sequence[tuple[str, str | None]], n_image_tokens: int = 0, image_text: str | None = None,
                image_first: bool = True) -> str:
    """ChatML text of a conversation. The image goes into the first user turn (if n_image_tokens > 0),
    after the question (image_first=False) or before it as in InternVL's template (image_first=True);
    a last answer of None leaves the prompt open after `<|im_start|>assistant` for generation.
    `image_text` puts words between `<img>` and `</img>` instead (the text-only stage's stand-in)."""
    if image_text is not None and n_image_tokens:
        raise ValueError("give either image tokens or an image text, not both")
    image = image_placeholder(n_image_tokens) if n_image_tokens > 0 else ""
    if image_text is not None:
        image = f"{IMG_START}{image_text}{IMG_END}"
    parts = []
    for k, (question, answer) in enumerate(turns):
        if k == 0 and image:
            question = f"{image}\n{question}" if image_first else f"{question}\n{image}"
        parts.append(f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n")
        if answer is not None:
            parts.append(f"{answer}{IM_END}\n")
        elif k != len(turns) - 1:
            raise ValueError(f"turn {k}: only the last answer may be None (the one to generate)")
    return "".join(parts)


def encode_chat(text: str) -> list[int]:
    """Tokenizer ids of ChatML text: special markers by id, everything between through the tokenizer."""
    tok = get_tokenizer()
    ids: list[int] = []
    for piece in _SPECIAL_RE.split(text):
        if piece in SPECIAL_IDS:
            ids.append(SPECIAL_IDS[piece])
        elif piece:
            ids.extend(tok.encode(piece))
    return ids


# what opens a reply: <|im_start|> as ##sis ##tant
ASSISTANT_HEADER: tuple[int, ...] = tuple(encode_chat(IM_START + "assistant"))


def assistant_labels(ids: Sequence[int], ignore_index: int = IGNORE_INDEX) -> list[int]:
    """Labels for next-token training: the id inside assistant replies (their `<|im_end|>` included),
    `ignore_index` everywhere else. labels[t] is what position t must hold; the loss shifts by one."""
    header = ASSISTANT_HEADER
    labels = [ignore_index] * len(ids)
    inside = False
    for t, tok in enumerate(ids):
        if inside:
            labels[t] = tok
            if tok == IM_END_ID:
                inside = False
        elif t + 1 >= len(header) and tuple(ids[t + 1 - len(header): t + 1]) == header:
            inside = True  # the reply starts after the header's last token
    return labels


@dataclass
class ChatVocab:
    """Tokenizer ids <-> the decoder's compact ids (0 = [PAD], then the specials, then the world's text)."""
    token_ids: list[int]  # compact id -> tokenizer id

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "ChatVocab":
        tok = get_tokenizer()
        fixed = [PAD_ID, *SPECIAL_IDS.values(), *encode_chat("user assistant")]
        seen = set(fixed)
        rest = sorted({i for t in texts for i in tok.encode(t)} - seen)
        return cls(fixed + rest)

    def __post_init__(self):
        self.index = {t: k for k, t in enumerate(self.token_ids)}

    def __len__(self) -> int:
        return len(self.token_ids)

    def to_compact(self, ids: Sequence[int]) -> list[int]:
        try:
            return [self.index[i] for i in ids]
        except KeyError as e:
            word = get_tokenizer().convert_ids_to_tokens([e.args[0]])[0]
            raise ValueError(f"token {word!r} (tokenizer id {e.args[0]}) is not in the chat vocabulary "
                             f"({len(self)} tokens); build it from texts that contain it") from None

    def to_tokenizer(self, compact: Iterable[int]) -> list[int]:
        return [self.token_ids[int(k)] for k in compact]

    def decode(self, compact: Iterable[int]) -> str:
        """Compact ids -> text, stopping at `<|im_end|>` and skipping padding."""
        out = []
        for i in self.to_tokenizer(compact):
            if i == IM_END_ID:
                break
            if i != PAD_ID:
                out.append(i)
        return get_tokenizer().decode(out)
