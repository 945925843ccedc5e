"""Compatibility with cn_clip, both ways, with cn_clip as the oracle: its build script and ours write
the same records; its `LMDBDataset` / `EvalImgDataset` / `EvalTxtDataset` and ours return the same
images, texts and tokens from either LMDB."""
from __future__ import annotations

import gc
import pickle
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
import torch

from cnclip_edu.data import toy
from cnclip_edu.data.dataset import EvalImageDataset, EvalTextDataset, LMDBDataset, close_shared_envs
from cnclip_edu.data.lmdb_build import build_lmdb

pytest.importorskip("cn_clip")
CFG = toy.ToyConfig(seed=5, n_train=120, n_valid=40, n_test=40, zeroshot_per_class=1, workers=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Toy data with two LMDBs of it: one by cn_clip's script (subprocess), one by ours."""
    root = tmp_path_factory.mktemp("compat")
    data = toy.generate(root / "toy", CFG)
    subprocess.run([sys.executable, "-m", "cn_clip.preprocess.build_lmdb_dataset", "--data_dir", str(data),
                    "--splits", "train,valid", "--lmdb_dir", str(root / "cn")], check=True, capture_output=True)
    build_lmdb(data, "train,valid", lmdb_dir=root / "ours", progress=False, verbose=False)
    return data, root / "cn", root / "ours"


def _records(path: Path) -> dict[bytes, object]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        out = {k: (v if path.name == "imgs" or not k.isdigit() else pickle.loads(v)) for k, v in txn.cursor()}
    env.close()
    return out


@pytest.mark.parametrize("split", ["train", "valid"])
def test_same_records_as_cn_clips_build_script(built, split):
    _, cn, ours = built
    for db in ("imgs", "pairs"):
        a, b = _records(cn / split / db), _records(ours / split / db)
        assert a == b, f"{split}/{db} differs"
        assert len(a) > 40


def _cn_items(lmdb_split: Path, idx: list[int], resolution: int):
    from cn_clip.training.data import LMDBDataset as CnLMDBDataset

    ds = CnLMDBDataset(str(lmdb_split), split="val", max_txt_length=52, resolution=resolution)
    items = [ds[i] for i in idx]
    n = len(ds)
    del ds
    gc.collect()  # cn_clip's dataset closes its environments in __del__
    return n, items


@pytest.mark.parametrize("which", ["cn", "ours"])
def test_lmdb_dataset_matches_cn_clip(built, which):
    """Whichever script built the LMDB, cn_clip's dataset and ours agree item by item."""
    root = built[1] if which == "cn" else built[2]
    split = root / "train"
    close_shared_envs(root)
    idx = [0, 1, 7, 50, 99]
    n_cn, cn_items = _cn_items(split, idx, resolution=32)
    ds = LMDBDataset(split, resolution=32, context_length=52)
    assert len(ds) == n_cn
    for i, (cn_img, cn_tok, eos) in zip(idx, cn_items):
        img, tok = ds[i]
        assert img.shape == cn_img.shape == (3, 32, 32)
        torch.testing.assert_close(img, cn_img, rtol=0, atol=0)
        assert torch.equal(tok, cn_tok) and tok.dtype == torch.long
        assert tok[eos] == 102
    close_shared_envs(root)


def test_eval_datasets_match_cn_clip(built):
    from cn_clip.eval.data import EvalImgDataset, EvalTxtDataset

    data, cn, ours = built
    close_shared_envs(ours)
    ref = EvalImgDataset(str(cn / "valid" / "imgs"), resolution=24)
    ref_items = [ref[i] for i in range(len(ref))]
    del ref
    gc.collect()
    for src in (ours / "valid" / "imgs", data / "valid_imgs.tsv"):
        ds = EvalImageDataset(src, resolution=24)
        got = {iid: x for iid, x in (ds[i] for i in range(len(ds)))}
        assert set(got) == {iid for iid, _ in ref_items}
        for iid, x in ref_items:
            torch.testing.assert_close(got[iid], x, rtol=0, atol=0)
    ref_t = EvalTxtDataset(str(data / "valid_texts.jsonl"), max_txt_length=52)
    ds_t = EvalTextDataset(data / "valid_texts.jsonl", context_length=52)
    assert len(ds_t) == len(ref_t)
    for i in range(len(ref_t)):
        (a_id, a), (b_id, b) = ds_t[i], ref_t[i]
        assert a_id == b_id and torch.equal(a, b)
    close_shared_envs(ours)
