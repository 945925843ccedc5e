"""Top-k retrieval on feature files: for every query, the k most similar gallery items.

    cnclip-edu topk --image-feats test_imgs.img_feat.jsonl --text-feats test_texts.txt_feat.jsonl \
        --top-k 10 --output test_predictions.jsonl                          # text -> image (t2i)
    cnclip-edu topk ... --direction i2t --output test_tr_predictions.jsonl  # image -> text
    cnclip-edu topk ... --backend faiss-ivf                                 # approximate, for 1M+ images

Features are L2-normalized, so inner product = cosine similarity. Backends:
- `torch`: exact. Scores are computed one (query chunk x gallery chunk) block at a time and a
  running top-k is merged after each block, so memory is O(query_chunk * gallery_chunk), never
  O(queries * gallery). cn_clip's script instead builds a Python list of (id, score) tuples per
  query and sorts it: same answer, orders of magnitude slower (see docs/benchmarks.md, `topk`).
- `faiss`: exact `IndexFlatIP` (same results as `torch`).
- `faiss-hnsw` / `faiss-ivf`: approximate indexes for galleries of a million and more; they trade
  a little recall for speed, so the CLI measures their recall@k against exact search on a sample.

Ties: equal scores are ranked by the LOWER gallery index (the item's position in the feature
file) first. cn_clip gets the same order from Python's stable sort, so predictions match it
exactly, ties included. For `faiss`, rows whose k-th and (k+1)-th scores tie are recomputed
with `torch` so that the rule holds there too.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnclip_edu.cli import InRange

BACKENDS = ("torch", "faiss", "faiss-hnsw", "faiss-ivf")
DIRECTIONS = ("t2i", "i2t")


@dataclass
class IndexConfig:
    """Knobs of the approximate faiss indexes (ignored by the exact backends)."""
    hnsw_m: int = 32               # graph degree: more = better recall, more memory
    ef_construction: int = 64      # build-time beam width
    ef_search: int = 128           # query-time beam width (raised to >= k)
    nlist: int | None = None       # IVF cells; default ~ sqrt(N) (cheap to train on a CPU)
    nprobe: int = 32               # IVF cells visited per query
    train_per_list: int = 64       # IVF k-means sample = train_per_list * nlist points


# ----------------------------------------------------------------------------- exact torch top-k
def _as_tensor(block: np.ndarray, device: str):
    import torch

    block = np.ascontiguousarray(block, dtype=np.float32)
    if not block.flags.writeable:  # a read-only memmap chunk: torch wants its own copy
        block = block.copy()
    t = torch.from_numpy(block).to(device)
    if not torch.isfinite(t).all():
        raise ValueError("features contain NaN or inf; re-extract them (a zero-norm feature gives NaN)")
    return t


def _sort_desc_then_index(vals, idx):
    """Order each row by score descending, ties by index ascending. vals, idx: (Q, m)."""
    import torch

    order = idx.argsort(dim=1)
    vals, idx = vals.gather(1, order), idx.gather(1, order)
    order = vals.argsort(dim=1, descending=True, stable=True)
    return vals.gather(1, order), idx.gather(1, order)


def _block_topk(scores, k: int):
    """Top-k of each row of `scores` (Q, n), ties -> lower column first. Returns (vals, idx) (Q, k)."""
    import torch

    n = scores.shape[1]
    vals, idx = scores.topk(min(k + 1, n), dim=1)            # one extra: is there a tie across place k?
    tied = torch.nonzero(vals[:, k - 1] == vals[:, k]).flatten() if n > k else vals.new_empty(0, dtype=torch.long)
    vals, idx = _sort_desc_then_index(vals[:, :k], idx[:, :k])  # order among ties is unspecified: fix it
    if len(tied):                                           # rare: a stable full sort of those rows
        v, i = scores[tied].sort(dim=1, descending=True, stable=True)
        vals[tied], idx[tied] = v[:, :k], i[:, :k]
    return vals, idx


def _torch_topk(queries: np.ndarray, gallery: np.ndarray, k: int, query_batch_size: int,
                gallery_batch_size: int, device: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from tqdm.auto import tqdm

    nq, ng = len(queries), len(gallery)
    out_vals = np.empty((nq, k), dtype=np.float32)
    out_idx = np.empty((nq, k), dtype=np.int64)
    n_blocks = math.ceil(nq / query_batch_size) * math.ceil(ng / gallery_batch_size)
    bar = tqdm(total=n_blocks, desc="top-k (torch)", unit="block", disable=not progress)
    with torch.no_grad():
        for q0 in range(0, nq, query_batch_size):
            q = _as_tensor(queries[q0:q0 + query_batch_size], device)           # (Bq, D)
            best_v = best_i = None
            for g0 in range(0, ng, gallery_batch_size):
                g = _as_tensor(gallery[g0:g0 + gallery_batch_size], device)     # (Bg, D)
                v, i = _block_topk(q @ g.T, min(k, len(g)))                     # (Bq, <=k)
                i += g0
                if best_v is None:
                    best_v, best_i = v, i
                else:  # earlier blocks hold lower indices: a stable sort keeps them first on ties
                    v, i = torch.cat([best_v, v], 1), torch.cat([best_i, i], 1)
                    order = v.argsort(dim=1, descending=True, stable=True)[:, :k]
                    best_v, best_i = v.gather(1, order), i.gather(1, order)
                bar.update(1)
            out_vals[q0:q0 + len(q)] = best_v.cpu().numpy()
            out_idx[q0:q0 + len(q)] = best_i.cpu().numpy()
    bar.close()
    return out_vals, out_idx


# ----------------------------------------------------------------------------- faiss
def _require_faiss():
    try:
        import faiss
    except ImportError:
        from ..cli import MissingExtra

        raise MissingExtra("the faiss backends need faiss: pip install 'cnclip-edu[faiss]' (or faiss-gpu)", name="faiss") from None
    return faiss


def default_nlist(n: int) -> int:
    """The IVF cell count used when `IndexConfig.nlist` is None: about sqrt(n), cheap to train on a CPU,
    but at most n // 39, since faiss's k-means wants >= 39 training points per cell (and at least 1)."""
    return max(1, min(int(math.sqrt(n)), n // 39 or 1))


def build_faiss_index(gallery: np.ndarray, backend: str = "faiss", cfg: IndexConfig | None = None,
                      chunk: int = 65536):
    """A faiss inner-product index over `gallery` (N, D), added in float32 chunks (works on memmaps)."""
    faiss = _require_faiss()
    cfg = cfg or IndexConfig()
    n, d = gallery.shape
    if backend == "faiss":
        index = faiss.IndexFlatIP(d)
    elif backend == "faiss-hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
    elif backend == "faiss-ivf":
        nlist = cfg.nlist or default_nlist(n)
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, max(cfg.train_per_list, 39) * nlist), replace=False))
        index.train(np.ascontiguousarray(gallery[sample], dtype=np.float32))
        index.nprobe = min(cfg.nprobe, nlist)
    else:
        raise ValueError(f"unknown faiss backend {backend!r}; choose from {BACKENDS[1:]}")
    for s in range(0, n, chunk):
        index.add(np.ascontiguousarray(gallery[s:s + chunk], dtype=np.float32))
    return index


