"""Notebook 01 (the tokenizer): the student writes BasicTokenizer, the WordPiece loop and `tokenize`.

Each answer is compared with the library (`Tokenizer.basic_tokenize`, `Tokenizer.wordpiece`,
`cnclip_edu.tokenize`), which tests/test_tokenizer.py proves equal to cn_clip on every Unicode code
point and 100k+ sentences. The cases hold what trips students up: accents, full-width letters,
`￥99` (a currency sign is not punctuation, `$` is), emoji, truncation. The mutants are the
plausible wrong answers, written the way a student would write the notebook's exercise.
"""
from __future__ import annotations

import unicodedata

from .core import Case, Exercise, register

# ----------------------------------------------------------------------------- 01.1 BasicTokenizer
BASIC_CASES = [
    ("重音与大写 Café naïve ÅNGSTRÖM", "Café naïve ÅNGSTRÖM"),
    ("中英混排 iPhone 15 Pro 手机壳", "iPhone 15 Pro 手机壳"),
    ("价格 这件T恤只要￥99.9！", "这件T恤只要￥99.9！"),
    ("ASCII 符号 $99 美元", "$99 美元"),
    ("全角字母数字 ＡＢＣ１２３，全角！", "ＡＢＣ１２３，全角！"),
    ("控制字符与各种空白", "零\u200b宽\u3000空格\t制表  两个空格"),
    ("表情与扩展区汉字 😀表情 𠮷野家", "😀表情 𠮷野家"),
    ("邮箱 e-mail: user@mail.cn", "e-mail: user@mail.cn"),
]


def _library_basic_tokenize(text: str) -> list[str]:
    from cnclip_edu.tokenizer import get_tokenizer

    return get_tokenizer().basic_tokenize(text)


def _clean(text: str) -> str:
    """Notebook 01's given `clean_text`: control chars dropped, every whitespace -> ' '."""
    return "".join("" if ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n\r"
                   else " " if ch.isspace() else ch for ch in text)


def _student_basic(text: str, *, split_cjk=True, lower=True, nfd=True, ascii_punct=True,
                   punct=True) -> list[str]:
    """BasicTokenizer as the notebook's solution writes it; each flag turned off is one usual mistake."""
    from cnclip_edu.tokenizer import is_cjk, is_punctuation

    def is_punct(ch: str) -> bool:
        return is_punctuation(ch) if ascii_punct else unicodedata.category(ch).startswith("P")

    text = _clean(text)
    if split_cjk:
        text = "".join(f" {ch} " if is_cjk(ch) else ch for ch in text)
    words = []
    for word in text.split():
        if lower:
            word = word.lower()
        if nfd:
            word = unicodedata.normalize("NFD", word)
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


register(Exercise(
    id="01.1", title="BasicTokenizer：清洗、汉字单独成词、小写、去重音、切标点", points=3,
    hint="顺序：clean_text → 每个汉字两边加空格 → text.split()（不带参数，连续空白算一个）→ 每个词 lower()、"
         "unicodedata.normalize('NFD', …) 再删掉类别为 Mn 的重音符 → 用 is_punctuation 把标点单独切出来。"
         "常见错误：汉字没有单独切开、忘了 NFD（é 的重音删不掉）、只认 Unicode 标点（漏了 ASCII 的 $）。",
    reference=_library_basic_tokenize,
    cases=lambda: [Case(label, lambda f, t=text: f(t)) for label, text in BASIC_CASES],
    builds=("cnclip_edu.tokenizer.Tokenizer.basic_tokenize", "cn_clip.clip.bert_tokenizer.BasicTokenizer.tokenize"),
    mutants=lambda: {
        "汉字没有单独切开": lambda t: _student_basic(t, split_cjk=False),
        "忘了小写 (lower)": lambda t: _student_basic(t, lower=False),
        "去重音前忘了 NFD 分解": lambda t: _student_basic(t, nfd=False),
        "只认 Unicode 标点，漏了 ASCII 的 $": lambda t: _student_basic(t, ascii_punct=False),
        "没有切标点": lambda t: _student_basic(t, punct=False),
    },
))

# ----------------------------------------------------------------------------- 01.2 WordPiece
WORDPIECE_CASES = ["unaffable", "￥99", "1234567", "iphone15", "ａｂｃ１２３", "12", "😀", "x😀", "a" * 201]


def _library_wordpiece(word: str) -> list[str]:
    from cnclip_edu.tokenizer import get_tokenizer

    return get_tokenizer().wordpiece(word)


def _student_wordpiece(word: str, *, prefix=True, longest_first=True, whole_word_unk=True,
                       max_chars: int | None = 200) -> list[str]:
    """The greedy loop as the notebook's solution writes it; each flag turned off is one usual mistake."""
    from cnclip_edu.tokenizer import get_tokenizer

    vocab = get_tokenizer().vocab
    if max_chars is not None and len(word) > max_chars:
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


