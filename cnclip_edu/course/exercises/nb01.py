"""Notebook 01 (the tokenizer): the student writes the whole tokenizer, piece by piece.

01.1 `is_cjk` + `basic_tokenize`, 01.2 `wordpiece(word, vocab)`, 01.3 `load_vocab(path)`,
01.4 `encode_batch(texts, vocab)` (01.1 + 01.2 + the vocab, [UNK] = 100, each distinct word cut once per
call; the cell gives `encode(text, vocab)` on top of it), 01.5 `tokenize(texts, vocab, context_length)` on
top of the student's own `encode_batch`, 01.6 `decode(ids, vocab)` (ids back to text,
the spacing rule of `cnclip_edu.decode`), 01.7 `choose_context_length(n_ids, q)` (the smallest L that
keeps a share q of the texts whole; section 6 picks L with it). 01.3-01.5 are the names the capstone of
notebook 05 loads from the student's `%%my_clip` cells.

Each answer is compared with the library (`Tokenizer.basic_tokenize`, `Tokenizer.wordpiece`,
`load_vocab`, `Tokenizer.encode_batch`, `cnclip_edu.tokenize`, `Tokenizer.decode`, `choose_context_length`), which tests/test_tokenizer.py proves equal
to cn_clip on every Unicode code point and 100k+ sentences. The public cases hold what trips
students up (accents, full-width letters, `￥99`, emoji, the edges of the ideograph blocks, CJK
punctuation, words of exactly 200 / 201 characters, the U+2028 line of vocab.txt, a row that fits
exactly); `hidden(seed)` draws more of the same kinds. While an answer runs, the library routines
the exercise builds are tripwires (`tripwire.py`): an answer that just calls them is told so.
The mutants are the plausible wrong answers, written the way a student would write them, and
never call a tripped routine (so each is rejected for its own mistake).
"""
from __future__ import annotations

import random
import string
import tempfile
import unicodedata
from functools import lru_cache
from pathlib import Path

from .core import Case, Exercise, register
from .tripwire import guard_for


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

# ----------------------------------------------------------------------------- the student's way, with mistakes
# (the mutants' building blocks; deliberately not the library's code, which the tripwires would catch)
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


# ----------------------------------------------------------------------------- 01.1 BasicTokenizer
# code points on both sides of every ideograph block's edges, each between two letters: a character
# counted as an ideograph comes out as a word of its own, any other one stays glued to its neighbours
EDGE_CHARS = [0x4E00, 0x9FFF, 0x3400, 0x4DBF, 0xF900, 0xFAFF, 0x20000, 0x2A6DF, 0x2B73F, 0x2CEAF,
              0x2F800, 0x2FA1F, 0x33FF, 0xA000, 0x3041, 0x30AB, 0xAC00]   # the last five: outside the blocks
EDGE_TEXT = " ".join(f"x{chr(cp)}y" for cp in EDGE_CHARS)
BASIC_CASES = [
    ("重音与大写 Café naïve ÅNGSTRÖM", "Café naïve ÅNGSTRÖM"),
    ("中英混排 iPhone 15 Pro 手机壳", "iPhone 15 Pro 手机壳"),
    ("价格 这件T恤只要￥99.9！", "这件T恤只要￥99.9！"),
    ("ASCII 符号 $99 美元 a^b `c`", "$99 美元 a^b `c`"),
    ("全角字母数字 ＡＢＣ１２３，全角！", "ＡＢＣ１２３，全角！"),
    ("控制字符与各种空白", "零\u200b宽\u3000空格\t制表  两个空格\n换行"),
    ("表情与扩展区汉字 😀表情 𠮷野家", "😀表情 𠮷野家"),
    ("中文标点 “你好”，《三体》、【注】……——「引号」", "“你好”，《三体》、【注】……——「引号」"),
    ("日文假名与韩文（不是汉字）", "ひらがなとカタカナ 한국어"),
    ("汉字各区段的首尾，以及紧挨在区段外的字", EDGE_TEXT),
    ("邮箱 e-mail: user@mail.cn", "e-mail: user@mail.cn"),
]

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


def _library_basic_tokenize(text: str) -> list[str]:
    return _tok().basic_tokenize(text)


_guard_basic = guard_for(_library_basic_tokenize, BUILDS_BASIC, warm=_tok)


def _basic_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    texts = [_random_text(rng, rng.randint(8, 40)) for _ in range(6)]
    edge = " ".join(f"{rng.choice('abc')}{ch}{rng.choice('xyz')}" for ch in rng.sample(_POOLS["edges"], 8))
    return [Case("随机混排的文本（各区段汉字、假名、韩文、拉丁字母、标点、空白）", lambda f, t=t: _guard_basic(f)(t))
            for t in texts] + [Case("区段边界附近的字夹在字母中间", lambda f: _guard_basic(f)(edge))]