def _faiss_search(index, queries: np.ndarray, k: int, query_batch_size: int, cfg: IndexConfig,
                  progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from tqdm.auto import tqdm

    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(cfg.ef_search, k)
    vals, idx = [], []
    for s in tqdm(range(0, len(queries), query_batch_size), desc="top-k (faiss)", unit="chunk",
                  disable=not progress):
        v, i = index.search(np.ascontiguousarray(queries[s:s + query_batch_size], dtype=np.float32), k)
        vals.append(v)
        idx.append(i)
    return np.concatenate(vals), np.concatenate(idx)


def _tie_order_np(vals: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within each row: score descending, then index ascending (invalid -1 entries last)."""
    key_idx = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.lexsort((key_idx, -vals), axis=1)
    return np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)


# ----------------------------------------------------------------------------- public API
def topk_predictions(queries: np.ndarray, gallery: np.ndarray, k: int = 10, backend: str = "torch",
                     query_batch_size: int = 1024, gallery_batch_size: int = 32768, device: str = "cpu",
                     index_config: IndexConfig | None = None, index=None,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery items for each query by inner product.

    queries (Q, D), gallery (N, D): L2-normalized features (numpy, memmaps welcome).
    Returns (scores float32 (Q, k'), indices int64 (Q, k')) with k' = min(k, N), best first,
    ties broken by the lower gallery index. `index` reuses a built faiss index (else one is built).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    if queries.ndim != 2 or gallery.ndim != 2 or queries.shape[1] != gallery.shape[1]:
        raise ValueError(f"queries {queries.shape} and gallery {gallery.shape} must be (Q, D) and (N, D)")
    if k < 1 or len(gallery) == 0:
        raise ValueError(f"need k >= 1 and a non-empty gallery (k={k}, N={len(gallery)})")
    k = min(k, len(gallery))
    if backend == "torch":
        return _torch_topk(queries, gallery, k, query_batch_size, gallery_batch_size, device, progress)
    cfg = index_config or IndexConfig()
    index = index if index is not None else build_faiss_index(gallery, backend, cfg)
    exact = backend == "faiss"
    k_search = min(k + 1, len(gallery)) if exact else k
    vals, idx = _faiss_search(index, queries, k_search, query_batch_size, cfg, progress)
    # Rows that need exact torch: a tie across the k-th place (exact index), or slots the
    # approximate index could not fill (-1). Both are rare; recomputing keeps results well-defined.
    redo = (vals[:, k - 1] == vals[:, k]) if exact and k_search > k else np.zeros(len(vals), bool)
    redo |= (idx[:, :k] < 0).any(axis=1)
    vals, idx = _tie_order_np(vals[:, :k], idx[:, :k])
    rows = np.flatnonzero(redo)
    if len(rows):
        v, i = _torch_topk(queries[rows], gallery, k, query_batch_size, gallery_batch_size, "cpu", False)
        vals[rows], idx[rows] = v, i
    return vals.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)


def recall_vs_exact(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k (ANN "recall@k")."""
    hits = [len(set(a.tolist()) & set(e.tolist())) / len(e) for a, e in zip(approx_idx, exact_idx)]
    return float(np.mean(hits)) if hits else 1.0


def ivf_dot_products(index, queries: np.ndarray) -> tuple[int, float]:
    """What one IVF search computes per query: (nlist, the mean number of gallery vectors in the nprobe
    cells it visits). Each query is first compared with all nlist cell centres, then with the vectors
    of its nprobe nearest cells, so it costs nlist + scanned inner products, against N for exact search.
    With equal cells scanned = nprobe * N / nlist; and with nlist ~ sqrt(N) the centre term is as large
    as the scanned one at nprobe = 1 -- not negligible next to IVF's own cost, only next to exact search."""
    faiss = _require_faiss()
    ivf = faiss.extract_index_ivf(index)
    _, cells = ivf.quantizer.search(np.ascontiguousarray(queries, dtype=np.float32), ivf.nprobe)   # (Q, nprobe)
    sizes = np.array([ivf.invlists.list_size(c) for c in range(ivf.nlist)])
    return int(ivf.nlist), float(sizes[cells[cells >= 0]].sum() / len(queries))


def write_predictions(path: str | Path, query_ids, gallery_ids, indices: np.ndarray, direction: str = "t2i") -> Path:
    """cn_clip's prediction JSONL: t2i `{"text_id", "image_ids"}`, i2t `{"image_id", "text_ids"}`."""
    import json

    from cnclip_edu.fileio import atomic_open

    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    qkey, gkey = ("text_id", "image_ids") if direction == "t2i" else ("image_id", "text_ids")
    gallery_ids = np.asarray(gallery_ids)
    with atomic_open(path) as f:
        for qid, row in zip(np.asarray(query_ids).tolist(), gallery_ids[indices].tolist()):
            f.write(json.dumps({qkey: qid, gkey: row}) + "\n")
    return Path(path)


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cnclip-edu topk", description=__doc__.split("\n\n")[0])
    ap.add_argument("--image-feats", "--image_feats", required=True, help=".jsonl or .npy image features")
    ap.add_argument("--text-feats", "--text_feats", required=True, help=".jsonl or .npy text features")
    ap.add_argument("--top-k", "--top_k", type=int, default=10, action=InRange, lo=1)
    ap.add_argument("--eval-batch-size", "--eval_batch_size", type=int, default=32768, action=InRange, lo=1,
                    help="gallery-side chunk size (as cn_clip)")
    ap.add_argument("--query-batch-size", "--query_batch_size", type=int, default=1024, action=InRange, lo=1,
                    help="query-side chunk size")
    ap.add_argument("--output", required=True)
    ap.add_argument("--direction", choices=DIRECTIONS, default="t2i")
    ap.add_argument("--backend", choices=BACKENDS, default="torch")
    ap.add_argument("--device", default="cpu", help="torch backend device (cpu, cuda)")
    ap.add_argument("--nprobe", type=int, default=IndexConfig.nprobe, action=InRange, lo=1)
    ap.add_argument("--nlist", type=int, default=None, action=InRange, lo=1)
    ap.add_argument("--hnsw-m", type=int, default=IndexConfig.hnsw_m, action=InRange, lo=2)
    ap.add_argument("--ef-search", type=int, default=IndexConfig.ef_search, action=InRange, lo=1)
    ap.add_argument("--check-recall", type=int, default=1000, action=InRange, lo=0,
                    help="approximate backends: queries checked against exact search (0 = skip)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from cnclip_edu.eval.features import first_nonfinite_row, load_features

    args = build_parser().parse_args(argv)
    try:
        image_ids, image_feats = load_features(args.image_feats)
        text_ids, text_feats = load_features(args.text_feats)
    except (FileNotFoundError, ValueError) as e:
        print(f"topk: {e}", file=sys.stderr)
        return 1
    for path, ids, feats in ((args.image_feats, image_ids, image_feats), (args.text_feats, text_ids, text_feats)):
        row = first_nonfinite_row(feats)  # one pass over a memmapped .npy (a JSONL was checked on load)
        if row is not None:
            print(f"topk: {path}: row {row} (id {ids[row]}) holds NaN or inf; re-extract the features "
                  "(a zero-norm feature gives NaN)", file=sys.stderr)
            return 1
    if args.direction == "t2i":
        q_ids, q, g_ids, g = text_ids, text_feats, image_ids, image_feats
    else:
        q_ids, q, g_ids, g = image_ids, image_feats, text_ids, text_feats
    cfg = IndexConfig(hnsw_m=args.hnsw_m, ef_search=args.ef_search, nlist=args.nlist, nprobe=args.nprobe)
    t0 = time.perf_counter()
    index = build_faiss_index(g, args.backend, cfg) if args.backend != "torch" else None
    t_build = time.perf_counter() - t0
    _, idx = topk_predictions(q, g, args.top_k, args.backend, args.query_batch_size, args.eval_batch_size,
                              args.device, cfg, index=index, progress=True)
    t_search = time.perf_counter() - t0 - t_build
    write_predictions(args.output, q_ids, g_ids, idx, args.direction)
    print(f"{len(q_ids)} queries x {len(g_ids)} gallery, top-{idx.shape[1]} ({args.backend}): "
          f"build {t_build:.2f} s, search {t_search:.2f} s -> {args.output}")
    if args.backend in ("faiss-hnsw", "faiss-ivf") and args.check_recall > 0:
        sample = np.random.default_rng(0).choice(len(q), size=min(args.check_recall, len(q)), replace=False)
        _, exact = topk_predictions(q[np.sort(sample)], g, args.top_k, "torch", args.query_batch_size,
                                    args.eval_batch_size, args.device)
        r = recall_vs_exact(idx[np.sort(sample)], exact)
        print(f"{args.backend} recall@{idx.shape[1]} vs exact search on {len(sample)} queries: {r:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
