"""cnclip_edu.tokenizer against its oracles: cn_clip's FullTokenizer / `cn_clip.clip.tokenize` (the
reference) and transformers' BertTokenizer (Rust `tokenizers`) built from the same vocab.

The big test: >= 100,000 real Chinese strings (jieba's ~349k dictionary words glued into sentences,
with English, numbers and punctuation mixed in), 0 mismatches against both oracles. Then every
Unicode code point in context, hand-picked edge cases, decode, shapes and errors.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from pathlib import Path

import pytest
import torch

from cnclip_edu import tokenizer as T

N_CORPUS = 100_000
CJK_RANGES = T._CJK_RANGES


# ----------------------------------------------------------------------------- oracles
@pytest.fixture(scope="module")
def ours() -> T.Tokenizer:
    return T.get_tokenizer()


@pytest.fixture(scope="module")
def cn():
    """cn_clip's own tokenizer object (the one `cn_clip.clip.tokenize` uses)."""
    from cn_clip.clip import _tokenizer

    assert len(_tokenizer.vocab) == T.VOCAB_SIZE
    return _tokenizer


def _cn_ids(cn, text: str) -> list[int]:
    return cn.convert_tokens_to_ids(cn.tokenize(text))


def _make_hf(max_chars: int | None = 200):
    # transformers 5: BertTokenizer(vocab_file=...) silently ignores the file; vocab=path loads it.
    from transformers import BertTokenizer

    hf = BertTokenizer(vocab=str(T.VOCAB_PATH))
    vocab = hf.get_vocab()
    assert len(vocab) == T.VOCAB_SIZE, "the oracle did not load our 21,128-token vocab"
    assert vocab["杰"] == T.get_tokenizer().vocab["杰"] and vocab["##able"] == T.get_tokenizer().vocab["##able"]
    assert (hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id) == (0, 100, 101, 102)
    if max_chars is not None:  # `tokenizers` defaults to 100 chars per word; BERT and cn_clip use 200
        hf._tokenizer.model.max_input_chars_per_word = max_chars
    return hf


@pytest.fixture(scope="module")
def hf():
    return _make_hf()


def _hf_ids(hf, texts: list[str]) -> list[list[int]]:
    hf._tokenizer.no_padding()  # a padded __call__ leaves padding switched on in the backend
    hf._tokenizer.no_truncation()
    return [e.ids for e in hf._tokenizer.encode_batch(texts, add_special_tokens=False)]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = T.jieba_corpus(N_CORPUS, seed=0)
    assert len(texts) == N_CORPUS and len(set(texts)) > 0.99 * N_CORPUS
    return texts


# ----------------------------------------------------------------------------- the big corpus
def test_corpus_is_real_and_varied(corpus, ours):
    joined = "".join(corpus[:20_000])
    assert len(re.findall("[\u4e00-\u9fff]", joined)) > 0.8 * len(joined)  # mostly Chinese
    assert any(c.isascii() and c.isalpha() for c in joined) and any(c.isdigit() for c in joined)
    lengths = [len(r) for r in ours.encode_batch(corpus[:5000])]
    assert max(lengths) > 50, "some strings must be longer than the context (truncation)"


def test_corpus_ids_match_cn_clip(corpus, ours, cn):
    got = ours.encode_batch(corpus)
    bad = [i for i, (text, ids) in enumerate(zip(corpus, got)) if ids != _cn_ids(cn, text)]
    assert not bad, f"{len(bad)} mismatches with cn_clip, first: {corpus[bad[0]]!r}"


def test_corpus_ids_match_transformers(corpus, ours, hf):
    got = ours.encode_batch(corpus)
    want = _hf_ids(hf, corpus)
    bad = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert not bad, f"{len(bad)} mismatches with transformers, first: {corpus[bad[0]]!r}"


def test_corpus_tensor_matches_cn_clip_tokenize(corpus):
    from cn_clip.clip import tokenize as cn_tokenize

    for sub, length in ((corpus[:10_000], 52), (corpus[10_000:12_000], 24)):
        assert torch.equal(T.tokenize(sub, context_length=length), cn_tokenize(sub, context_length=length))


def test_corpus_tensor_matches_transformers_padded(corpus, hf):
    sub = corpus[20_000:40_000]
    want = hf(sub, padding="max_length", truncation=True, max_length=52, return_tensors="pt")["input_ids"]
    assert torch.equal(T.tokenize(sub), want)