register(Exercise(
    id="01.1", title="BasicTokenizer：汉字单独成词、小写、去重音、切标点", points=3,
    hint="清洗 (clean_text) 已经给出，先调用它。之后按第 3 部分的顺序：一个字是不是汉字，只看它的码位落没落在 CJK_RANGES 的"
         "某个区段里（两端都算；假名、韩文不在里面），在每个汉字两边加空格，再按任意空白切开；每个词先小写，再做 NFD 分解，"
         "然后删掉类别为 Mn 的字符（不先分解就删不掉重音）；最后把每个标点（is_punctuation 说了算）单独切成一个词，"
         "标点前后的部分各成一个词。",
    reference=_library_basic_tokenize,
    cases=lambda: [Case(label, lambda f, t=text: _guard_basic(f)(t)) for label, text in BASIC_CASES],
    hidden=_basic_hidden,
    builds=BUILDS_BASIC,
    mutants=lambda: {
        "汉字没有单独切开": lambda t: _student_basic(t, cjk=lambda ch: False),
        "is_cjk 只认基本区 4E00–9FFF": lambda t: _student_basic(t, cjk=lambda ch: _is_cjk(ch, CJK_RANGES[:1])),
        "is_cjk 漏了兼容区": lambda t: _student_basic(t, cjk=lambda ch: _is_cjk(ch, CJK_RANGES[:6])),
        "is_cjk 把假名也算成汉字": lambda t: _student_basic(
            t, cjk=lambda ch: _is_cjk(ch, CJK_RANGES + ((0x3040, 0x30FF),))),
        "is_cjk 区段上端没算进去（< 而不是 <=）": lambda t: _student_basic(
            t, cjk=lambda ch: _is_cjk(ch, strict_upper=True)),
        "忘了小写 (lower)": lambda t: _student_basic(t, lower=False),
        "去重音前忘了 NFD 分解": lambda t: _student_basic(t, norm=None),
        "用了 NFKC（全角变成了半角）": lambda t: _student_basic(t, norm="NFKC"),
        "只认 Unicode 标点，漏了 ASCII 的 $ ^ `": lambda t: _student_basic(t, ascii_punct=False),
        "没有切标点": lambda t: _student_basic(t, punct=False),
    },
))

# ----------------------------------------------------------------------------- 01.2 WordPiece
WORDPIECE_CASES = ["unaffable", "￥99", "1234567", "iphone15", "ａｂｃ１２３", "12", "😀", "x😀", "，",
                   "a" * 200, "a" * 201]


def _library_wordpiece(word: str, vocab: dict[str, int]) -> list[str]:
    return _tok().wordpiece(word)   # the cases always pass the library's vocab


_guard_wp = guard_for(_library_wordpiece, BUILDS_WORDPIECE, warm=_tok)


def _wp_label(w: str) -> str:
    return repr(w) if len(w) < 20 else f"'{w[0]}' × {len(w)}（长度恰好 {len(w)} 个字符的词）"


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


