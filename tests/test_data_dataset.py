"""LMDBDataset and friends: outputs, known positives, DataLoader workers (fork and spawn, after the
parent has read), pickling, restricted unpickling, corrupt records named by key, augmentation, in-place rebuilds."""
from __future__ import annotations

import base64
import json
import os
import pickle

import lmdb
import pytest
import torch
from torch.utils.data import DataLoader

from cnclip_edu.data import augment, formats, toy
from cnclip_edu.data.dataset import LMDBDataset, close_shared_envs, preprocess_text
from cnclip_edu.data.lmdb_build import build_lmdb
from cnclip_edu.tokenizer import tokenize

CFG = toy.ToyConfig(seed=6, n_train=150, n_valid=30, n_test=30, zeroshot_per_class=1, workers=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return toy.ensure_toy_data(tmp_path_factory.mktemp("ds"), CFG)


def test_items_shapes_and_meta(data):
    ds = LMDBDataset(data / "lmdb" / "train", resolution=32, context_length=40)
    texts = list(formats.iter_texts_jsonl(data / "train_texts.jsonl"))
    assert len(ds) == sum(len(t["image_ids"]) for t in texts) == ds.num_samples
    assert ds.num_images == 150
    img, tok = ds[3]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32
    assert tok.shape == (40,) and tok.dtype == torch.long
    iid, tid, text = ds.pair(3)
    assert torch.equal(tok, tokenize([text], 40)[0])
    flat = [(i, t["text_id"], t["text"]) for t in texts for i in t["image_ids"]]
    assert [ds.pair(k) for k in range(len(ds))] == flat  # cn_clip's record order
    with pytest.raises(IndexError):
        ds.pair(len(ds))


def test_known_positives(data):
    ds = LMDBDataset(data / "lmdb" / "train", resolution=32)
    texts = list(formats.iter_texts_jsonl(data / "train_texts.jsonl"))
    for t in texts[:50]:
        assert ds.gold_image_ids(t["text_id"]) == frozenset(t["image_ids"])
    assert ds.gold_image_ids(-1) == frozenset()
    multi = next(t for t in texts if len(t["image_ids"]) >= 2)
    k = next(i for i in range(len(ds)) if ds.pair(i)[1] == multi["text_id"])
    image_ids, text_ids = ds.ids([k, k + 1, 0])
    assert image_ids.tolist()[:2] == multi["image_ids"][:2] and text_ids.tolist()[:2] == [multi["text_id"]] * 2
    mask = ds.positive_mask(image_ids, text_ids)  # (3, 3)
    assert mask.dtype == torch.bool and mask.shape == (3, 3)
    assert mask[0, 1] and mask[1, 0] and mask.diagonal().all()  # same caption, two gold images


def test_preprocess_text_like_cn_clip():
    from cn_clip.training.data import _preprocess_text

    for s in ["ABC“引号”", "Ｆｕｌｌ宽", "普通"]:
        assert preprocess_text(s) == _preprocess_text(s)


def test_dataloader_workers_after_parent_read(data):
    """The parent reads first (opening LMDB), then forked workers read: each must use its own handle."""
    ds = LMDBDataset(data / "lmdb" / "train", resolution=16)
    serial = torch.stack([ds[i][0] for i in range(24)])
    ctx = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None
    dl = DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context=ctx)
    batches = []
    for i, (img, tok) in enumerate(dl):
        batches.append(img)
        if i == 2:
            break
    torch.testing.assert_close(torch.cat(batches), serial, rtol=0, atol=0)


def test_spawned_workers_after_parent_read(data):
    """spawn / forkserver (Python 3.14's Linux default) pickle the dataset into each worker: after the parent
    has read (its handles are open), the pickled copy must still carry none and open its own in the worker."""
    ds = LMDBDataset(data / "lmdb" / "valid", resolution=16)
    serial = torch.stack([ds[i][0] for i in range(6)])  # the parent reads first
    dl = DataLoader(torch.utils.data.Subset(ds, range(6)), batch_size=3, num_workers=1,
                    multiprocessing_context="spawn")
    torch.testing.assert_close(torch.cat([img for img, _ in dl]), serial, rtol=0, atol=0)


def test_pickles_without_environments(data):
    ds = LMDBDataset(data / "lmdb" / "valid", resolution=16)
    ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < 4000 and b"Environment" not in blob
    clone = pickle.loads(blob)
    torch.testing.assert_close(clone[1][0], ds[1][0])
    two = LMDBDataset(data / "lmdb" / "valid", resolution=16)  # a second dataset on the same files
    assert torch.equal(two[2][1], ds[2][1])


def _tamper(path, key: bytes, value: bytes):
    close_shared_envs(path.parent)
    env = lmdb.open(str(path), map_size=64 << 20)
    with env.begin(write=True) as txn:
        txn.put(key, value)
    env.close()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cnclip_pwned",))


def test_restricted_unpickler_and_corrupt_records(tmp_path):
    d = toy.generate(tmp_path / "toy", toy.ToyConfig(seed=1, n_train=20, n_valid=10, n_test=10,
                                                      zeroshot_per_class=1, workers=1))
    build_lmdb(d, "train", progress=False, verbose=False)
    root = d / "lmdb" / "train"
    ds = LMDBDataset(root, resolution=16)
    iid0 = ds.pair(0)[0]
    _tamper(root / "pairs", b"1", pickle.dumps(_Evil()))
    _tamper(root / "pairs", b"2", pickle.dumps([1, 2, "list, not tuple"]))
    _tamper(root / "imgs", str(iid0).encode(), base64.b64encode(b"GIF89a truncated"))
    ds = LMDBDataset(root, resolution=16)
    with pytest.raises(ValueError, match=r"pairs:1.*refusing to load posix.system"):
        ds[1]
    assert not os.path.exists("/tmp/cnclip_pwned")
    with pytest.raises(ValueError, match=r"pairs:2.*expected \(int image_id"):
        ds[2]
    with pytest.raises(ValueError, match=rf"image '{iid0}' is corrupt"):
        ds[0]
    _tamper(root / "pairs", b"3", pickle.dumps((987654, 1, "x"), protocol=4))
    with pytest.raises(KeyError, match="image '987654' is missing"):
        LMDBDataset(root, resolution=16)[3]
    close_shared_envs(root)