def test_fast_path_equals_readable_path(corpus, ours):
    sub = corpus[:3000]
    assert ours._id_rows(sub) == ours._id_rows_slow(sub)


# ----------------------------------------------------------------------------- every code point
def _sweep_text(cp: int) -> str:
    c = chr(cp)  # the char alone, glued to latin letters, next to an ideograph, in a sigma context
    return f"a{c}b {c}中{c}AΣ{c}b{c}{c} {c}"


def _sweep(cps: list[int], ours, cn, chunk: int = 256) -> list[str]:
    """Code points whose sweep text tokenizes differently from cn_clip (fast and readable paths)."""
    bad = []
    for i in range(0, len(cps), chunk):
        block = [_sweep_text(cp) for cp in cps[i:i + chunk]]
        joined = " ".join(block)
        ref = _cn_ids(cn, joined)
        if ours.encode(joined) != ref or ours.encode_batch(block) != [_cn_ids(cn, t) for t in block]:
            bad += [f"U+{ord(t[1]):04X}" for t in block if ours.encode(t) != _cn_ids(cn, t)]
        if ours.basic_tokenize(joined) != cn.basic_tokenizer.tokenize(joined):
            bad += [f"U+{ord(t[1]):04X} (basic)" for t in block
                    if ours.basic_tokenize(t) != cn.basic_tokenizer.tokenize(t)]
    return bad


def _in_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def test_every_non_cjk_bmp_code_point_matches_cn_clip(ours, cn):
    """All of the BMP (surrogates included) except the ideographs, which are sampled."""
    cps = [cp for cp in range(0x10000) if not _in_cjk(cp) or cp % 61 == 0]
    assert not _sweep(cps, ours, cn)


def test_sampled_astral_code_points_match_cn_clip(ours, cn):
    """Assigned astral chars (emoji, historic scripts, CJK extensions) + private use, sampled."""
    cps = [cp for cp in range(0x10000, sys.maxunicode + 1, 11)
           if unicodedata.category(chr(cp)) != "Cn" or cp % 7001 == 0]
    assert not _sweep(cps, ours, cn)


@pytest.mark.slow
def test_all_code_points_match_cn_clip(ours, cn):
    assert not _sweep(list(range(sys.maxunicode + 1)), ours, cn)


