"""What the exercises of notebook 01 (the tokenizer) share: the library's tokenizer, what each exercise
builds, and the random texts the hidden cases draw.

An answer gets a copy of the library's vocab (`_vocab_copy`), so that an answer that writes into its vocab
cannot harm the library's. While an answer runs, the library routines its exercise builds (`BUILDS_*`)
are tripwires (`tripwire.py`): an answer that just calls them is told so; later exercises include the
earlier ones, because the student's encode / tokenize must run on the student's own pieces.
`hidden(seed)` draws more of the kinds the public cases hold: the ideograph blocks and their edges, kana,
hangul, accented Latin, full-width letters, punctuation, whitespace, words and sentences from the vocab.
"""
from __future__ import annotations

import random
import string
from functools import lru_cache


def _tok():
    from cnclip_edu.tokenizer import get_tokenizer

    return get_tokenizer()


def _vocab() -> dict[str, int]:
    return _tok().vocab


def _vocab_copy() -> dict[str, int]:
    """What an answer gets: a copy, so that an answer that writes into its vocab cannot harm the library's."""
    return dict(_tok().vocab)


# what each exercise builds (tripwires while the answer runs); later exercises include the earlier ones,
# because the student's encode / tokenize must run on the student's own pieces
_T = "cnclip_edu.tokenizer."
BUILDS_BASIC = (_T + "Tokenizer.basic_tokenize", _T + "is_cjk")
BUILDS_WORDPIECE = (_T + "Tokenizer.wordpiece", _T + "Tokenizer._wordpiece", _T + "Tokenizer.wordpiece_steps")
BUILDS_VOCAB = (_T + "load_vocab",)
BUILDS_ENCODE = BUILDS_BASIC + BUILDS_WORDPIECE + (
    _T + "Tokenizer.encode", _T + "Tokenizer.encode_batch", _T + "Tokenizer.tokenize", _T + "Tokenizer._id_rows")
BUILDS_TOKENIZE = BUILDS_ENCODE + (_T + "tokenize",)

# code points on both sides of every ideograph block's edges, each between two letters: a character
# counted as an ideograph comes out as a word of its own, any other one stays glued to its neighbours
EDGE_CHARS = [0x4E00, 0x9FFF, 0x3400, 0x4DBF, 0xF900, 0xFAFF, 0x20000, 0x2A6DF, 0x2B73F, 0x2CEAF,
              0x2F800, 0x2FA1F, 0x33FF, 0xA000, 0x3041, 0x30AB, 0xAC00]   # the last five: outside the blocks
EDGE_TEXT = " ".join(f"x{chr(cp)}y" for cp in EDGE_CHARS)

# pools for the hidden cases: (code point ranges or a string of characters)
_POOLS = {
    "basic": [(0x4E00, 0x9FFF)], "ext_a": [(0x3400, 0x4DBF)], "ext_b_e": [(0x20000, 0x2CEAF)],
    "compat": [(0xF900, 0xFAFF), (0x2F800, 0x2FA1F)], "kana": [(0x3041, 0x30FA)], "hangul": [(0xAC00, 0xD7A3)],
    "latin": string.ascii_letters + "àéîõüçñÅÉÖß", "digits": string.digits + "０１２３", "ascii_punct": string.punctuation,
    "cjk_punct": "，。、；：？！“”‘’《》「」【】（）…—·～", "fullwidth": "ＡＢＣＸｙｚ", "space": "  \t\u3000\n\u200b",
    "symbols": "￥€£©°±×÷😀🎉", "edges": "".join(chr(c) for c in EDGE_CHARS),
}


def _draw(rng: random.Random, pool) -> str:
    if isinstance(pool, str):
        return rng.choice(pool)
    lo, hi = rng.choice(pool)
    return chr(rng.randint(lo, hi))


def _random_text(rng: random.Random, n: int) -> str:
    names = list(_POOLS)
    return "".join(_draw(rng, _POOLS[rng.choice(names)]) for _ in range(n))

@lru_cache(maxsize=1)
def _vocab_parts() -> tuple[list[str], list[str]]:
    """ASCII word heads and '##' tails of the vocab (for words drawn from it)."""
    vocab = _vocab()
    heads = sorted(t for t in vocab if t.isascii() and t.isalnum() and t == t.lower())
    tails = sorted(t[2:] for t in vocab if t.startswith("##") and t[2:].isascii() and t[2:].isalnum()
                   and t[2:] == t[2:].lower())
    return heads, tails


def _random_vocab_word(rng: random.Random) -> str:
    heads, tails = _vocab_parts()
    return rng.choice(heads) + "".join(rng.choice(tails) for _ in range(rng.randint(0, 3)))

@lru_cache(maxsize=1)
def _vocab_chars() -> list[str]:
    return [t for t in list(_vocab())[670:8000] if len(t) == 1]


def _random_sentence(rng: random.Random) -> str:
    chars = _vocab_chars()
    parts = []
    for _ in range(rng.randint(2, 8)):
        kind = rng.random()
        if kind < 0.5:
            parts.append("".join(rng.choice(chars) for _ in range(rng.randint(1, 6))))
        elif kind < 0.7:
            parts.append(" " + _random_vocab_word(rng).capitalize() + " ")
        elif kind < 0.85:
            parts.append(str(rng.randint(0, 10 ** rng.randint(1, 6))))
        else:
            parts.append(rng.choice(_POOLS["cjk_punct"] + _POOLS["ascii_punct"] + "😀￥"))
    return "".join(parts)
