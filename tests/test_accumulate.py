"""Gradient accumulation with the feature cache equals one big batch (loss, accuracy, every parameter
gradient, logit_scale included), also with dropout (RNG replay) and known positives."""
from __future__ import annotations

import contextlib

import pytest
import torch
from test_loss_stand_in import TinyClip, make_batch

from cnclip_edu.train.accumulate import accumulated_step
from cnclip_edu.loss import ClipLoss, positive_mask_from_tokens


def _big_batch(model, images, tokens, mask=None, **kw):
    model.zero_grad()
    loss, metrics = ClipLoss()(*model(images, tokens, **kw), positive_mask=mask, return_metrics=True)
    loss.backward()
    return loss.item(), {k: v.item() for k, v in metrics.items()}, {n: p.grad.clone() for n, p in model.named_parameters()}


def _accumulated(model, images, tokens, k, mask=None, **kw):
    model.zero_grad()
    micro = list(zip(images.chunk(k), tokens.chunk(k)))
    loss, metrics = accumulated_step(model, micro, ClipLoss(), positive_mask=mask, **kw)
    return loss, metrics, {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_same(a, b):
    assert a[0] == pytest.approx(b[0], rel=1e-6)
    assert a[1] == pytest.approx(b[1])
    for name in a[2]:
        torch.testing.assert_close(a[2][name], b[2][name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("use_mask", [False, True])
def test_equals_one_big_batch(k, use_mask):
    images, tokens = make_batch(12, seed=2, duplicate_pairs=((0, 7), (3, 4)))
    mask = positive_mask_from_tokens(tokens) if use_mask else None
    if use_mask:
        mask[1, 9] = True  # a gold match with a different caption, so the mask changes gradients
    model = TinyClip(seed=1)
    _assert_same(_accumulated(model, images, tokens, k, mask), _big_batch(model, images, tokens, mask))


def test_logit_scale_counted_once():
    """cn_clip / open_clip backprop every pass's loss through logit_scale: K times its gradient."""
    images, tokens = make_batch(8, seed=3)
    model = TinyClip()
    ref = _big_batch(model, images, tokens)[2]["logit_scale"]
    got = _accumulated(model, images, tokens, 4)[2]["logit_scale"]
    torch.testing.assert_close(got, ref)
    assert ref.abs() > 1e-3  # not trivially zero


def test_dropout_replays_the_same_masks():
    """With dropout, the grad pass must see the features the cache holds: equal to a big batch whose
    micro-batches were encoded one after the other from the same RNG state; RNG ends where it would."""
    images, tokens = make_batch(8, seed=4)
    model = TinyClip(dropout=0.3, seed=2).train()

    torch.manual_seed(123)
    model.zero_grad()
    parts = [model(i, t) for i, t in zip(images.chunk(2), tokens.chunk(2))]
    img_f, txt_f = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    loss = ClipLoss()(img_f, txt_f, parts[0][2])
    loss.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    ref_rng = torch.get_rng_state()

    torch.manual_seed(123)
    got_loss, _, got = _accumulated(model, images, tokens, 2)
    assert got_loss == pytest.approx(loss.item(), rel=1e-6)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], rtol=1e-5, atol=1e-6, msg=name)
    assert torch.equal(torch.get_rng_state(), ref_rng)


def test_hooks_backward_autocast_model_kwargs_and_no_sync():
    images, tokens = make_batch(6, seed=5)
    calls = {"backward": 0, "autocast": 0, "no_sync": 0}

    class Wrapped(TinyClip):  # stands in for DDP: no_sync() must cover all but the last backward
        @contextlib.contextmanager
        def no_sync(self):
            calls["no_sync"] += 1
            yield

    @contextlib.contextmanager
    def autocast():
        calls["autocast"] += 1
        yield

    def backward(loss):
        calls["backward"] += 1
        (loss * 2).backward()  # e.g. a GradScaler's scale

    model = Wrapped()
    micro = list(zip(images.chunk(3), tokens.chunk(3)))
    accumulated_step(model, micro, ClipLoss(), backward=backward, autocast=autocast,
                     model_kwargs={"scale_text": 3.0})
    assert calls == {"backward": 3, "autocast": 4, "no_sync": 2}  # 1 cached pass + 3 grad passes
    plain = TinyClip()
    ref = _big_batch(plain, images, tokens, scale_text=3.0)[2]
    for (name, p) in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * ref[name], rtol=1e-5, atol=1e-6, msg=name)


def test_gradients_add_to_existing_grad():
    images, tokens = make_batch(4, seed=6)
    model = TinyClip()
    micro = list(zip(images.chunk(2), tokens.chunk(2)))
    accumulated_step(model, micro, ClipLoss())
    once = model.visual.weight.grad.clone()
    accumulated_step(model, micro, ClipLoss())
    torch.testing.assert_close(model.visual.weight.grad, 2 * once)


def test_bad_micro_batches():
    images, tokens = make_batch(5)
    with pytest.raises(ValueError, match="at least one micro-batch"):
        accumulated_step(TinyClip(), [], ClipLoss())
    with pytest.raises(ValueError, match=r"same size, got \[3, 2\]"):
        accumulated_step(TinyClip(), [(images[:3], tokens[:3]), (images[3:], tokens[3:])], ClipLoss())
