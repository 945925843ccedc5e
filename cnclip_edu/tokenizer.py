"""BERT WordPiece tokenizer for Chinese, written from scratch (same ids as `cn_clip.clip.tokenize`).

    from cnclip_edu.tokenizer import tokenize, decode, get_tokenizer
    tokens = tokenize(["杰尼龟", "皮卡丘"], context_length=52)   # LongTensor (2, 52)
    decode(tokens[0])                                          # '杰尼龟'
    get_tokenizer().tokenize("iPhone 12 手机壳")                # ['iphone', '12', '手', '机', '壳']

Chinese-CLIP's text tower is RoBERTa-wwm-ext, a BERT trained on Chinese, so its tokenizer is
Google's original BERT tokenizer with the 21,128-entry Chinese vocab. It runs in two stages:

1. BasicTokenizer: drop control characters, map every whitespace to ' ', put each CJK ideograph
   in a word of its own (Chinese has no spaces; the vocab holds single characters), lower-case,
   strip accents (NFD, then drop the combining marks, category Mn) and split off punctuation.
2. WordPiece: cut each word greedily into the longest vocab pieces, left to right; pieces after
   the first carry a '##' prefix. A word with a part that no piece covers, or with more than
   200 characters, becomes one [UNK].

Speed (MUGE has ~250k captions). `basic_tokenize` + `_wordpiece` are the readable version. The
batch path (`tokenize`, `encode`) gets the same ids with almost no Python work per character:
1. a whole chunk of texts is joined and mapped through one code-point lookup table (numpy): control
   chars are dropped, whitespace becomes ' ', and every character that is always a token of its
   own -- CJK ideographs, most punctuation -- becomes its *id character* chr(0xF0000 + id);
2. one `lower()` and one NFD normalisation for the whole chunk (C code);
3. one regex split isolates what is left between id chars and spaces (latin words, numbers); each
   distinct run is WordPiece'd once and cached, and a `"".join` turns runs into id characters;
4. the id string becomes the (N, L) tensor through UTF-32 bytes, without a Python int per token.
Doing lower() and NFD on the whole chunk equals the reference's per-word versions because every
boundary (whitespace, ideograph, id char) is uncased and a canonical starter (see `_context_free`);
tests/test_tokenizer.py checks both paths on every Unicode code point and on 100k+ real strings.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

VOCAB_PATH = Path(__file__).resolve().parent / "vocab" / "vocab.txt"
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
VOCAB_SIZE = 21128
PREFIX = "##"  # marks a piece that continues a word
SPECIAL_IDS = frozenset({PAD_ID, CLS_ID, SEP_ID})

# CJK Unified Ideographs and their extensions / compatibility blocks, exactly BERT's list.
# (Hiragana, Katakana and Hangul are NOT here: BERT treats them like letters, split only at whitespace and
# punctuation -- although Japanese is written without spaces.)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph (a character that is always a token of its own)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: every non-alphanumeric printable ASCII char, plus Unicode category P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:  # $ ^ ` are not P*
        return True
    return unicodedata.category(ch).startswith("P")


@dataclass(frozen=True)
class _CharTables:
    clean: dict[int, str | None]  # str.translate table: control chars -> removed, whitespace -> ' '
    strip_marks: dict[int, None]  # str.translate table: combining marks (Mn) -> removed
    word_re: re.Pattern           # one CJK char | one punctuation char | a run of other non-space chars
    punct: tuple[int, ...]        # code points of the punctuation characters


def _char_class(cps: Iterable[int]) -> str:
    """A regex character class body for the code points, with runs written as ranges."""
    cps = sorted(cps)
    parts, i = [], 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = re.escape(chr(cps[i])), re.escape(chr(cps[j]))
        parts.append(lo if i == j else f"{lo}-{hi}")
        i = j + 1
    return "".join(parts)


@lru_cache(maxsize=1)
def _char_tables() -> _CharTables:
    """Classify all 1.1M code points once (~0.2 s); everything after that is table look-ups."""
    clean: dict[int, str | None] = {}
    marks: dict[int, None] = {}
    punct: list[int] = []
    for cp in range(sys.maxunicode + 1):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat[0] == "P" or (cp < 128 and is_punctuation(ch)):
            punct.append(cp)
        elif cat == "Mn":
            marks[cp] = None
        if cp == 0 or cp == 0xFFFD or (cat in ("Cc", "Cf") and ch not in "\t\n\r"):
            clean[cp] = None
        elif ch.isspace():  # Zs, \t\n\r -- and U+2028/U+2029, on which the reference's str.split() splits
            clean[cp] = " "
    del clean[0x20]  # ' ' -> ' ' is a no-op
    cjk = "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in _CJK_RANGES)
    pun = _char_class(punct)
    word_re = re.compile(f"[{cjk}]|[{pun}]|[^ {cjk}{pun}]+")
    return _CharTables(clean, marks, word_re, tuple(punct))


def load_vocab(path: str | Path = VOCAB_PATH) -> dict[str, int]:
    """token -> id, one token per line (id = line number). Lines are kept verbatim (no strip)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as e:
        raise FileNotFoundError(f"cannot read the vocab file {path}: {e}") from e
    if lines and lines[-1] == "":
        lines.pop()
    vocab: dict[str, int] = {}
    for i, tok in enumerate(lines):
        if tok in vocab:
            raise ValueError(f"{path}, line {i + 1}: token {tok!r} already on line {vocab[tok] + 1}")
        vocab[tok] = i
    return vocab


