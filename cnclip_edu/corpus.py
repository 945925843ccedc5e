"""A large, deterministic corpus of Chinese sentences for testing and timing the tokenizer.

No real caption set can be downloaded here, so the tokenizer's parity tests, its benchmark and
notebook 01 glue sentences from the ~349k words of jieba's dictionary instead: real Chinese words
(traditional characters too), with English words, numbers, punctuation and spaces mixed in, the
kinds of text that exercise every branch of BasicTokenizer + WordPiece.
"""
from __future__ import annotations

import random
from pathlib import Path

_ASCII_WORDS = ("iPhone", "iPad", "Nike", "adidas", "USB", "Type-C", "WiFi", "5G", "LED", "XL", "XXL",
                "T-shirt", "OK", "DIY", "App", "vlog", "Hello", "world", "unaffable", "running", "shoes",
                "MacBook", "PRO", "max", "mini", "HDMI", "Bluetooth", "NBA", "PM2.5", "H&M", "cos", "KTV")
# how many pieces (dictionary words, mostly) a sentence is glued from: drawn from this set, so there is
# no sentence of 15-19 pieces (notebook 01's length histogram shows the gap between 14 and 20)
SENTENCE_WORD_COUNTS = (2, 3, 4, 5, 6, 8, 10, 14, 20)
_PUNCT = ("，", "。", "、", "！", "？", "；", "：", "“", "”", "（", "）", "《", "》", "…", "—", ",", ".", "!",
          "?", "(", ")", "-", "/", "&", "%", "~", "·")


def jieba_corpus(n: int = 100_000, seed: int = 0) -> list[str]:
    """`n` deterministic sentences built from the ~349k words of jieba's dictionary.

    A real, large Chinese vocabulary of words (including traditional characters and a few
    ASCII words): each sentence is glued from a number of pieces drawn from SENTENCE_WORD_COUNTS
    (2-20), most of them dictionary words, with English words, numbers, punctuation and spaces mixed
    in. Used by the parity tests, the benchmark and notebook 01. Needs `jieba`.
    """
    try:
        import jieba
    except ImportError as e:  # a dev dependency, not a runtime one
        raise ImportError("jieba_corpus needs jieba: pip install jieba") from e
    path = Path(jieba.__file__).resolve().parent / "dict.txt"
    words = [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line]
    rng = random.Random(seed)
    rng.shuffle(words)
    out, k = [], 0
    for _ in range(n):
        parts = []
        for _ in range(rng.choice(SENTENCE_WORD_COUNTS)):
            r = rng.random()
            if r < 0.06:
                parts.append(rng.choice(_ASCII_WORDS))
            elif r < 0.10:
                parts.append(rng.choice((str(rng.randrange(10 ** rng.randrange(1, 7))),
                                         f"{rng.random() * 100:.1f}", f"{rng.randrange(100)}%")))
            elif r < 0.16:
                parts.append(rng.choice(_PUNCT))
            else:
                parts.append(words[k % len(words)])  # walk the shuffled dict: every word gets used
                k += 1
            if rng.random() < 0.1:
                parts.append(" ")
        out.append("".join(parts))
    return out