# ----------------------------------------------------------------------------- edge cases
EDGE_CASES = {
    "chinese": "我爱北京天安门",
    "mixed": "iPhone 15 Pro Max 手机壳 256GB 男女款 T恤 XXL",
    "digits": "2024年3月15日 12:30 价格￥199.99元（包邮）3.5% 1,000,000",
    "fullwidth": "ＡＢＣ１２３ｘｙｚ！？（）",
    "accents": "Café naïve résumé Ångström crème brûlée",
    "emoji": "😀👍🏻 好看❤️ 🐱猫咪 🀄",
    "controls": "a\x00b\x01c\x7f中\x1b文\ufffd末",
    "ideographic_space": "\u3000全角空格\u3000在\u3000这",
    "zero_width": "零\u200b宽\u200c字\u200d符\ufeff号\u2060",
    "whitespace": "tab\t分隔\n换行\r\n回车 \u00a0不换行\u2003em空格",
    "traditional": "繁體中文測試，臺灣的風景與歷史。",
    "long_text": "这是一段很长的描述文字，" * 20,
    "empty": "",
    "spaces_only": "   \t\n ",
    "max_chars_199": "a" * 199,
    "max_chars_200": "a" * 200,
    "max_chars_201": "a" * 201 + " 后面的字",
    "unk": "𠮷野家 한국어 ひらがなカタカナ ภาษาไทย عربى",
    "wordpiece": "unaffable tokenization supercalifragilistic",
    "compat_cjk": "豈更車 ⼀⼆",
    "url": "https://example.com/a_b?x=1&y=2#frag user@mail.cn",
    "hashtag": "#话题# @某人 【促销】「引号」『书名』《红楼梦》",
    "ligature_and_case": "ﬁnance İstanbul straße ＡＢＣ",
    "combining_only": "\u0301\u0308 e\u0301 中\u0301",
    "line_separators": "第一段\u2028第二段\u2029第三段",
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case_matches_cn_clip(name, ours, cn):
    from cn_clip.clip import tokenize as cn_tokenize

    text = EDGE_CASES[name]
    assert ours.encode(text) == _cn_ids(cn, text)
    assert ours.tokenize(text) == cn.tokenize(text)
    assert ours.basic_tokenize(text) == cn.basic_tokenizer.tokenize(text)
    assert torch.equal(T.tokenize(text), cn_tokenize(text))
    assert torch.equal(T.tokenize(text, context_length=8), cn_tokenize(text, context_length=8))


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case_matches_transformers(name, ours, hf):
    text = EDGE_CASES[name]
    assert ours.encode(text) == _hf_ids(hf, [text])[0]


def test_edge_cases_as_one_batch(ours, cn):
    texts = list(EDGE_CASES.values())
    assert ours.encode_batch(texts) == [_cn_ids(cn, t) for t in texts]


def test_max_chars_per_word_rule(ours):
    pieces = ours.tokenize("a" * 200)
    assert len(pieces) > 1 and "[UNK]" not in pieces and "".join(pieces).replace("##", "") == "a" * 200
    assert ours.tokenize("a" * 201) == ["[UNK]"]
    assert ours.tokenize("é" * 201) == ["[UNK]"]  # counted after stripping accents: 201 chars
    assert ours.tokenize("e\u0301" * 100) != ["[UNK]"]  # 200 chars once the marks are gone


def test_known_transformers_differences_we_follow_cn_clip(ours, cn):
    """Where the Rust tokenizer disagrees with cn_clip, we follow cn_clip (the reference)."""
    hf_default = _make_hf(max_chars=None)
    cases = {
        "a" * 150: "tokenizers' WordPiece gives [UNK] above 100 chars per word (BERT: 200)",
        "ΟΔΟΣ x.Σ": "Python's str.lower() applies the final-sigma rule; Rust's per-char lowercase does not",
        "私\ue000用": "the Rust normalizer drops private-use chars as if they were control chars",
        "[CLS] [SEP]": "literal special tokens in the text are matched as special tokens by transformers",
    }
    for text, why in cases.items():
        assert ours.encode(text) == _cn_ids(cn, text), why
        assert ours.encode(text) != _hf_ids(hf_default, [text])[0], f"no longer differs: {why}"


def test_private_use_chars_that_the_fast_path_uses_fall_back_correctly(ours, cn):
    texts = ["普通文本", "含\U000F0001私用\U0010FFFD字符 abc", "再来一句"]
    assert ours.encode_batch(texts) == [_cn_ids(cn, t) for t in texts]
    assert ours._id_rows(texts) == ours._id_rows_slow(texts)


def test_small_cache_is_cleared_and_stays_correct(corpus, cn):
    tok = T.Tokenizer(max_cache=50)
    sub = corpus[:500]
    assert tok.encode_batch(sub) == [_cn_ids(cn, t) for t in sub]
    assert len(tok._cache) <= max(50, len(set(sub)) * 20)


def test_wordpiece_greedy_longest_match(ours):
    assert ours.tokenize("unaffable") == ["u", "##na", "##ff", "##able"]
    steps = ours.wordpiece_steps("unaffable")
    assert [s[2] for s in steps if s[2]] == ["u", "##na", "##ff", "##able"]
    assert steps[0] == (0, "unaffable", None)  # longest candidate first
    assert ours.wordpiece_steps("𠮷")[-1][2] == "[UNK]"


def test_wordpiece_of_one_word_matches_cn_clip(ours, cn):
    words = ["unaffable", "￥99", "1234567", "iphone15", "ａｂｃ１２３", "😀", "x😀", "a" * 200, "a" * 201, "杰"]
    for w in words:
        assert ours.wordpiece(w) == cn.wordpiece_tokenizer.tokenize(w), w
    assert ours.wordpiece("x😀") == ["[UNK]"]  # one unknown part: the whole word is [UNK]


# ----------------------------------------------------------------------------- tensors
def test_shape_dtype_and_layout():
    out = T.tokenize(["杰尼龟", "皮卡丘", ""])
    assert out.shape == (3, 52) and out.dtype == torch.long
    assert out[0, :5].tolist() == [T.CLS_ID, *T.get_tokenizer().encode("杰尼龟"), T.SEP_ID]
    assert (out[0, 5:] == T.PAD_ID).all()
    assert out[2, :2].tolist() == [T.CLS_ID, T.SEP_ID] and (out[2, 2:] == 0).all()


def test_single_string_tuple_and_generator_inputs():
    one = T.tokenize("皮卡丘")
    assert one.shape == (1, 52)
    assert torch.equal(T.tokenize(("皮卡丘",)), one)
    assert torch.equal(T.tokenize(t for t in ["皮卡丘"]), one)
    assert T.tokenize([]).shape == (0, 52)


def test_truncation_keeps_cls_first_ids_and_sep():
    text = "一二三四五六七八九十"
    ids = T.get_tokenizer().encode(text)
    for length in (2, 3, 7, 12, 13, 20):
        row = T.tokenize(text, context_length=length)[0].tolist()
        body = ids[:length - 2]
        assert row == [T.CLS_ID, *body, T.SEP_ID] + [0] * (length - 2 - len(body))


def test_constants_and_vocab_file(ours):
    assert len(ours.vocab) == len(ours.inv_vocab) == T.VOCAB_SIZE
    assert [ours.vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")] == [T.PAD_ID, T.UNK_ID, T.CLS_ID, T.SEP_ID]
    import cn_clip.clip

    shipped = Path(cn_clip.clip.__file__).with_name("vocab.txt").read_bytes()
    assert T.VOCAB_PATH.read_bytes() == shipped
    assert "Apache" in (T.VOCAB_PATH.parent / "NOTICE").read_text(encoding="utf-8")
    assert T.get_tokenizer() is T.get_tokenizer()  # cached


def test_top_level_api():
    import cnclip_edu as cc

    assert torch.equal(cc.tokenize(["杰尼龟"]), T.tokenize(["杰尼龟"]))
    assert cc.decode(cc.tokenize("杰尼龟")[0]) == "杰尼龟"


# ----------------------------------------------------------------------------- decode
def test_decode_examples():
    assert T.decode(T.tokenize("杰尼龟")[0]) == "杰尼龟"
    assert T.decode(T.tokenize("Hello World 你好，世界！")[0]) == "hello world你好，世界！"
    assert T.decode(T.tokenize("unaffable 3.5元")[0]) == "unaffable 3.5元"
    assert T.decode([T.CLS_ID, 2769, T.SEP_ID, 0], skip_special_tokens=False) == "[CLS]我[SEP][PAD]"
    assert T.decode([]) == ""


def test_decode_round_trip_on_corpus(corpus, ours):
    """decode, then tokenize again: the same ids (for strings without [UNK])."""
    checked = 0
    for text in corpus[:3000]:
        ids = ours.encode(text)
        if T.UNK_ID in ids:
            continue
        assert ours.encode(T.decode(ids)) == ids, text
        checked += 1
    assert checked > 2000


def test_decode_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        T.decode(T.tokenize(["a", "b"]))
    with pytest.raises(ValueError, match="outside the vocab"):
        T.decode([101, 99999])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [123, None, b"bytes", 3.5])
def test_non_string_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="str"):
        T.tokenize(bad)


