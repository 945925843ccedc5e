"""Exercises of notebook 01 (the tokenizer): the student writes the whole tokenizer, piece by piece.

01.1 `is_cjk` + `basic_tokenize`, 01.2 `wordpiece(word, vocab)`, 01.3 `load_vocab(path)`,
01.4 `encode_batch(texts, vocab)` (01.1 + 01.2 + the vocab, [UNK] = 100, each distinct word cut once per
call; the cell gives `encode(text, vocab)` on top of it), 01.5 `tokenize(texts, vocab, context_length)` on
top of the student's own `encode_batch`, 01.6 `decode(ids, vocab)` (ids back to text,
the spacing rule of `cnclip_edu.decode`), 01.7 `choose_context_length(n_ids, q)` (the smallest L that
keeps a share q of the texts whole; section 6 picks L with it). 01.3-01.5 are the names the capstone of
notebook 05 loads from the student's `%%my_clip` cells.

Each part registers its own when imported: nb01_pieces.py (01.1-01.3), nb01_encode.py (01.4, 01.5),
nb01_decode.py (01.6), nb01_context_length.py (01.7); they share nb01_common.py (the library's
tokenizer, the tripwires, random texts) and nb01_student.py (the student's way, with mistakes: the
mutants' building blocks). The registry (`core._load_all`) imports only the `nbNN` modules: this one is
the notebook's entry.
"""
from . import nb01_context_length, nb01_decode, nb01_encode, nb01_pieces  # noqa: F401  (importing registers)
