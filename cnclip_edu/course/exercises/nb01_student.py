"""The student's way, with mistakes: BasicTokenizer, WordPiece and encode as notebook 01's solution writes
them, each argument switched being one usual mistake.

They are the building blocks of the mutants of 01.1-01.6, written the way a student would write them and
deliberately not the library's code: the library routines are tripwires while an answer runs
(nb01_common.py), and a mutant that called one would be rejected for that, not for its own mistake.
"""
from __future__ import annotations

import unicodedata

CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(ch: str, ranges=CJK_RANGES, strict_upper: bool = False) -> bool:
    cp = ord(ch)
    return any(lo <= cp < hi if strict_upper else lo <= cp <= hi for lo, hi in ranges)


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    return 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126 or \
        unicodedata.category(ch).startswith("P")


def _clean(text: str) -> str:
    """Notebook 01's given `clean_text`: control chars dropped, every whitespace -> ' '."""
    return "".join("" if ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"
                   else " " if ch.isspace() else ch for ch in text)


def _student_basic(text: str, *, cjk=_is_cjk, lower=True, norm="NFD", ascii_punct=True, punct=True) -> list[str]:
    """BasicTokenizer as the notebook's solution writes it; each argument changed is one usual mistake."""
    def is_punct(ch: str) -> bool:
        return _is_punct(ch) if ascii_punct else unicodedata.category(ch).startswith("P")

    text = _clean(text)
    text = "".join(f" {ch} " if cjk(ch) else ch for ch in text)
    words = []
    for word in text.split():
        if lower:
            word = word.lower()
        if norm:
            word = unicodedata.normalize(norm, word)
        word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
        if not punct:
            words.append(word)
            continue
        piece = ""
        for ch in word:
            if is_punct(ch):
                words += [piece, ch] if piece else [ch]
                piece = ""
            else:
                piece += ch
        if piece:
            words.append(piece)
    return words


def _student_wordpiece(word: str, vocab: dict[str, int], *, prefix=True, longest_first=True,
                       whole_word_unk=True, too_long=lambda n: n > 200) -> list[str]:
    """The greedy loop as the notebook's solution writes it; each argument changed is one usual mistake."""
    if too_long(len(word)):
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        ends = range(len(word), start, -1) if longest_first else range(start + 1, len(word) + 1)
        match = None
        for end in ends:
            cand = ("##" if start > 0 and prefix else "") + word[start:end]
            if cand in vocab:
                match = cand
                break
        if match is None:
            if whole_word_unk:
                return ["[UNK]"]
            pieces.append("[UNK]")  # only this part unknown; carry on after it
            start += 1
            continue
        pieces.append(match)
        start = end
    return pieces


def _student_encode(text: str, vocab: dict[str, int], *, mistake: str = "") -> list[int]:
    if mistake == "chars":
        return [vocab.get(ch, 100) for ch in text if not ch.isspace()]
    words = text.lower().split() if mistake == "no_basic" else _student_basic(text)
    ids = [vocab[p] for w in words for p in _student_wordpiece(w, vocab)]
    if mistake == "drop_unk":
        ids = [i for i in ids if i != 100]
    if mistake == "cls_sep":
        ids = [101] + ids + [102]
    return ids