def _wordpiece_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    words = [("由词表片段随机拼成的词", _random_vocab_word(rng)) for _ in range(6)]
    for _ in range(2):
        w = _random_vocab_word(rng)
        i = rng.randint(0, len(w))
        words.append(("中间夹着一个词表里没有的字符的词", w[:i] + rng.choice("😀🎉♞☃") + w[i:]))
    for n in (200, 201, rng.choice([199, 202])):
        words.append((f"长度 {n} 个字符、由随机字母数字组成的词",
                      "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))))
    return [Case(label, lambda f, w=w: _guard_wp(f)(w, _vocab_copy())) for label, w in words]


register(Exercise(
    id="01.2", title="WordPiece：贪心最长匹配", points=3,
    hint="每次从当前起点出发找词表里“最长”的那一片：候选从长往短试；不是词首的片段要带 ## 才查得到；"
         "某个起点一片都找不到时，按 BERT 的规定整个词算一个 [UNK]；长度上限是“超过 200 才算太长”。",
    reference=_library_wordpiece,
    cases=lambda: [Case(_wp_label(w), lambda f, w=w: _guard_wp(f)(w, _vocab_copy())) for w in WORDPIECE_CASES],
    hidden=_wordpiece_hidden,
    builds=BUILDS_WORDPIECE,
    needs=(),
    mutants=lambda: {
        "后续片段忘了加 ##": lambda w, v: _student_wordpiece(w, v, prefix=False),
        "从最短的子串开始试": lambda w, v: _student_wordpiece(w, v, longest_first=False),
        "只把匹配不上的那一段变成 [UNK]": lambda w, v: _student_wordpiece(w, v, whole_word_unk=False),
        "忘了 200 个字符的上限": lambda w, v: _student_wordpiece(w, v, too_long=lambda n: False),
        "上限差一：恰好 200 个字符也当成太长 (>=)": lambda w, v: _student_wordpiece(w, v, too_long=lambda n: n >= 200),
    },
))

# ----------------------------------------------------------------------------- 01.3 load_vocab
SMALL_VOCAB = ["[PAD]", "[UNK]", "杰", "尼", "龟", "##able", "unaff"]   # the last line without '\n'


def _library_load_vocab(path) -> dict[str, int]:
    from cnclip_edu.tokenizer import load_vocab

    return load_vocab(path)


_guard_vocab = guard_for(_library_load_vocab, BUILDS_VOCAB, warm=_tok)


def _on_file(f, lines: list[str], final_newline: bool) -> dict:
    """Write `lines` to a temporary vocab file and run `f(path)` on it (path as a str)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "vocab.txt"
        path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")
        return f(str(path))


def _vocab_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    tokens = list(_vocab())
    cases = []
    for _ in range(3):
        lines = rng.sample(tokens[1000:], rng.randint(5, 30))
        lines.insert(rng.randint(0, len(lines) - 1), rng.choice(["\u2028", "##\u2028", "\u2029"]))
        final = rng.random() < 0.5
        cases.append(Case("随机抽取词条（含一个空白字符词条）组成的小词表文件" + ("" if final else "（最后一行没有换行符）"),
                          lambda f, lines=lines, final=final: _on_file(_guard_vocab(f), lines, final)))
    return cases


def _vocab_mistake(kind: str):
    def load_vocab(path):
        text = Path(path).read_text(encoding="utf-8")
        if kind == "splitlines":
            lines = text.splitlines()
        elif kind == "split":
            lines = text.split()
        elif kind == "keep_last_empty":
            lines = text.split("\n")
        elif kind == "chop":
            lines = [line[:-1] for line in open(path, encoding="utf-8")]
        else:
            lines = [line.rstrip("\n") for line in open(path, encoding="utf-8")]
        if kind == "strip":
            lines = [line.strip() for line in lines]
        if kind == "rstrip":
            lines = [line.rstrip() for line in lines]
        if kind == "newline":
            lines = list(open(path, encoding="utf-8"))
        return {t: i + (1 if kind == "from_one" else 0) for i, t in enumerate(lines)}
    return load_vocab


register(Exercise(
    id="01.3", title="load_vocab：vocab.txt 的行号就是 id", points=2,
    hint="一行一个词条，第几行（从 0 数）就是它的 id；每行只去掉行尾的换行符，其余原样保留——词表里有的词条本身就是"
         "空白字符，有的“换行”在 Python 某些按行切分的方法眼里也算换行；文件最后一行后面可能有、也可能没有换行符。",
    reference=_library_load_vocab,
    cases=lambda: [
        Case("课程自带的 vocab.txt（21,128 行；第 343 行的词条是 U+2028 这个空白字符）",
             lambda f: _guard_vocab(f)(str(_tok_vocab_path()))),
        Case("一个 7 行的小词表，最后一行没有换行符", lambda f: _on_file(_guard_vocab(f), SMALL_VOCAB, False)),
        Case("同一个小词表，最后一行有换行符", lambda f: _on_file(_guard_vocab(f), SMALL_VOCAB, True)),
    ],
    hidden=_vocab_hidden,
    builds=BUILDS_VOCAB,
    mutants=lambda: {
        "id 从 1 开始数": _vocab_mistake("from_one"),
        "用 splitlines() 切行（U+2028 也被当成换行，后面的 id 全错一位）": _vocab_mistake("splitlines"),
        "用 split() 切（空白词条消失）": _vocab_mistake("split"),
        "每行 strip()（空白词条变成空字符串）": _vocab_mistake("strip"),
        "每行 rstrip()（不带参数：行尾的空白字符连同换行符一起删了）": _vocab_mistake("rstrip"),
        "split('\\n') 之后留下了最后那个空字符串": _vocab_mistake("keep_last_empty"),
        "每行去掉最后一个字符 line[:-1]（最后一行没有换行符时吃掉一个字）": _vocab_mistake("chop"),
        "没有去掉行尾的换行符": _vocab_mistake("newline"),
    },
))


def _tok_vocab_path() -> Path:
    from cnclip_edu.tokenizer import VOCAB_PATH

    return VOCAB_PATH


# ----------------------------------------------------------------------------- 01.4 encode
# the parity sentences of notebook 01 (section 1 and 3): the notebook shows cn_clip's ids for them
PARITY_SENTENCES = ["南京市长江大桥", "北京大学的学生在看 iPhone 15 Pro", "这件T恤只要￥99.9！",
                    "Café naïve ÅNGSTRÖM", "ＡＢＣ１２３，全角！", "零\u200b宽\u3000空格\t制表", "😀表情 𠮷野家",
                    "e-mail: user@mail.cn", "$99 或 ￥99", "繁體中文測試", "一件 XL 码的白色纯棉T恤，夏季新款短袖"]


def _library_encode_batch(texts: list[str], vocab: dict[str, int]) -> list[list[int]]:
    """The library's ids of each text, in the ids of `vocab` (the cases pass the library's tokens, maybe
    renumbered: `vocab` maps every library token to its id there)."""
    inv, ids = _tok().inv_vocab, dict(dict.items(vocab))   # a plain copy: the reference asks no counting vocab
    return [[ids[inv[i]] for i in row] for row in _tok().encode_batch(list(texts))]


_guard_encode = guard_for(_library_encode_batch, BUILDS_ENCODE, warm=_tok)


def _encode_case(label: str, texts: list[str]) -> Case:
    def run(f):
        return _guard_encode(f)(list(texts), _vocab_copy())
    return Case(label, run)


class _CountingVocab(dict):
    """A vocab that counts how often it is asked (`in`, `[]`, `.get`): the cost of WordPiece is these look-ups."""

    lookups = 0

    def __contains__(self, key):
        self.lookups += 1
        return super().__contains__(key)

    def __getitem__(self, key):
        self.lookups += 1
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)


def _lookup_budget(texts: list[str]) -> int:
    """Look-ups allowed when every distinct word is cut once: a greedy loop over an n-character word tries
    at most n(n+1)/2 candidates and looks up at most n pieces (twice each, with an `in` before the `[]`)."""
    words = {w for t in texts for w in _tok().basic_tokenize(t)}
    return sum(len(w) * (len(w) + 1) // 2 + 2 * len(w) for w in words) + 10


_CACHE_WORDS = ["unaffable", "running", "shoes", "bluetooth", "iphone", "macbook", "adidas", "hello", "world"]


def _repeated_words_case(label: str, rng: random.Random, n_texts: int) -> Case:
    """Many different texts made of the same few words: an answer that cuts every word again each time it
    appears (or caches whole texts, which never repeat here) asks the vocab far more often than the budget."""
    texts = [" ".join(rng.choice(_CACHE_WORDS) for _ in range(6)) + f" {i}号" for i in range(n_texts)]
    budget = _lookup_budget(texts)

    def run(f):
        g, vocab = _guard_encode(f), _CountingVocab(_vocab_copy())
        rows = g(texts, vocab)
        return {"ids": rows, "每个不同的词只切一次（查词表的次数没超过上限）": vocab.lookups <= budget}
    return Case(label, run)


def _two_vocabs_case(label: str, texts: list[str]) -> Case:
    """The same texts with the course vocab, then with the same tokens renumbered (id + 1000): ids come
    from the vocab passed in, so a cache that outlives one call answers the second call with the first vocab's ids."""
    def run(f):
        g, vocab = _guard_encode(f), _vocab_copy()
        shifted = {t: i + 1000 for t, i in vocab.items()}
        return {"原词表": g(list(texts), vocab), "id 全部加 1000 的词表": g(list(texts), shifted)}
    return Case(label, run)


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


def _encode_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    return [_encode_case("随机的中英数字标点混排句子", [_random_sentence(rng) for _ in range(rng.randint(3, 8))])
            for _ in range(3)] + [
        _encode_case("随机混排的文本（各区段汉字、假名、拉丁字母、标点、空白）",
                     [_random_text(rng, rng.randint(5, 30)) for _ in range(4)]),
        _repeated_words_case("随机的一批文本，几个英文词反复出现", rng, rng.randint(150, 250)),
        _two_vocabs_case("随机句子先用原词表，再用 id 全部加 1000 的词表", [_random_sentence(rng) for _ in range(3)]),
    ]


def _student_encode_batch(texts, vocab, *, mistake: str = "", _shared: dict | None = None):
    """`encode_batch` as the notebook's solution writes it, with one usual mistake switched on."""
    if mistake in ("chars", "no_basic", "drop_unk", "cls_sep"):
        return [_student_encode(t, vocab, mistake=mistake) for t in texts]
    if mistake == "no_cache":
        return [_student_encode(t, vocab) for t in texts]
    if mistake == "text_cache":   # whole texts as keys: a text that comes again is free, a word is not
        cache_t: dict[str, list[int]] = {}
        for t in texts:
            if t not in cache_t:
                cache_t[t] = _student_encode(t, vocab)
        return [cache_t[t] for t in texts]
    cache = _shared if mistake == "global_cache" else {}
    rows = []
    for text in texts:
        ids: list[int] = []
        for word in _student_basic(text):
            if word not in cache:
                cache[word] = [vocab[p] for p in _student_wordpiece(word, vocab)]
            ids += cache[word]
        rows.append(ids)
    if mistake == "flat":
        return [i for row in rows for i in row]
    return rows


def _encode_mutant(mistake: str):
    shared: dict = {}   # the module-level cache of the "global_cache" mistake: it outlives one call
    return lambda ts, v: _student_encode_batch(ts, v, mistake=mistake, _shared=shared)


register(Exercise(
    id="01.4", title="encode_batch：一批文本 → 每条一串 id，每个不同的词只切一次", points=3,
    hint="一条文本的 id：你的 BasicTokenizer 切词，每个词交给你的 WordPiece，每个片段换成它在词表里的 id（切不出来的词是 "
         "[UNK] 这个片段，id 在词表里查），不加 [CLS]/[SEP]、不截断。一批文本里反复出现的是“词”（一个汉字、一个英文词），"
         "不是整条文本：记住每个词切出的 id，再遇到就直接用。想一想这份记录该活多久——id 来自传进来的那份词表。",
    reference=_library_encode_batch,
    cases=lambda: [
        _encode_case("第 1、3 部分的对照句（与 cn_clip 逐个相同的 id）", PARITY_SENTENCES),
        _encode_case("空字符串、只有空白、只有控制字符", ["", "  \t\u3000 ", "\u200b\x00"]),
        _encode_case("恰好 200 个字符的词与 201 个字符的词", ["x" * 200 + " 和 " + "x" * 201]),
        _encode_case("带重音、去掉重音后恰好 200 个字符的词", ["é" * 200]),
        _encode_case("表情、扩展区汉字、假名、中文标点", ["😀🎉表情", "𠮷野家の牛丼「大盛」", "《三体》……——“好看”"]),
        _encode_case("空的一批", []),
        _repeated_words_case("200 条各不相同的文本，都由同样 9 个英文词拼成", random.Random(0), 200),
        _two_vocabs_case("同一批文本先用原词表，再用同样的词条、id 全部加 1000 的词表",
                         ["unaffable 手机", "iPhone 15 Pro", "😀表情"]),
    ],
    hidden=_encode_hidden,
    builds=BUILDS_ENCODE,
    needs=("01.1", "01.2"),
    mutants=lambda: {
        "不做 BasicTokenizer，直接按空格切": _encode_mutant("no_basic"),
        "一个字符一个 id（英文和数字也按字符查）": _encode_mutant("chars"),
        "把 [UNK] 丢掉了": _encode_mutant("drop_unk"),
        "encode 里就加了 [CLS] 和 [SEP]": _encode_mutant("cls_sep"),
        "没有缓存：每次遇到同一个词都重新切": _encode_mutant("no_cache"),
        "按整条文本缓存（文本几乎不重复，词才重复）": _encode_mutant("text_cache"),
        "缓存放在函数外面，换了词表还用旧的 id": _encode_mutant("global_cache"),
        "整批的 id 拼成了一个列表（没有分行）": _encode_mutant("flat"),
    },
))

# ----------------------------------------------------------------------------- 01.5 tokenize
LONG = "一件 XL 码的白色T恤，纯棉材质，领口有刺绣的 logo，售价￥99"


def _library_tokenize(texts, vocab: dict[str, int], context_length: int = 52):
    from cnclip_edu.tokenizer import tokenize

    return tokenize(texts, context_length=context_length)


_guard_tokenize = guard_for(_library_tokenize, BUILDS_TOKENIZE, warm=_tok)


def _ids_and_dtype(t) -> dict:
    """The result and its dtype (int32 and int64 are both integers to the comparison; the spec says long)."""
    return {"ids": t, "dtype": str(getattr(t, "dtype", f"（不是张量，是 {type(t).__name__}）"))}


def _tokenize_case(label: str, texts, context_length: int | None) -> Case:
    def run(f):
        g = _guard_tokenize(f)
        vocab = _vocab_copy()
        out = g(texts, vocab) if context_length is None else g(texts, vocab, context_length)
        return _ids_and_dtype(out)
    return Case(label, run)


def _n_ids(text: str) -> int:
    return len(_tok().encode(text))


def _tokenize_cases() -> list[Case]:
    fit = "北京大学的学生在看 iPhone 15 Pro"
    n = _n_ids(fit)
    return [
        _tokenize_case("两个短词 ['杰尼龟', '皮卡丘']，不传 context_length（默认 52）", ["杰尼龟", "皮卡丘"], None),
        _tokenize_case("￥99、英文、数字、表情、全角，L=52",
                       ["这件T恤只要￥99.9！", "iPhone 15 Pro 😀", "ＡＢＣ１２３ 全角"], 52),
        _tokenize_case("一句长描述被截断，L=16", [LONG, "短句"], 16),
        _tokenize_case(f"[CLS] + {n} 个 id + [SEP] 恰好放满一行，L={n + 2}", [fit, "短句"], n + 2),
        _tokenize_case(f"只差一个位置，要截掉最后一个 id，L={n + 1}", [fit], n + 1),
        _tokenize_case("单个字符串（不是列表），L=8", "杰尼龟", 8),
        _tokenize_case("空字符串，L=4", [""], 4),
        _tokenize_case("L=2：只放得下 [CLS] 和 [SEP]", ["杰尼龟"], 2),
    ]


def _tokenize_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(3):
        texts = [_random_sentence(rng) for _ in range(rng.randint(1, 4))]
        cases.append(_tokenize_case("随机句子、随机的 context_length", texts, rng.randint(2, 40)))
    text = _random_sentence(rng)
    cases.append(_tokenize_case("随机句子，context_length 恰好放下 [CLS] + id + [SEP]", [text], _n_ids(text) + 2))
    text = _random_sentence(rng)
    cases.append(_tokenize_case("单个字符串（不是列表），随机的 context_length", text, rng.randint(4, 40)))
    return cases


def _student_tokenize(texts, vocab, context_length: int = 52, *, mistake: str = ""):
    """`tokenize` as the notebook's solution writes it, with one usual mistake switched on."""
    import torch

    if isinstance(texts, str) and mistake != "str_as_list":
        texts = [texts]
    dtype = {"float": torch.float32, "int32": torch.int32}.get(mistake, torch.long)
    result = torch.zeros(len(texts), context_length, dtype=dtype)  # (N, L)
    for i, text in enumerate(texts):
        ids = _student_encode(text, vocab)
        if mistake == "cut_after":  # cut the whole sequence: a long text loses its [SEP]
            row = ([101] + ids + [102])[:context_length]
        elif mistake == "no_cls":
            row = ids[:context_length - 1] + [102]
        elif mistake == "fit_off_by_one":  # drops the overflow with ids[:-overflow], also when overflow == 0
            overflow = len(ids) + 2 - context_length
            row = [101] + (ids[:-overflow] if overflow >= 0 else ids) + [102]
        else:
            row = [101] + ids[:context_length - 2] + [102]
        if mistake == "left_pad":
            result[i, context_length - len(row):] = torch.tensor(row)
        elif mistake == "sep_last":
            result[i, :len(row) - 1] = torch.tensor(row[:-1])
            result[i, -1] = 102
        else:
            result[i, :len(row)] = torch.tensor(row)
    return result


def _tokenize_mutant(mistake: str):
    return lambda t, v, L=52: _student_tokenize(t, v, L, mistake=mistake)


register(Exercise(
    id="01.5", title="tokenize：[CLS] + 你的 encode + [SEP]，截断与填充，得到 (N, L) 的 LongTensor", points=2,
    hint="[SEP] 是句子的结尾标记，截断之后也必须在，所以要先想好 id 最多能留几个；每行的空位是 [PAD]（id 0）、放在后面；"
         "结果的 dtype 要与 cn_clip 的一样是 torch.long（int64，整数 id 的惯例；检查也比较 dtype）；一个字符串是只有一条的一批。",
    reference=_library_tokenize,
    cases=_tokenize_cases,
    hidden=_tokenize_hidden,
    builds=BUILDS_TOKENIZE,
    needs=("01.4",),
    mutants=lambda: {
        "先拼 [CLS]…[SEP] 再截断，长句丢了 [SEP]": _tokenize_mutant("cut_after"),
        "忘了 dtype=torch.long（torch.zeros 默认是浮点数）": _tokenize_mutant("float"),
        "用了 torch.int32（cn_clip 给的是 torch.long）": _tokenize_mutant("int32"),
        "单个字符串被当成了一个个字": _tokenize_mutant("str_as_list"),
        "填充放在了左边": _tokenize_mutant("left_pad"),
        "忘了 [CLS]": _tokenize_mutant("no_cls"),
        "截断写成 ids[:-多出的个数]，条件差一（>= 0）：恰好放满时 ids[:-0] 把 id 全丢了": _tokenize_mutant("fit_off_by_one"),
        "[SEP] 放在了整行的最后一格，而不是紧跟在 id 后面": _tokenize_mutant("sep_last"),
    },
))


# ----------------------------------------------------------------------------- 01.6 decode
# public cases: texts whose library ids (one row of cc.tokenize) the answer decodes; each holds one spacing rule
DECODE_CASES = [
    ("杰尼龟（一个一维张量，带 [CLS]、[SEP] 和 [PAD]）", "杰尼龟", 8, True),
    ("英文词之间有空格，汉字与标点前后没有", "Hello World 你好，世界！", 52, False),
    ("## 片段接在前一片后面，下一个英文词前仍有空格", "unaffable 3.5元", 52, False),
    ("汉字后面紧跟英文词，再是数字", "北京 iPhone 15 Pro 手机壳", 52, False),
    ("￥ 不是汉字也不是标点：它像单词一样，和后面的 ##99 拼在一起", "这件T恤只要￥99.9！", 52, False),
    ("[UNK] 前后不加空格", "hi 😀 there", 52, False),
    ("ASCII 标点夹在英文词中间", "e-mail: user@mail.cn", 52, False),
    ("被截断的一行（L=16）", "一件 XL 码的白色T恤，纯棉材质，领口有刺绣的 logo，售价￥99", 16, False),
    ("空字符串：只有 [CLS]、[SEP]", "", 4, False),
]


def _library_decode(ids, vocab: dict[str, int]) -> str:
    return _tok().decode([int(i) for i in ids])   # the cases always pass the library's vocab


BUILDS_DECODE = (_T + "decode", _T + "Tokenizer.decode", _T + "Tokenizer.convert_ids_to_tokens")
_guard_decode = guard_for(_library_decode, BUILDS_DECODE, warm=_tok)


def _decode_case(label: str, text: str, context_length: int, as_tensor: bool) -> Case:
    def run(f):
        from cnclip_edu.tokenizer import tokenize

        row = tokenize(text, context_length=context_length)[0]          # (L,), computed before the guard
        return _guard_decode(f)(row if as_tensor else row.tolist(), _vocab_copy())
    return Case(label, run)


def _decode_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = [_decode_case("随机的中英数字标点混排句子", _random_sentence(rng), rng.randint(8, 52), rng.random() < 0.5)
             for _ in range(5)]
    cases.append(_decode_case("随机混排的文本（各区段汉字、假名、拉丁字母、标点、空白）", _random_text(rng, rng.randint(5, 30)),
                              52, False))
    return cases


def _decode_mistake(kind: str):
    def is_han(t: str) -> bool:
        return len(t) == 1 and _is_cjk(t)

    def decode(ids, vocab):
        inv = {i: t for t, i in vocab.items()}
        out, prev = [], False
        for i in ids:
            i = int(i)
            if i in (0, 101, 102) and kind != "keep_special":
                continue
            if i == 100 and kind == "drop_unk":
                continue
            t = inv[i]
            if kind == "space_all":
                out.append(t)
                continue
            if t.startswith("##") and len(t) > 2:
                out.append(t if kind == "keep_hashes" else t[2:])
                if kind == "reset_after_tail":
                    prev = False
                continue
            special = t.startswith("[") and t.endswith("]") and len(t) > 2
            punct = len(t) == 1 and _is_punct(t)
            wordlike = not (punct and kind != "punct_wordlike") and not (is_han(t) and kind != "han_wordlike") \
                and not (special and kind != "special_wordlike")
            if out and prev and wordlike and kind != "no_spaces":
                out.append(" ")
            out.append(t)
            prev = wordlike
        return " ".join(out) if kind == "space_all" else "".join(out)
    return decode


register(Exercise(
    id="01.6", title="decode：一行 id 变回文字（反查词表、拼 ## 片段、英文词之间加空格）", points=2,
    hint="词表是 词条 → id，先把它倒过来。[PAD]、[CLS]、[SEP] 不是文字。## 片段是前一片的延续：去掉前缀直接拼上，"
         "它不开始新词。只有前后两个“词”都像单词（不是单个汉字、不是单个标点、不是方括号里的特殊词条）时才加空格；"
         "判断“前一个词”时，别让它的 ## 片段改掉结论。",
    reference=_library_decode,
    cases=lambda: [_decode_case(*c) for c in DECODE_CASES],
    hidden=_decode_hidden,
    builds=BUILDS_DECODE,
    mutants=lambda: {
        "每个片段之间都加空格": _decode_mistake("space_all"),
        "英文词之间没加空格": _decode_mistake("no_spaces"),
        "## 前缀没去掉": _decode_mistake("keep_hashes"),
        "没跳过 [CLS]、[SEP]、[PAD]": _decode_mistake("keep_special"),
        "把 [UNK] 也当成特殊 id 跳过了": _decode_mistake("drop_unk"),
        "汉字也当成了英文词，汉字之间加了空格": _decode_mistake("han_wordlike"),
        "标点前后也加了空格": _decode_mistake("punct_wordlike"),
        "[UNK] 前后加了空格": _decode_mistake("special_wordlike"),
        "## 片段之后把“前一个词像单词”忘了，下一个英文词前少了空格": _decode_mistake("reset_after_tail"),
    },
))


# ----------------------------------------------------------------------------- 01.7 choose_context_length
# public cases: (label, counts, q or None for the default 0.99); q * N is never a whole number except
# for q = 1, so "share >= q" and "index ceil(q * N) - 1" are the same rule and float rounding cannot matter
CHOOSE_CASES = [
    ("10 条文本，q=0.75（线性插值会落在两个长度之间）", [10, 10, 10, 10, 10, 10, 10, 20, 30, 40], 0.75),
    ("7 条未排序的文本，q=0.9", [7, 3, 12, 5, 9, 4, 6], 0.9),
    ("150 条文本（140 条 20 个 id，10 条 30–39 个），不传 q（默认 0.99）", [20] * 140 + list(range(30, 40)), None),
    ("q=1：全部放下，就是最长的那条", [0, 2, 5], 1.0),
    ("只有一条空文本（0 个 id），q=0.5", [0], 0.5),
    # q * N a whole number, exactly representable (8 * 0.75 = 6): "reaches q" is >=, so the 6th text is enough
    ("8 条未排序的文本，q=0.75：第 6 条放下时正好 75%", [5, 1, 8, 3, 7, 2, 6, 4], 0.75),
]


def _library_choose(n_ids, q: float = 0.99) -> int:
    from cnclip_edu.tokenizer import choose_context_length

    return choose_context_length(n_ids, q)


BUILDS_CHOOSE = (_T + "choose_context_length",)
_guard_choose = guard_for(_library_choose, BUILDS_CHOOSE)


def _choose_case(label: str, counts: list[int], q: float | None) -> Case:
    def run(f):
        import numbers

        g = _guard_choose(f)
        out = g(list(counts)) if q is None else g(list(counts), q)
        # the spec says a Python int (a numpy integer prints the same but is another type); plain data for the grader
        value = int(out) if isinstance(out, numbers.Integral) else repr(out)
        return {"L": value, "返回值的类型": type(out).__name__}
    return Case(label, run)


def _choose_hidden(seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for q in (rng.choice([0.8, 0.9, 0.95]), 0.99, 0.99):
        n = rng.randint(30, 400)
        while abs(q * n - round(q * n)) < 1e-6:   # keep q * N off whole numbers (see CHOOSE_CASES)
            n += 1
        counts = [max(0, round(rng.gauss(24, 5))) for _ in range(n)]
        counts += [rng.randint(40, 90) for _ in range(rng.randint(1, max(1, n // 20)))]   # a long tail
        rng.shuffle(counts)
        if abs(q * len(counts) - round(q * len(counts))) < 1e-6:
            counts.append(rng.randint(10, 30))
        cases.append(_choose_case(f"随机的 id 个数（近似正态加一条长尾，未排序），q={q}", counts, q))
    counts = [rng.randint(0, 60) for _ in range(rng.randint(5, 50))]
    cases.append(_choose_case("随机的 id 个数，q=1", counts, 1.0))
    q = rng.choice([0.5, 0.75, 0.875])                    # dyadic: q * N is exactly a whole number
    counts = [rng.randint(0, 60) for _ in range(8 * rng.randint(2, 12))]
    cases.append(_choose_case(f"随机的 id 个数，q={q}，q·N 正好是整数", counts, q))
    return cases


def _choose_mistake(kind: str):
    import math

    import numpy as np

    def choose_context_length(n_ids, q=0.99):
        n = sorted(n_ids) if kind != "unsorted" else list(n_ids)
        if kind == "mean":
            return round(sum(n) / len(n)) + 2
        if kind == "median":
            return int(np.median(n)) + 2
        if kind == "percentile":
            return int(math.ceil(np.percentile(n, 100 * q))) + 2
        if kind == "floor_index":
            return n[max(0, int(q * len(n)) - 1)] + 2
        if kind == "strict_gt":  # "share > q" instead of "share reaches q"; all texts when none exceeds q
            return next((n[j] for j in range(len(n)) if (j + 1) / len(n) > q), n[-1]) + 2
        if kind == "numpy_int":  # np.sort and an index: right number, but a numpy.int64
            s = np.sort(np.asarray(n_ids))
            return s[math.ceil(q * len(s)) - 1] + 2
        k = math.ceil(q * len(n))
        return n[k - 1] + (0 if kind == "no_plus_2" else 2)
    return choose_context_length


register(Exercise(
    id="01.7", title="choose_context_length：让一定比例的文本完整放下的最小 L", points=2,
    hint="一条有 n 个 id 的文本在 L 里完整放下，要求 n + 2 ≤ L（[CLS] 和 [SEP] 也占位置）。把 id 个数从小到大排好，"
         "L 取在“放得下的条数 / 总条数 ≥ q”第一次成立的那条文本上；想一想排序后第几条（从 0 数还是从 1 数）"
         "是第一条满足的；插值、平均数都会落在这条规则之外。",
    reference=_library_choose,
    cases=lambda: [_choose_case(label, counts, q) for label, counts, q in CHOOSE_CASES],
    hidden=_choose_hidden,
    builds=BUILDS_CHOOSE,
    mutants=lambda: {
        "忘了给 [CLS] 和 [SEP] 留的 +2": _choose_mistake("no_plus_2"),
        "下标差一：取了排序后的第 int(q·N) − 1 个": _choose_mistake("floor_index"),
        "用平均长度 + 2": _choose_mistake("mean"),
        "用中位数 + 2": _choose_mistake("median"),
        "np.percentile 的默认线性插值再向上取整": _choose_mistake("percentile"),
        "忘了先排序": _choose_mistake("unsorted"),
        "用 > 而不是 ≥：q·N 正好是整数时多放了一条": _choose_mistake("strict_gt"),
        "返回了 numpy 的整数 (numpy.int64)，不是 Python int": _choose_mistake("numpy_int"),
    },
))