# The fast path carries token id i as the character chr(_ID_BASE + i) (private-use planes 15-16),
# so that a whole batch of ids is one str: joined, split and converted to a tensor in C.
_ID_BASE = 0xF0000
_ID_CHARS = re.compile(f"[{chr(_ID_BASE)}-{chr(sys.maxunicode)}]")
_REMOVED = sys.maxunicode + 1  # marks a character the cleaning drops
_CHUNK = 4096  # texts per fast-path step: bounds the temporary lists


def _id_str(ids: Iterable[int]) -> str:
    return "".join(chr(_ID_BASE + i) for i in ids)


def _context_free(ch: str) -> bool:
    """Can `ch` (a CJK or punctuation char) be swapped for an id char before lower() and NFD?

    Yes if NFD leaves it one character and it does not take part in lower()'s only context rule
    (final sigma: 'ΑΣ' -> 'ας', but 'ΑΣ.Α' -> 'ασ.α' since '.' is "case-ignorable"): the id
    chars, like CJK ideographs, are neither cased nor case-ignorable.
    """
    nfd = unicodedata.normalize("NFD", ch)
    return len(nfd) == 1 and (is_cjk(nfd) or nfd == ch) and ("aΣ" + ch + "b").lower() == "aς" + ch.lower() + "b"