register(Exercise(
    id="01.2", title="WordPiece：贪心最长匹配", points=3,
    hint="从 start=0 开始，end 从词尾往回缩：候选 word[start:end]（start > 0 时前面加 '##'）在词表里就收下，"
         "然后 start = end 继续；某个位置一个候选都配不上，整个词就是 ['[UNK]']；超过 200 个字符的词直接是 ['[UNK]']。"
         "常见错误：从最短的开始试、后续片段忘了 '##'、只把配不上的那一小段当 [UNK]。",
    reference=_library_wordpiece,
    builds=("cnclip_edu.tokenizer.Tokenizer.wordpiece", "cnclip_edu.tokenizer.Tokenizer._wordpiece",
            "cnclip_edu.tokenizer.Tokenizer.wordpiece_steps", "cn_clip.clip.bert_tokenizer.WordpieceTokenizer.tokenize"),
    cases=lambda: [Case(repr(w) if len(w) < 20 else f"'{w[0]}' × {len(w)}（超长的词）", lambda f, w=w: f(w))
                   for w in WORDPIECE_CASES],
    mutants=lambda: {
        "后续片段忘了加 ##": lambda w: _student_wordpiece(w, prefix=False),
        "从最短的子串开始试": lambda w: _student_wordpiece(w, longest_first=False),
        "只把配不上的那一段变成 [UNK]": lambda w: _student_wordpiece(w, whole_word_unk=False),
        "忘了 200 个字符的上限": lambda w: _student_wordpiece(w, max_chars=None),
    },
))

# ----------------------------------------------------------------------------- 01.3 tokenize
LONG = "一件 XL 码的白色T恤，纯棉材质，领口有刺绣的 logo，售价￥99"


def _library_tokenize(texts, context_length: int = 52):
    from cnclip_edu.tokenizer import tokenize

    return tokenize(texts, context_length=context_length)


def _student_tokenize(texts, context_length: int = 52, *, mistake: str = ""):
    """`tokenize` as the notebook's solution writes it, with one usual mistake switched on."""
    import torch

    from cnclip_edu.tokenizer import CLS_ID, SEP_ID, get_tokenizer

    tok = get_tokenizer()
    if isinstance(texts, str) and mistake != "str_as_list":
        texts = [texts]
    dtype = torch.float32 if mistake == "float" else torch.long
    result = torch.zeros(len(texts), context_length, dtype=dtype)  # (N, L)
    for i, text in enumerate(texts):
        ids = tok.encode(text)
        if mistake == "cut_after":  # cut the whole sequence: a long text loses its [SEP]
            row = ([CLS_ID] + ids + [SEP_ID])[:context_length]
        elif mistake == "no_cls":
            row = ids[:context_length - 1] + [SEP_ID]
        else:
            row = [CLS_ID] + ids[:context_length - 2] + [SEP_ID]
        if mistake == "left_pad":
            result[i, context_length - len(row):] = torch.tensor(row)
        else:
            result[i, :len(row)] = torch.tensor(row)
    return result


register(Exercise(
    id="01.3", title="tokenize：[CLS] + id + [SEP]，截断与填充，得到 (N, L) 的 LongTensor", points=2,
    hint="每条文本：ids = tok.encode(text)[:context_length - 2]，行 = [CLS_ID] + ids + [SEP_ID]，"
         "写进 torch.zeros(N, context_length, dtype=torch.long) 的第 i 行开头（其余位置留 0 = [PAD]）。"
         "单个字符串要先变成 [text]。常见错误：先拼 [CLS]…[SEP] 再截断（长句丢了 [SEP]）、忘了 dtype=torch.long。",
    reference=_library_tokenize,
    builds=("cnclip_edu.tokenizer.tokenize", "cn_clip.clip.utils.tokenize"),
    cases=lambda: [
        Case("两个短词 ['杰尼龟', '皮卡丘']，L=52", lambda f: f(["杰尼龟", "皮卡丘"], 52)),
        Case("￥99、英文、数字、表情、全角，L=52",
             lambda f: f(["这件T恤只要￥99.9！", "iPhone 15 Pro 😀", "ＡＢＣ１２３ 全角"], 52)),
        Case("一句长描述被截断，L=16", lambda f: f([LONG, "短句"], 16)),
        Case("单个字符串（不是列表），L=8", lambda f: f("杰尼龟", 8)),
        Case("空字符串，L=4", lambda f: f([""], 4)),
    ],
    mutants=lambda: {
        "先拼 [CLS]…[SEP] 再截断，长句丢了 [SEP]": lambda t, L=52: _student_tokenize(t, L, mistake="cut_after"),
        "忘了 dtype=torch.long（torch.zeros 默认是浮点数）": lambda t, L=52: _student_tokenize(t, L, mistake="float"),
        "单个字符串被当成了一个个字": lambda t, L=52: _student_tokenize(t, L, mistake="str_as_list"),
        "填充放在了左边": lambda t, L=52: _student_tokenize(t, L, mistake="left_pad"),
        "忘了 [CLS]": lambda t, L=52: _student_tokenize(t, L, mistake="no_cls"),
    },
))
