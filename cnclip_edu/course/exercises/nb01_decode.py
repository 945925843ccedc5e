"""Exercise 01.6 of notebook 01: `decode(ids, vocab)`, one row of ids back to text (the vocab reversed,
## pieces joined, the spacing rule of `cnclip_edu.decode`), compared with `Tokenizer.decode` on rows of
`cc.tokenize`, as a list or a tensor; each public case holds one spacing rule.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb01_common import _T, _random_sentence, _random_text, _tok, _vocab_copy
from .nb01_student import _is_cjk, _is_punct
from .tripwire import guard_for


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
