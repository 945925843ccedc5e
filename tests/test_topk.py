"""Top-k retrieval: equals brute-force numpy (ties -> lower index), cn_clip's
`make_topk_predictions.py` / `make_topk_predictions_tr.py` output (run in-process as the oracle,
with `.cuda()` made a no-op so it runs on CPU), faiss exact equals torch, chunking never changes
the answer, approximate indexes report their recall."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cn_clip.eval as cn_eval
from cnclip_edu.eval import topk
from cnclip_edu.eval.features import save_features

CN_EVAL = Path(cn_eval.__file__).parent


def _quantized(rng, n, d=16):
    """Features on a 1/8 grid: every dot product is exact in float32, and many tie exactly."""
    return (rng.integers(-3, 4, size=(n, d)) / 8).astype(np.float32)


def _brute_force(q, g, k):
    s = q.astype(np.float64) @ g.astype(np.float64).T
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]    # stable: ties keep the lower index first
    return np.take_along_axis(s, idx, 1), idx


@pytest.mark.parametrize("qb,gb", [(1024, 32768), (7, 13), (1, 5), (50, 3)])
def test_torch_equals_brute_force_with_ties_any_chunking(qb, gb):
    rng = np.random.default_rng(0)
    q, g = _quantized(rng, 60), _quantized(rng, 300)
    g[100:110] = g[5]  # exact duplicates: ties across chunks
    ref_s, ref_i = _brute_force(q, g, 10)
    s, i = topk.topk_predictions(q, g, 10, "torch", query_batch_size=qb, gallery_batch_size=gb)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, rtol=0, atol=1e-6)


def test_boundary_ties_choose_lowest_indices():
    g = np.zeros((40, 3), np.float32)
    g[:, 0] = 1.0                      # every item ties for query e0 ...
    g[[7, 30], 1] = 1.0                # ... except two better ones
    q = np.array([[1, 0, 0], [1, 1, 0]], np.float32)
    for backend in ("torch", "faiss"):
        _, i = topk.topk_predictions(q, g, 5, backend, gallery_batch_size=6)
        assert i.tolist() == [[0, 1, 2, 3, 4], [7, 30, 0, 1, 2]], backend


@pytest.mark.parametrize("seed", [0, 1])
def test_faiss_exact_equals_torch(seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((200, 64)).astype(np.float32)
    g = rng.standard_normal((3000, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    s_t, i_t = topk.topk_predictions(q, g, 10, "torch", gallery_batch_size=1000)
    s_f, i_f = topk.topk_predictions(q, g, 10, "faiss")
    np.testing.assert_array_equal(i_f, i_t)
    np.testing.assert_allclose(s_f, s_t, atol=1e-5)
    # quantized features with many exact ties: the tie rule holds for faiss too
    q, g = _quantized(rng, 40), _quantized(rng, 500)
    np.testing.assert_array_equal(topk.topk_predictions(q, g, 10, "faiss")[1], _brute_force(q, g, 10)[1])


def test_approximate_indexes_report_recall():
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, 32))
    g = (centers[rng.integers(0, 50, 4000)] + 0.3 * rng.standard_normal((4000, 32))).astype(np.float32)
    q = (centers[rng.integers(0, 50, 100)] + 0.3 * rng.standard_normal((100, 32))).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, exact = topk.topk_predictions(q, g, 10)
    _, hnsw = topk.topk_predictions(q, g, 10, "faiss-hnsw")
    assert topk.recall_vs_exact(hnsw, exact) > 0.9
    cfg = topk.IndexConfig(nlist=16, nprobe=16)              # every cell probed: exact
    _, ivf = topk.topk_predictions(q, g, 10, "faiss-ivf", index_config=cfg)
    assert topk.recall_vs_exact(ivf, exact) == 1.0
    assert topk.recall_vs_exact(exact[:, ::-1], exact) == 1.0 and topk.recall_vs_exact(exact[:, :1] + 10**6, exact[:, :1]) == 0.0


def test_small_gallery_nan_and_shape_errors():
    g = np.eye(3, dtype=np.float32)
    s, i = topk.topk_predictions(g, g, 10)
    assert i.shape == (3, 3) and i[:, 0].tolist() == [0, 1, 2]
    bad = g.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        topk.topk_predictions(g, bad, 2)
    with pytest.raises(ValueError, match=r"\(Q, D\) and \(N, D\)"):
        topk.topk_predictions(g, np.eye(4, dtype=np.float32), 2)
    with pytest.raises(ValueError, match="unknown backend"):
        topk.topk_predictions(g, g, 2, "annoy")


def test_memmapped_float16_gallery(tmp_path):
    rng = np.random.default_rng(0)
    q, g = _quantized(rng, 20), _quantized(rng, 200)   # 1/8 grid is exact in float16 too
    save_features(tmp_path / "g.npy", np.arange(200), g, "image", dtype="float16")
    mm = np.load(tmp_path / "g.npy", mmap_mode="r")
    assert isinstance(mm, np.memmap) and mm.dtype == np.float16
    np.testing.assert_array_equal(topk.topk_predictions(q, mm, 10, gallery_batch_size=64)[1], _brute_force(q, g, 10)[1])


def _run_cn_clip_script(monkeypatch, script: str, argv: list[str]) -> None:
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)  # their script is GPU-only
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(str(CN_EVAL / script), run_name="__main__")


@pytest.mark.parametrize("direction,script", [("t2i", "make_topk_predictions.py"), ("i2t", "make_topk_predictions_tr.py")])
def test_cli_equals_cn_clip_scripts(tmp_path, monkeypatch, capsys, direction, script):
    rng = np.random.default_rng(1)
    img, txt = _quantized(rng, 120), _quantized(rng, 80)
    img[60:70] = img[3]                                   # ties: both must keep the lower position first
    image_ids, text_ids = rng.permutation(10**6)[:120] + 1, rng.permutation(10**6)[:80] + 1
    save_features(tmp_path / "imgs.jsonl", image_ids, img, "image")
    save_features(tmp_path / "txts.jsonl", text_ids, txt, "text")
    common = ["--image-feats", str(tmp_path / "imgs.jsonl"), "--text-feats", str(tmp_path / "txts.jsonl"),
              "--top-k", "10", "--eval-batch-size", "37"]
    _run_cn_clip_script(monkeypatch, script, common + ["--output", str(tmp_path / "theirs.jsonl")])
    assert topk.main(common + ["--output", str(tmp_path / "ours.jsonl"), "--direction", direction]) == 0
    theirs = (tmp_path / "theirs.jsonl").read_text()
    assert (tmp_path / "ours.jsonl").read_text() == theirs
    first = json.loads(theirs.splitlines()[0])
    assert set(first) == ({"text_id", "image_ids"} if direction == "t2i" else {"image_id", "text_ids"})


def test_cli_npy_features_and_faiss_backends(tmp_path, capsys):
    rng = np.random.default_rng(2)
    img = rng.standard_normal((500, 32)).astype(np.float32)
    txt = rng.standard_normal((50, 32)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    save_features(tmp_path / "i.npy", np.arange(500) + 7, img, "image", dtype="float32")
    save_features(tmp_path / "t.npy", np.arange(50) + 3, txt, "text", dtype="float32")
    base = ["--image-feats", str(tmp_path / "i.npy"), "--text-feats", str(tmp_path / "t.npy"), "--top-k", "5"]
    outs = {}
    for backend in ("torch", "faiss", "faiss-hnsw"):
        out = tmp_path / f"{backend}.jsonl"
        assert topk.main(base + ["--output", str(out), "--backend", backend]) == 0
        outs[backend] = [json.loads(line) for line in out.read_text().splitlines()]
    assert outs["torch"] == outs["faiss"]
    assert "faiss-hnsw recall@5 vs exact search on 50 queries" in capsys.readouterr().out
    assert outs["torch"][0]["text_id"] == 3 and all(7 <= i < 507 for i in outs["torch"][0]["image_ids"])
    assert topk.main(base + ["--output", str(tmp_path / "x.jsonl"), "--text-feats", str(tmp_path / "none.npy")]) == 1


def test_cli_refuses_a_gallery_with_an_id_twice_and_names_nan_rows(tmp_path, capsys):
    """Issue 16 items 5, 10: a gallery with an id twice gave predictions repeating that id; the NaN
    error named neither the file nor the id."""
    feats = np.eye(12, 4, dtype=np.float32) + 0.5
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    save_features(tmp_path / "t.jsonl", np.arange(4), feats[:4], "text")
    ids = np.arange(12) + 100
    ids[9] = 102
    save_features(tmp_path / "i.jsonl", ids, feats, "image")
    base = ["--text-feats", str(tmp_path / "t.jsonl"), "--output", str(tmp_path / "p.jsonl")]
    assert topk.main(base + ["--image-feats", str(tmp_path / "i.jsonl")]) == 1
    assert "i.jsonl:10: image_id 102 is a duplicate (already at" in capsys.readouterr().err
    save_features(tmp_path / "i.npy", ids, feats, "image")
    assert topk.main(base + ["--image-feats", str(tmp_path / "i.npy")]) == 1
    assert "i.ids.npy: rows 2 and 9 hold the same id 102" in capsys.readouterr().err
    bad = feats.copy()
    bad[7, 2] = np.nan
    save_features(tmp_path / "n.npy", np.arange(12) + 100, bad, "image")
    assert topk.main(base + ["--image-feats", str(tmp_path / "n.npy")]) == 1
    assert "n.npy: row 7 (id 107) holds NaN or inf" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()
    for flag in ("--top-k", "--eval-batch-size", "--query-batch-size", "--nprobe", "--nlist", "--ef-search"):
        with pytest.raises(SystemExit) as e:
            topk.main(base + ["--image-feats", str(tmp_path / "i.npy"), flag, "0"])
        assert e.value.code == 2 and f"cnclip-edu topk: {flag} must be >= " in capsys.readouterr().err


def test_ivf_dot_products_counts_the_centres_and_the_visited_cells():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    g = rng.standard_normal((2000, 16)).astype(np.float32)
    q = rng.standard_normal((50, 16)).astype(np.float32)
    index = topk.build_faiss_index(g, "faiss-ivf")          # nlist = min(sqrt(2000), 2000 // 39) = 44
    for nprobe in (1, 4, index.nlist):
        index.nprobe = nprobe
        nlist, scanned = topk.ivf_dot_products(index, q)
        assert nlist == index.nlist == 44
        if nprobe == index.nlist:
            assert scanned == len(g)                           # every cell visited: the whole gallery
        else:
            assert 0 < scanned < len(g)
    index.nprobe = 1
    one = topk.ivf_dot_products(index, q)[1]
    index.nprobe = 4
    assert topk.ivf_dot_products(index, q)[1] > one            # more cells, more vectors


def test_default_nlist_is_sqrt_n_capped_by_39_points_per_cell():
    assert topk.default_nlist(100_000) == 316
    assert topk.default_nlist(20_000) == 141
    assert topk.default_nlist(1177) == 30          # 1177 // 39 = 30 < sqrt(1177) = 34
    assert topk.default_nlist(500) == 12
    assert topk.default_nlist(10) == 1
