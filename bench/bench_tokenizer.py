"""Tokenizer throughput: cnclip_edu.tokenize vs transformers' fast (Rust) BertTokenizer vs cn_clip.

    .venv/bin/python bench/bench_tokenizer.py            # 250k jieba sentences; cn_clip on 20k of them
    .venv/bin/python bench/bench_tokenizer.py --full     # cn_clip on all of them too (slow)

All three produce the same (N, 52) LongTensor (checked in the run). The corpus is
`cnclip_edu.tokenizer.jieba_corpus`: sentences glued from jieba's dictionary words, about the
size of MUGE's ~250k captions. Writes the `tokenizer` section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench._common import machine_info, markdown_table, timeit, write_section  # noqa: E402
from cnclip_edu import tokenizer as T  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=250_000, help="number of sentences")
    ap.add_argument("--n-cn-clip", "--n_cn_clip", type=int, default=20_000,
                    help="sentences given to cn_clip (pure Python, slow)")
    ap.add_argument("--n-hf", "--n_hf", type=int, default=30_000,
                    help="sentences given to transformers (slow on this CJK-heavy corpus)")
    ap.add_argument("--full", action="store_true", help="give cn_clip and transformers the whole corpus")
    ap.add_argument("--context-length", "--context_length", type=int, default=52)
    ap.add_argument("--no-write", action="store_true", help="print, don't update docs/benchmarks.md")
    args = ap.parse_args(argv)
    n_cn = args.n if args.full else min(args.n, args.n_cn_clip)
    n_hf = args.n if args.full else min(args.n, args.n_hf)
    L = args.context_length

    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    texts = T.jieba_corpus(args.n, seed=0)
    chars = sum(map(len, texts))
    print(f"corpus: {len(texts)} sentences, {chars / len(texts):.1f} chars on average")

    tok = T.get_tokenizer()
    ours = T.tokenize(texts, L)
    t_warm = timeit(lambda: T.tokenize(texts, L), repeat=3, warmup=0)

    def cold() -> None:
        tok._cache.clear()  # first sight of every word: what a new dataset costs
        T.tokenize(texts, L)

    t_cold = timeit(cold, repeat=3, warmup=0)
    print(f"ours: cold cache {t_cold:.2f} s, warm {t_warm:.2f} s")

    from transformers import BertTokenizerFast  # in transformers 5 this is the Rust-backed BertTokenizer

    hf = BertTokenizerFast(vocab=str(T.VOCAB_PATH))
    assert len(hf.get_vocab()) == T.VOCAB_SIZE

    def run_hf() -> torch.Tensor:
        return hf(texts[:n_hf], padding="max_length", truncation=True, max_length=L, return_tensors="pt")["input_ids"]

    os.environ["TOKENIZERS_PARALLELISM"] = "true"  # let Rust use every core: the best case for it
    t0 = time.perf_counter()
    out = run_hf()
    t_hf = time.perf_counter() - t0
    assert torch.equal(out, ours[:n_hf]), "transformers disagrees with cnclip_edu"
    print(f"transformers on {n_hf}: {t_hf:.2f} s")

    hf._tokenizer.no_padding()  # the padded call above left padding/truncation on in the backend
    hf._tokenizer.no_truncation()
    t0 = time.perf_counter()  # the Rust core alone: no padding, no tensor, no Python wrapping
    core = hf._tokenizer.encode_batch(texts[:n_hf], add_special_tokens=False)
    t_core = time.perf_counter() - t0
    for e, row in zip(core[:1000], ours):
        ids = e.ids[:L - 2]
        assert ids == row[1:1 + len(ids)].tolist(), "tokenizers core disagrees with cnclip_edu"
    print(f"tokenizers core on {n_hf}: {t_core:.2f} s")

    from cn_clip.clip import tokenize as cn_tokenize

    t0 = time.perf_counter()
    ref = cn_tokenize(texts[:n_cn], L)
    t_cn = time.perf_counter() - t0
    assert torch.equal(ref, ours[:n_cn]), "cn_clip disagrees with cnclip_edu"
    print(f"cn_clip on {n_cn}: {t_cn:.2f} s")

    rate = {
        "cnclip_edu `tokenize`, warm word cache": len(texts) / t_warm,
        "cnclip_edu `tokenize`, cold word cache": len(texts) / t_cold,
        f"transformers `BertTokenizerFast` (Rust, parallel; on {n_hf:,} of them)": n_hf / t_hf,
        f"its Rust core `encode_batch` alone (no padding/tensor; on {n_hf:,})": n_hf / t_core,
        f"cn_clip `clip.tokenize` (on {n_cn:,} of them)": n_cn / t_cn,
    }
    cold_rate = rate["cnclip_edu `tokenize`, cold word cache"]
    rows = [[name, f"{r:,.0f}", f"{args.n / r:.2f}", f"{cold_rate / r:.2f}x"] for name, r in rate.items()]
    md = "\n".join([
        "## tokenizer",
        "",
        f"`{' '.join(['.venv/bin/python', 'bench/bench_tokenizer.py'] + (argv if argv is not None else sys.argv[1:]))}`"
        f" — {machine_info()}; load average {load:.1f} at the start"
        + (" (a busy machine: absolute numbers are low, the ratios come from the same run)" if load > (os.cpu_count() or 1) else ""),
        "",
        f"Corpus: {args.n:,} sentences built from jieba's dictionary words (`tokenizer.jieba_corpus`, "
        f"{chars / len(texts):.1f} characters on average, as many as MUGE's ~250k training captions), context length {L}. "
        "All three return the same tensor (checked in the run). cn_clip (pure Python) gets the first "
        f"{n_cn:,} sentences and transformers the first {n_hf:,} (`--full`: all of them); their time for the "
        f"whole {args.n:,} is extrapolated. "
        "Times are one pass over the corpus (ours: median of 3); "
        "\"cold\" clears our word cache first, \"warm\" reuses it (a second epoch over the same captions).",
        "",
        markdown_table(["tokenizer", "captions/s", f"s per {args.n:,}", "ours (cold) is faster by"], rows),
    ])
    print(md)
    if not args.no_write:
        write_section("tokenizer", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
