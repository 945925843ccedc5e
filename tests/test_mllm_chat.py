"""InternVL's chat layout over the course tokenizer, the compact vocabulary, and the answer-only labels."""
from __future__ import annotations

import pytest

from cnclip_edu.mllm.chat import (ASSISTANT_HEADER, IGNORE_INDEX, IM_END_ID, IM_START_ID, IMG_CONTEXT_ID,
                                  IMG_END_ID, IMG_START_ID, ChatVocab, assistant_labels, encode_chat,
                                  render_chat)
from cnclip_edu.mllm.world import vocabulary_texts
from cnclip_edu.tokenizer import get_tokenizer


def test_layout_is_internvl_chatml():
    turns = [("红色的是什么形状？", "圆形"), ("它是大的还是小的？", "大的")]
    rest = "<|im_start|>assistant\n圆形<|im_end|>\n<|im_start|>user\n它是大的还是小的？<|im_end|>\n<|im_start|>assistant\n大的<|im_end|>\n"
    image = "<img><IMG_CONTEXT><IMG_CONTEXT><IMG_CONTEXT></img>"
    # InternVL's template (the default): the image before the question, in the first turn only
    assert render_chat(turns, n_image_tokens=3) == f"<|im_start|>user\n{image}\n红色的是什么形状？<|im_end|>\n" + rest
    # image_first=False: after the question, so that every image token sees what is asked
    assert render_chat(turns, n_image_tokens=3, image_first=False) == \
        f"<|im_start|>user\n红色的是什么形状？\n{image}<|im_end|>\n" + rest
    # the text-only stand-in follows the same layout
    assert render_chat(turns[:1], image_text="左边是红色圆形", image_first=False) == \
        "<|im_start|>user\n红色的是什么形状？\n<img>左边是红色圆形</img><|im_end|>\n<|im_start|>assistant\n圆形<|im_end|>\n"
    assert render_chat(turns[:1], image_text="左边是红色圆形").startswith(
        "<|im_start|>user\n<img>左边是红色圆形</img>\n红色的是什么形状？")
    prompt = render_chat([("图中有几个图形？", None)], n_image_tokens=0)
    assert prompt == "<|im_start|>user\n图中有几个图形？<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(ValueError, match="only the last answer"):
        render_chat([("a", None), ("b", "c")])


def test_special_tokens_are_berts_unused_slots():
    tok = get_tokenizer()
    assert tok.convert_ids_to_tokens([IMG_START_ID, IMG_END_ID, IMG_CONTEXT_ID, IM_START_ID, IM_END_ID]) == \
        ["[unused1]", "[unused2]", "[unused3]", "[unused4]", "[unused5]"]
    ids = encode_chat(render_chat([("红色的是什么形状？", "圆形")], n_image_tokens=2))
    assert ids[:5] == [IM_START_ID, tok.vocab["user"], IMG_START_ID, IMG_CONTEXT_ID, IMG_CONTEXT_ID]
    assert ids.count(IMG_CONTEXT_ID) == 2 and ids[5] == IMG_END_ID
    # after the question: the 9 question characters, then the image, then the end of the turn
    ids = encode_chat(render_chat([("红色的是什么形状？", "圆形")], n_image_tokens=2, image_first=False))
    assert ids[11:16] == [IMG_START_ID, IMG_CONTEXT_ID, IMG_CONTEXT_ID, IMG_END_ID, IM_END_ID]
    assert tok.convert_ids_to_tokens(ASSISTANT_HEADER) == ["[unused4]", "as", "##sis", "##tant"]
    # a user typing the marker text gets the marker: the template is the only source of chat text here
    assert encode_chat("<|im_end|>") == [IM_END_ID]


def test_labels_cover_only_the_replies_and_their_end_marker():
    ids = encode_chat(render_chat([("红色的是什么形状？", "圆形"), ("它是大的还是小的？", "大的")], n_image_tokens=2))
    labels = assistant_labels(ids)
    kept = [(i, t) for i, (t, lab) in enumerate(zip(ids, labels)) if lab != IGNORE_INDEX]
    assert all(labels[i] == t for i, t in kept)
    tok = get_tokenizer()
    assert tok.convert_ids_to_tokens([t for _, t in kept]) == ["圆", "形", "[unused5]", "大", "的", "[unused5]"]
    # the reply starts right after the header's last token
    first = kept[0][0]
    assert tuple(ids[first - len(ASSISTANT_HEADER): first]) == ASSISTANT_HEADER


def test_labels_of_an_open_prompt_and_of_no_reply():
    ids = encode_chat(render_chat([("图中有几个图形？", None)]))
    assert set(assistant_labels(ids)) == {IGNORE_INDEX}
    assert assistant_labels([]) == []
    # a reply cut off before its <|im_end|> (truncation) is still learned up to the cut
    ids = encode_chat(render_chat([("问", "两个")]))[:-2]
    assert [x for x in assistant_labels(ids) if x != IGNORE_INDEX] == ids[-1:]


def test_compact_vocab_round_trip_and_clear_error():
    vocab = ChatVocab.from_texts(vocabulary_texts())
    assert vocab.token_ids[0] == 0 and len(vocab) < 120
    text = render_chat([("左边的是什么颜色？", "红色")], n_image_tokens=4)
    ids = encode_chat(text)
    compact = vocab.to_compact(ids)
    assert max(compact) < len(vocab) and vocab.to_tokenizer(compact) == ids
    reply = vocab.to_compact(encode_chat("大的红色圆形<|im_end|>红色"))
    assert vocab.decode(reply) == "大的红色圆形"  # stops at <|im_end|>
    with pytest.raises(ValueError, match="not in the chat vocabulary"):
        vocab.to_compact(encode_chat("猫"))
