"""Exercises 01.4 and 01.5 of notebook 01: `encode_batch(texts, vocab)` (01.1 + 01.2 + the vocab,
[UNK] = 100, each distinct word cut once per call; the cell gives `encode(text, vocab)` on top of it) and
`tokenize(texts, vocab, context_length)` on top of the student's own `encode_batch`.

Compared with the library (`Tokenizer.encode_batch`, `cnclip_edu.tokenize`) on the parity sentences
the notebook shows cn_clip's ids for, edge texts, a row that fits exactly, a vocab that counts its
look-ups (a word cut again each time it appears costs too many) and a renumbered vocab (a cache that
outlives one call answers with the first vocab's ids).
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register
from .nb01_common import BUILDS_ENCODE, BUILDS_TOKENIZE, _random_sentence, _random_text, _tok, _vocab_copy
from .nb01_student import _student_basic, _student_encode, _student_wordpiece
from .tripwire import guard_for


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