class Tokenizer:
    """BasicTokenizer + WordPiece over a BERT vocab (lower-casing, as the Chinese BERT vocab needs)."""

    def __init__(self, vocab_path: str | Path = VOCAB_PATH, max_chars_per_word: int = 200,
                 max_cache: int = 1_000_000):
        self.vocab = load_vocab(vocab_path)
        if len(self.vocab) > sys.maxunicode + 1 - _ID_BASE:
            raise ValueError(f"{vocab_path}: {len(self.vocab)} tokens is more than this tokenizer supports")
        if "[UNK]" not in self.vocab:
            raise ValueError(f"{vocab_path}: the vocab has no [UNK] token")
        self.inv_vocab = {i: t for t, i in self.vocab.items()}
        self.unk_id = self.vocab["[UNK]"]
        self.max_chars_per_word = max_chars_per_word
        # WordPiece never needs to try a piece longer than the longest one in the vocab.
        self._max_head = max(len(t) for t in self.vocab if not t.startswith(PREFIX))
        self._max_tail = max(len(t) - len(PREFIX) for t in self.vocab if t.startswith(PREFIX))
        self._tables = t = _char_tables()
        # Fast path, step 1: one translate cleans the text AND turns every character that is always
        # a token of its own (CJK ideographs, most punctuation) into its id character.
        table = {cp: _REMOVED if v is None else ord(v) for cp, v in t.clean.items()}
        cjk = chain.from_iterable(range(lo, hi + 1) for lo, hi in _CJK_RANGES)
        for cp in chain(cjk, t.punct):
            if _context_free(chr(cp)):
                table[cp] = _ID_BASE + self._wordpiece(unicodedata.normalize("NFD", chr(cp)))[0]
        self._fast_lut = np.arange(sys.maxunicode + 1, dtype=np.uint32)  # code point -> code point
        self._fast_lut[list(table)] = list(table.values())
        # step 2: what is left between id chars and spaces (latin words, numbers, ...) is looked up
        # run by run in a cache; a run is cut into words only the first time it is seen.
        self._run_re = re.compile(f"([^ \n{chr(_ID_BASE)}-{chr(sys.maxunicode)}]+)")
        self._cache: dict[str, str] = {}  # word -> its ids as an id str
        self._max_cache = max_cache

    def __len__(self) -> int:
        return len(self.vocab)

    # -- stage 1: BasicTokenizer (readable version; the fast path below does the same in bulk) -----
    def basic_tokenize(self, text: str) -> list[str]:
        """Words before WordPiece: cleaned, split, lower-cased, accents stripped."""
        text = text.translate(self._tables.clean).lower()
        text = unicodedata.normalize("NFD", text)  # 'é' -> 'e' + U+0301 (a combining mark, Mn)
        words = (w.translate(self._tables.strip_marks) for w in self._tables.word_re.findall(text))
        return [w for w in words if w]

    # -- stage 2: WordPiece ----------------------------------------------------------------------
    def _wordpiece(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first split of one word into vocab ids."""
        word = word.translate(self._tables.strip_marks)
        n = len(word)
        if n == 0:
            return ()
        if n > self.max_chars_per_word:
            return (self.unk_id,)
        vocab, ids, start = self.vocab, [], 0
        while start < n:
            end = min(n, start + (self._max_tail if start else self._max_head))
            while end > start:
                tid = vocab.get(word[start:end] if start == 0 else PREFIX + word[start:end])
                if tid is not None:
                    break
                end -= 1
            else:  # no piece matches at `start`: the whole word is unknown
                return (self.unk_id,)
            ids.append(tid)
            start = end
        return tuple(ids)

    def wordpiece(self, word: str) -> list[str]:
        """The pieces of one word (as BasicTokenizer outputs it): 'unaffable' -> ['u', '##na', '##ff', '##able']."""
        return [self.inv_vocab[i] for i in self._wordpiece(word)]

    def wordpiece_steps(self, word: str) -> list[tuple[int, str, str | None]]:
        """Every candidate WordPiece tries for one word: (start, candidate, matched token or None).

        For teaching (notebook 01); `encode` uses the cached fast path.
        """
        steps, start, n = [], 0, len(word)
        while start < n:
            for end in range(n, start, -1):
                cand = word[start:end] if start == 0 else PREFIX + word[start:end]
                hit = cand in self.vocab
                steps.append((start, cand, cand if hit else None))
                if hit:
                    start = end
                    break
            else:
                steps.append((start, word, "[UNK]"))
                break
        return steps

    # -- the batch fast path -----------------------------------------------------------------------
    def _id_rows_slow(self, texts: list[str]) -> list[str]:
        return [_id_str(chain.from_iterable(map(self._wordpiece, self.basic_tokenize(t)))) for t in texts]

    def _translate_joined(self, texts: list[str]) -> str:
        r"""Join the texts with '\n' and map every code point through the lookup table at once.

        (A `str.translate` with a dict looks each character up in Python; a numpy gather is ~20x
        faster.) A '\n' inside a text is whitespace and becomes ' ', so '\n' can separate the rows.
        """
        raw = "\n".join(texts)
        cps = np.frombuffer(raw.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)  # (C,)
        out = self._fast_lut[cps]                                                       # (C,)
        seps = np.cumsum([len(t) + 1 for t in texts[:-1]], dtype=np.int64) - 1
        out[seps] = ord("\n")
        out = out[out != _REMOVED]
        return out.tobytes().decode("utf-32-le", "surrogatepass")

    def _id_rows(self, texts: list[str]) -> list[str]:
        r"""Ids of each text (no [CLS]/[SEP]), each row as an id str; texts contain no '\n' after cleaning."""
        rows: list[str] = []
        for i in range(0, len(texts), _CHUNK):
            chunk = texts[i:i + _CHUNK]
            if _ID_CHARS.search("".join(chunk)):  # a text holds the private-use chars we use as ids
                rows += self._id_rows_slow(chunk)
                continue
            big = self._translate_joined(chunk).lower()
            if not big.isascii():
                big = unicodedata.normalize("NFD", big)
            pieces = self._run_re.split(big)  # even items: id chars, ' ', '\n'; odd: runs to look up
            cache = self._cache  # a local reference: another thread may swap in a fresh dict
            missing = set(pieces[1::2]).difference(cache)
            if len(cache) + len(missing) > self._max_cache:
                cache = self._cache = {}
                missing = set(pieces[1::2])
            for run in missing:
                cache[run] = _id_str(chain.from_iterable(map(self._wordpiece, self._tables.word_re.findall(run))))
            # cache.get(p, p): a run becomes its ids, an even item stays as it is
            rows += "".join(map(cache.get, pieces, pieces)).replace(" ", "").split("\n")
        return rows

    # -- public ----------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of one text, without [CLS]/[SEP] and without truncation."""
        return [ord(c) - _ID_BASE for c in self._id_rows([text])[0]]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [[ord(c) - _ID_BASE for c in row] for row in self._id_rows(list(texts))]

    def tokenize(self, text: str) -> list[str]:
        """Token strings of one text (pieces after the first of a word start with '##')."""
        return [self.inv_vocab[i] for i in self.encode(text)]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            if i not in self.inv_vocab:
                raise ValueError(f"token id {i} is outside the vocab (0..{len(self.vocab) - 1})")
            out.append(self.inv_vocab[i])
        return out

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Ids -> readable text. Spaces go only between two word pieces that start new words
        (never around Chinese characters or punctuation), so decoding, then tokenizing again gives
        the same ids (unless there was an [UNK]); the original spacing is not recoverable."""
        out: list[str] = []
        prev_wordlike = False
        for tok in self.convert_ids_to_tokens(i for i in ids if not (skip_special_tokens and i in SPECIAL_IDS)):
            if tok.startswith(PREFIX) and len(tok) > len(PREFIX):
                out.append(tok[len(PREFIX):])
                continue
            special = tok.startswith("[") and tok.endswith("]") and len(tok) > 2  # [CLS], [UNK], ...
            wordlike = not special and (len(tok) > 1 or not (is_cjk(tok) or is_punctuation(tok)))
            if out and prev_wordlike and wordlike:
                out.append(" ")
            out.append(tok)
            prev_wordlike = wordlike
        return "".join(out)


@lru_cache(maxsize=1)
def get_tokenizer() -> Tokenizer:
    """The shared tokenizer over the packaged Chinese BERT vocab (built once, ~0.3 s)."""
    tok = Tokenizer()
    if len(tok) != VOCAB_SIZE:
        raise RuntimeError(f"{VOCAB_PATH}: expected {VOCAB_SIZE} tokens, found {len(tok)}")
    return tok


def _as_text_list(texts: str | Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Iterable):
        raise TypeError(f"tokenize expects a str or a list of str, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"tokenize: item {i} is {type(t).__name__} ({t!r:.40}), expected str")
    return texts


def tokenize(texts: str | Sequence[str], context_length: int = 52) -> torch.Tensor:
    """Texts -> LongTensor (N, context_length): [CLS] + ids[:context_length-2] + [SEP], then 0s."""
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        raise TypeError(f"context_length must be an int, got {type(context_length).__name__}")
    if context_length < 2:
        raise ValueError(f"context_length must be >= 2 (room for [CLS] and [SEP]), got {context_length}")
    texts = _as_text_list(texts)
    rows = [r[:context_length - 2] for r in get_tokenizer()._id_rows(texts)]
    n = len(rows)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=n)                   # (N,)
    # all ids as one buffer: the UTF-32 code units are the code points, i.e. _ID_BASE + id
    flat = np.frombuffer("".join(rows).encode("utf-32-le"), dtype=np.uint32)         # (T,)
    out = np.zeros((n, context_length), dtype=np.int64)                              # (N, L)
    out[:, 0] = CLS_ID
    # row-major boolean assignment fills each row's first len(row) slots, in order
    out[:, 1:][np.arange(context_length - 1) < lengths[:, None]] = flat.astype(np.int64) - _ID_BASE
    out[np.arange(n), lengths + 1] = SEP_ID
    return torch.from_numpy(out)


def choose_context_length(n_ids: Sequence[int] | np.ndarray, q: float = 0.99) -> int:
    """The smallest context_length L at which a share >= q of the texts fit whole.

    `n_ids[i]` is the number of ids of text i without [CLS]/[SEP] (`len(encode(text))`); text i fits
    in L when n_ids[i] + 2 <= L. With the counts sorted, L = sorted(n_ids)[j] + 2 for the first j
    whose share (j + 1) / N reaches q (when q * N is not a whole number: j = ceil(q * N) - 1).
    np.percentile's default linear interpolation can land between two counts and give an L that
    keeps fewer than q * N texts; notebook 01 picks L with this function instead.
    """
    n = np.sort(np.asarray(n_ids, dtype=np.int64).ravel())                         # (N,)
    if n.size == 0 or not 0 < q <= 1:
        raise ValueError(f"choose_context_length needs at least one count and 0 < q <= 1, got {n.size}, {q}")
    fit_share = np.arange(1, n.size + 1) / n.size          # share of the texts that fit in L = n[j] + 2
    k = int(np.argmax(fit_share >= q))                     # the first j whose share reaches q
    return int(n[k]) + 2


def decode(ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
    """One row of ids (list or 1-D tensor) -> text; [CLS]/[SEP]/padding are dropped by default."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"decode takes one row of ids (1-D), got shape {tuple(ids.shape)}; "
                             "for a batch use [decode(row) for row in ids]")
        ids = ids.tolist()
    return get_tokenizer().decode(ids, skip_special_tokens=skip_special_tokens)


# re-exported here: notebook 01, the tokenizer tests and bench_tokenizer.py call tokenizer.jieba_corpus
from cnclip_edu.corpus import jieba_corpus  # noqa: E402,F401
