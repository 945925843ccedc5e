"""ClipLoss in one process: parity with open_clip's ClipLoss (the oracle), the InfoNCE formula written
out by hand, known positives (positive_mask) and its helpers, accuracy, bad inputs; and the
cross-rank gather simulated in-process (the real 2-rank run is tests/test_distributed_loss.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_loss_stand_in import TinyClip, load_open_clip_loss, make_batch

from cnclip_edu.loss import (ClipLoss, clip_accuracy, contrastive_loss, positive_mask_from_ids,
                             positive_mask_from_matches, positive_mask_from_tokens, replace_local_chunk,
                             scale_grad)


def _features(n: int, d: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_()
    txt = F.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_()
    scale = torch.tensor(math.log(1 / 0.07)).exp().requires_grad_()
    return img, txt, scale


def _grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


# ----------------------------------------------------------------------------- parity
@pytest.mark.parametrize("local_loss", [False, True])
def test_equals_open_clip_value_and_gradients(local_loss):
    oc = load_open_clip_loss()
    img, txt, scale = _features(32)
    ours = ClipLoss(local_loss=local_loss)(img, txt, scale)
    ref = oc.ClipLoss(local_loss=local_loss)(img, txt, scale)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    for g_ours, g_ref in zip(_grads(ours, img, txt, scale), _grads(ref, img, txt, scale)):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=1e-7)


def test_equals_infonce_written_by_hand():
    img, txt, scale = _features(8)
    logits = scale * img @ txt.T  # (B, B)
    i2t = -(logits.diag() - logits.logsumexp(dim=1)).mean()
    t2i = -(logits.diag() - logits.logsumexp(dim=0)).mean()
    torch.testing.assert_close(ClipLoss()(img, txt, scale), (i2t + t2i) / 2)


def test_perfect_alignment_large_scale_gives_near_zero_loss_and_full_accuracy():
    img, _, _ = _features(6)
    loss, metrics = ClipLoss()(img, img, 100.0, return_metrics=True)
    assert loss.item() < 1e-3
    assert metrics["i2t_acc"].item() == metrics["t2i_acc"].item() == 1.0


def test_logit_scale_forms_float_and_per_replica_vector():
    img, txt, scale = _features(5)
    ref = ClipLoss()(img, txt, scale)
    torch.testing.assert_close(ClipLoss()(img, txt, scale.item()), ref)
    torch.testing.assert_close(ClipLoss()(img, txt, scale.detach().repeat(3)), ref)  # nn.DataParallel


def test_batch_of_one_is_zero_loss():
    img, txt, scale = _features(1)
    assert ClipLoss()(img, txt, scale).item() == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------- known positives
def test_diagonal_mask_equals_hard_labels():
    img, txt, scale = _features(7)
    eye = torch.eye(7, dtype=torch.bool)
    torch.testing.assert_close(ClipLoss()(img, txt, scale, positive_mask=eye), ClipLoss()(img, txt, scale))
    # the diagonal is always a positive, even when the caller's mask forgets it
    torch.testing.assert_close(ClipLoss()(img, txt, scale, positive_mask=torch.zeros(7, 7, dtype=torch.bool)),
                               ClipLoss()(img, txt, scale))


def test_soft_targets_formula():
    img, txt, scale = _features(6)
    mask = positive_mask_from_ids(["猫", "狗", "猫", "鸟", "狗", "猫"])
    logits = scale * img @ txt.T
    t_i2t = mask.float() / mask.float().sum(1, keepdim=True)
    t_t2i = mask.T.float() / mask.T.float().sum(1, keepdim=True)
    kl = lambda t, lg: (t * (t.clamp_min(1e-30).log() - lg.log_softmax(1))).sum(1).mean()  # noqa: E731
    expected = (kl(t_i2t, logits) + kl(t_t2i, logits.T)) / 2
    torch.testing.assert_close(ClipLoss()(img, txt, scale, positive_mask=mask), expected)


def test_false_negatives_hold_the_loss_up_and_the_mask_removes_that():
    """Two pairs share a caption, so their text features are identical: without the mask the model
    cannot tell which image owns which copy, and the loss stays >= log 2 per duplicated row."""
    img, _, _ = _features(4)
    txt = img.detach().clone()
    txt[1] = txt[0]  # pair 1's caption is pair 0's caption
    img_dup = img.detach().clone()
    img_dup[1] = img_dup[0]  # and its image looks the same too: a perfect model
    mask = positive_mask_from_ids(["一只猫", "一只猫", "一只狗", "一辆车"])
    plain = ClipLoss()(img_dup, txt, 100.0)
    masked = ClipLoss()(img_dup, txt, 100.0, positive_mask=mask)
    # rows 0 and 1 each lose log 2 (two equally good answers) in both directions: mean = 2 log 2 / 4
    assert plain.item() == pytest.approx(math.log(2) / 2, rel=1e-3)
    assert masked.item() < 1e-3  # KL form: a perfect model scores 0
    acc = ClipLoss()(img_dup, txt, 100.0, positive_mask=mask, return_metrics=True)[1]
    assert acc["i2t_acc"].item() == acc["t2i_acc"].item() == 1.0


def test_identical_captions_mask_shifts_the_loss_by_a_constant():
    """A deterministic text tower gives identical captions identical features, so the columns (and
    t2i rows) of duplicates are equal as functions of the weights: spreading the target over them
    changes nothing but the loss floor. The training signal only changes when the positives differ
    (gold matches with different captions; dropout)."""
    images, tokens = make_batch(8, seed=1, duplicate_pairs=((0, 5), (2, 3)))
    mask = positive_mask_from_tokens(tokens)
    runs = []
    for m in (None, mask):
        model = TinyClip(seed=3)
        loss = ClipLoss()(*model(images, tokens), positive_mask=m)
        loss.backward()
        runs.append((loss.item(), [p.grad for p in model.parameters()]))
    # 4 of 8 rows have 2 positives, in both directions: the floor is mean(log k) = log(2) / 2
    assert runs[0][0] - runs[1][0] == pytest.approx(math.log(2) / 2, rel=1e-4)
    for g_plain, g_mask in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(g_plain, g_mask)


def test_mask_helpers():
    ids = positive_mask_from_ids(torch.tensor([7, 3, 7, 9]))
    assert ids.dtype == torch.bool and ids.shape == (4, 4)
    assert ids[0, 2] and ids[2, 0] and not ids[0, 1] and ids.diagonal().all()
    tokens = torch.tensor([[101, 5, 6, 102], [101, 5, 7, 102], [101, 5, 6, 102]])
    assert positive_mask_from_tokens(tokens).tolist() == [[True, False, True], [False, True, False],
                                                        [True, False, True]]
    assert torch.equal(positive_mask_from_ids(["a", "b", "a"]), positive_mask_from_tokens(tokens))
    # text j matches every image in its gold list: image i is a positive of text j
    m = positive_mask_from_matches([10, 11, 12], [[10, 12], [11], [12, 99]])
    assert m.tolist() == [[True, False, False], [False, True, False], [True, False, True]]
    assert torch.equal(positive_mask_from_matches(torch.tensor([1, 2]), [torch.tensor([5]), []]),
                       torch.eye(2, dtype=torch.bool))  # own image always counts
    # the same image twice in a batch (two captions of one image): each caption matches both rows
    same = positive_mask_from_matches([7, 8, 7], [[7], [8], [7]])
    assert same.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


def test_mask_helpers_bad_input():
    with pytest.raises(ValueError, match="shape"):
        positive_mask_from_ids(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="3 image ids but 2 match lists"):
        positive_mask_from_matches([1, 2, 3], [[1], [2]])


def test_clip_accuracy_with_labels_and_masks():
    logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 5.0, 1.0], [9.0, 0.0, 1.0]])  # rows pick 1, 1, 0
    acc = clip_accuracy(logits, logits.T)  # columns pick 2, 0, 0 -> t2i hits: row 1? no; -> 0/3
    assert acc["i2t_acc"].item() == pytest.approx(1 / 3)
    assert acc["t2i_acc"].item() == pytest.approx(0.0)
    mask = positive_mask_from_ids(["x", "y", "x"])
    acc = clip_accuracy(logits, logits.T, positive_mask=mask)
    assert acc["i2t_acc"].item() == pytest.approx(2 / 3)  # row 2 picks col 0, same caption: a hit
    assert acc["t2i_acc"].item() == pytest.approx(2 / 3)  # col 0 picks image 2: a hit; col 2 picks 0: hit


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_are_named():
    img, txt, scale = _features(4)
    with pytest.raises(ValueError, match=r"\(4, 16\).*\(3, 16\)"):
        ClipLoss()(img, txt[:3], scale)
    with pytest.raises(ValueError, match="empty batch"):
        ClipLoss()(img[:0], txt[:0], scale)
    with pytest.raises(ValueError, match=r"\(4, 4\).*got \(3, 3\)"):
        ClipLoss()(img, txt, scale, positive_mask=torch.eye(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        ClipLoss()(img, txt, scale, positive_mask=torch.eye(4))
    with pytest.raises(ValueError, match="gather_with_grad"):
        ClipLoss(local_loss=True, rank=0, world_size=2)
    with pytest.raises(ValueError, match="rank=2"):
        ClipLoss(rank=2, world_size=2)


# ----------------------------------------------------------------------------- the gather, simulated
def test_simulated_two_ranks_default_mode_equals_one_process():
    """What each rank of the default mode computes, done here for both ranks in one process: the
    full loss with the other rank's features as constants and the local slice (grad x W) in place.
    Averaging the ranks' gradients (what DDP does) gives the single-process gradient."""
    world, (img, txt, scale) = 2, _features(8)
    ref = _grads(ClipLoss()(img, txt, scale), img, txt)
    img_grad, txt_grad = torch.zeros_like(img), torch.zeros_like(txt)
    for rank, (img_r, txt_r) in enumerate(zip(img.chunk(world), txt.chunk(world))):
        all_img = replace_local_chunk(img.detach(), img_r, rank, world, grad_scale=world)
        all_txt = replace_local_chunk(txt.detach(), txt_r, rank, world, grad_scale=world)
        loss_r = contrastive_loss(scale * all_img @ all_txt.T, scale * all_txt @ all_img.T)
        g_img, g_txt = _grads(loss_r, img, txt)
        img_grad += g_img / world  # DDP's average over ranks
        txt_grad += g_txt / world
    torch.testing.assert_close(img_grad, ref[0])
    torch.testing.assert_close(txt_grad, ref[1])


def test_replace_local_chunk_rejects_uneven_batches():
    with pytest.raises(ValueError, match="same batch size"):
        replace_local_chunk(torch.zeros(8, 4), torch.zeros(3, 4), rank=1, world_size=2)


def test_scale_grad():
    x = torch.ones(3, requires_grad=True)
    y = scale_grad(x, 4.0)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 4.0))
    assert scale_grad(x, 1) is x


def test_low_precision_features_with_mask():
    """AMP gives half-precision features: the soft targets follow the logits' dtype."""
    img, txt, scale = _features(6)
    mask = positive_mask_from_ids([1, 2, 1, 3, 4, 5])
    ref = ClipLoss()(img, txt, scale, positive_mask=mask)
    low = ClipLoss()(img.bfloat16(), txt.bfloat16(), scale.bfloat16(), positive_mask=mask)
    assert low.item() == pytest.approx(ref.item(), rel=2e-2)