def test_bad_item_in_list_names_its_index():
    with pytest.raises(TypeError, match="item 2 is NoneType"):
        T.tokenize(["好", "的", None])
    with pytest.raises(TypeError, match="item 0 is bytes"):
        T.tokenize([b"x"])


@pytest.mark.parametrize("length", [1, 0, -5])
def test_context_length_below_two_is_a_value_error(length):
    with pytest.raises(ValueError, match="context_length must be >= 2"):
        T.tokenize("好", context_length=length)


def test_context_length_must_be_int():
    with pytest.raises(TypeError, match="context_length"):
        T.tokenize("好", context_length=52.0)


def test_vocab_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        T.load_vocab(tmp_path / "nope.txt")
    dup = tmp_path / "dup.txt"
    dup.write_text("[PAD]\na\nb\na\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"dup.txt, line 4: token 'a' already on line 2"):
        T.load_vocab(dup)


# ----------------------------------------------------------------------------- choose_context_length
def test_choose_context_length_is_the_smallest_l_that_keeps_a_share_q():
    """Against the definition, tried L by L: the smallest L with share(n + 2 <= L) >= q (notebook 01's 01.7)."""
    import random

    rng = random.Random(0)
    for _ in range(200):
        n_ids = [rng.randint(0, 60) for _ in range(rng.randint(1, 50))]
        q = rng.choice([0.3, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0])
        brute = next(L for L in range(2, 64) if sum(n + 2 <= L for n in n_ids) / len(n_ids) >= q)
        assert T.choose_context_length(n_ids, q) == brute, (n_ids, q)
    assert T.choose_context_length([10] * 7 + [20, 30, 40], 0.75) == 22   # linear interpolation would give 20
    assert isinstance(T.choose_context_length(torch.tensor([3, 1, 2])), int)
    for bad in ([], ), ([1], 0), ([1], 1.5):
        with pytest.raises(ValueError):
            T.choose_context_length(*bad)
