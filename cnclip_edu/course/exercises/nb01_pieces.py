"""Exercises 01.1-01.3 of notebook 01 (the tokenizer's pieces): `is_cjk` + `basic_tokenize`,
`wordpiece(word, vocab)`, `load_vocab(path)`.

Each answer is compared with the library (`Tokenizer.basic_tokenize`, `Tokenizer.wordpiece`,
`load_vocab`), which tests/test_tokenizer.py proves equal to cn_clip on every Unicode code point and
100k+ sentences. The public cases hold what trips students up (accents, full-width letters, `￥99`,
emoji, the edges of the ideograph blocks, CJK punctuation, words of exactly 200 / 201 characters, the
U+2028 line of vocab.txt, a last line with or without its newline); `hidden(seed)` draws more of the
same kinds.
"""
from __future__ import annotations

import random
import string
import tempfile
from pathlib import Path

from .core import Case, Exercise, register
from .nb01_common import (BUILDS_BASIC, BUILDS_VOCAB, BUILDS_WORDPIECE, EDGE_TEXT, _POOLS, _random_text,
                          _random_vocab_word, _tok, _vocab, _vocab_copy)
from .nb01_student import CJK_RANGES, _is_cjk, _student_basic, _student_wordpiece
from .tripwire import guard_for


# ----------------------------------------------------------------------------- 01.1 BasicTokenizer
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