def test_rebuilt_lmdb_is_reopened(tmp_path):
    small = toy.ToyConfig(seed=2, n_train=20, n_valid=10, n_test=10, zeroshot_per_class=1, workers=1)
    d = toy.generate(tmp_path / "toy", small)
    build_lmdb(d, "valid", progress=False, verbose=False)
    first = LMDBDataset(d / "lmdb" / "valid", resolution=16).pair(0)
    lines = (d / "valid_texts.jsonl").read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[0])
    obj["text"] = "改过的文字"
    (d / "valid_texts.jsonl").write_text("\n".join([json.dumps(obj, ensure_ascii=False)] + lines[1:]) + "\n",
                                        encoding="utf-8")
    build_lmdb(d, "valid", overwrite=True, progress=False, verbose=False)
    assert LMDBDataset(d / "lmdb" / "valid", resolution=16).pair(0) == (first[0], first[1], "改过的文字")


def test_augmentation_keeps_colour_and_varies_geometry(data):
    ds_aug = LMDBDataset(data / "lmdb" / "train", resolution=32, use_augment=True)
    ds = LMDBDataset(data / "lmdb" / "train", resolution=32)
    torch.manual_seed(0)
    views = torch.stack([ds_aug[0][0] for _ in range(6)])  # (6, 3, 32, 32)
    assert views.shape == (6, 3, 32, 32)
    assert not torch.allclose(views[0], views[1])          # random crops differ
    base = ds[0][0]
    # no colour operations: the per-channel mean moves little, unlike a colour jitter would
    assert (views.mean(dim=(2, 3)) - base.mean(dim=(1, 2))).abs().max() < 0.25
    t = augment.train_transform(32, augment.AugmentConfig(hflip=1.0, degrees=10, color_jitter=0.4))
    assert t(ds.load_image(ds.pair(0)[0])).shape == (3, 32, 32)


def test_read_cache_gives_the_same_tensors(data, monkeypatch):
    """Decoded images and token rows are kept after the first read: the same tensors as without the
    cache, bit for bit, and a caller that changes a returned tensor in place does not change the cache."""
    root = data / "lmdb" / "train"
    monkeypatch.setenv("CNCLIP_DATA_CACHE_MB", "0")
    plain = LMDBDataset(root, resolution=32, context_length=40)
    monkeypatch.delenv("CNCLIP_DATA_CACHE_MB")
    cached = LMDBDataset(root, resolution=32, context_length=40)
    order = list(range(len(plain))) + list(range(len(plain)))[::-1]  # every record twice: misses, then hits
    for i in order:
        (img_a, tok_a), (img_b, tok_b) = plain[i], cached[i]
        assert torch.equal(img_a, img_b) and torch.equal(tok_a, tok_b)
    assert plain._cache.used == 0 < cached._cache.used
    img, tok = cached[0]
    img.zero_()
    tok.zero_()
    assert torch.equal(cached[0][0], plain[0][0]) and torch.equal(cached[0][1], plain[0][1])
    monkeypatch.setenv("CNCLIP_DATA_CACHE_MB", "0.001")  # a budget smaller than one image: nothing kept
    tiny = LMDBDataset(root, resolution=32, context_length=40)
    assert torch.equal(tiny[5][0], plain[5][0]) and tiny._cache.used < 1100


def test_positive_mask_is_membership_in_the_records(data):
    ds = LMDBDataset(data / "lmdb" / "train", resolution=32)
    pairs = {ds.pair(k)[:2] for k in range(len(ds))}
    images = sorted({p[0] for p in pairs})[:20] + [10**12, -3]   # + ids that are no image of the split
    texts = sorted({p[1] for p in pairs})[:25] + [2**62]
    mask = ds.positive_mask(images, texts)
    assert mask.shape == (22, 26) and mask.any()
    assert mask.tolist() == [[(i, t) in pairs for t in texts] for i in images]
    image_ids, text_ids = ds.ids([4, 0, 4])
    assert [(i, t) for i, t in zip(image_ids.tolist(), text_ids.tolist())] == [ds.pair(k)[:2] for k in (4, 0, 4)]
    with pytest.raises(IndexError):
        ds.ids([0, len(ds)])


def test_known_positive_mask_one_process(data):
    from torch.utils.data import default_collate

    from cnclip_edu.train.data import WithIndex, known_positive_mask

    ds = LMDBDataset(data / "lmdb" / "train", resolution=32)
    rows = [WithIndex(ds)[i] for i in range(48)]
    mask = known_positive_mask([default_collate(rows[:24]), default_collate(rows[24:])], ds)  # 2 micro-batches
    pairs = {ds.pair(k)[:2] for k in range(len(ds))}
    recs = [ds.pair(i) for i in range(48)]
    expect = [[torch.equal(rows[i][1], rows[j][1]) or (recs[i][0], recs[j][1]) in pairs for j in range(48)]
              for i in range(48)]
    assert mask.tolist() == expect
