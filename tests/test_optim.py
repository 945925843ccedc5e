"""Parameter groups, AdamW construction and the cosine schedule (oracle: cn_clip's scheduler)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnclip_edu.train.optim import CosineSchedule, build_optimizer, no_decay, param_groups
from cnclip_edu.train.sampler import ResumableDistributedSampler


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)  # BERT's spelling, which cn_clip's name rule misses
        self.class_embedding = nn.Parameter(torch.zeros(4))
        self.text_projection = nn.Parameter(torch.zeros(4, 4))
        self.logit_scale = nn.Parameter(torch.tensor(2.0))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_param_groups_no_decay_on_gains_biases_and_logit_scale():
    m = Tiny()
    skip, decay = param_groups(m, 0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    assert skip["weight_decay"] == 0.0 and decay["weight_decay"] == 0.1
    assert sorted(names[id(p)] for p in skip["params"]) == sorted(
        ["proj.bias", "LayerNorm.weight", "LayerNorm.bias", "class_embedding", "logit_scale"])
    assert sorted(names[id(p)] for p in decay["params"]) == ["emb.weight", "proj.weight", "text_projection"]
    assert no_decay("logit_scale", torch.zeros(())) and no_decay("x.LayerNorm.weight", torch.zeros(3))


def test_param_groups_cover_course_model_once():
    from cnclip_edu.model import create_model

    m = create_model("course")
    groups = param_groups(m, 0.2)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(m.parameters()))
    skip_names = {n for n, p in m.named_parameters() if any(p is q for q in groups[0]["params"])}
    assert "logit_scale" in skip_names
    assert all(("LayerNorm" in n or "ln_" in n or "bias" in n or n in ("logit_scale", "visual.class_embedding"))
               for n in skip_names), skip_names


def test_build_optimizer_is_adamw_with_two_groups():
    opt = build_optimizer(Tiny(), lr=1e-3, weight_decay=0.05, betas=(0.9, 0.98), eps=1e-6)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.05]
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults.get("fused")  # fused on CPU too
    plain = build_optimizer(Tiny(), lr=1e-3, weight_decay=0.05, fused=False)
    assert not plain.defaults.get("fused")


def test_fused_adamw_matches_the_reference_update():
    torch.manual_seed(0)
    a, b = Tiny(), Tiny()
    b.load_state_dict(a.state_dict())
    oa, ob = build_optimizer(a, 1e-2, 0.1), build_optimizer(b, 1e-2, 0.1, fused=False)
    for step in range(3):
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad()
            g = torch.Generator().manual_seed(step)
            sum((p * torch.randn(p.shape, generator=g)).sum() + p.square().sum()
                for p in m.parameters() if p.requires_grad).backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_cosine_schedule_matches_cn_clip():
    from cn_clip.training.scheduler import cosine_lr

    params = [nn.Parameter(torch.zeros(1))]
    ours_opt, ref_opt = torch.optim.SGD(params, lr=0), torch.optim.SGD(params, lr=0)
    ref = cosine_lr(ref_opt, 5e-4, 10, 100)
    ours = CosineSchedule(5e-4, 10, 100)
    for step in range(100):
        assert ours(ours_opt, step) == pytest.approx(ref(step), rel=1e-12, abs=1e-15)
    assert ours.lr_at(0) == pytest.approx(5e-5) and ours.lr_at(9) == pytest.approx(5e-4)
    assert ours.lr_at(100) == 0.0 and ours.lr_at(500) == 0.0  # clamped past the end (cn_clip rises again)
    assert CosineSchedule.from_state_dict(ours.state_dict()) == ours


def test_cosine_schedule_without_warmup_and_monotone_decay():
    s = CosineSchedule(1.0, 0, 50)
    lrs = [s.lr_at(i) for i in range(51)]
    assert lrs[0] == 1.0 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[25] == pytest.approx(0.5) and math.isclose(lrs[50], 0.0, abs_tol=1e-12)


# ----------------------------------------------------------------------------- sampler
def test_sampler_pads_shards_and_is_deterministic():
    n, bs, world = 23, 4, 2
    samplers = [ResumableDistributedSampler(n, bs, r, world, seed=7) for r in range(world)]
    for s in samplers:
        s.set_epoch(3)
    idx = [list(s) for s in samplers]
    assert samplers[0].num_batches == 3 and all(len(i) == 12 for i in idx)
    assert set(idx[0]) | set(idx[1]) == set(range(n))  # every sample seen (padding wraps around)
    again = ResumableDistributedSampler(n, bs, 1, world, seed=7)
    again.set_epoch(3)
    assert list(again) == idx[1]
    again.set_epoch(4)
    assert list(again) != idx[1]


def test_sampler_start_batch_skips_consumed_batches():
    s = ResumableDistributedSampler(40, 5, 0, 1, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start_batch=3)
    assert list(s) == full[15:] and len(s) == 25
    with pytest.raises(ValueError, match="start_batch"):
        s.set_epoch(2, start_batch=9)


@pytest.mark.parametrize("kwargs, msg", [({"dataset_len": 0}, "empty"), ({"rank": 2, "world_size": 2}, "rank 2")])
def test_sampler_bad_input(kwargs, msg):
    args = {"dataset_len": 10, "batch_size": 2, "rank": 0, "world_size": 1, **kwargs}
    with pytest.raises(ValueError, match=msg):
        ResumableDistributedSampler(**args)
