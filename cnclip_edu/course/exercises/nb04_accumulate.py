"""Exercise 04.2 of notebook 04: gradient accumulation with a feature cache (the two-pass step that
gives K micro-batches the gradients of one large contrastive batch).

Compared with the library's `accumulated_step` on a CLIP-shaped model small enough to differentiate in
milliseconds (`_TinyClip`): the returned loss and every parameter's gradient, for several K and B, a
single micro-batch, and a model whose .grad still holds the previous step's. The model also records
whether a forward that builds a graph ever covered more than one micro-batch, since the cache's point is
memory: the mutants that get the gradients right by keeping every activation at once fail on that.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnclip_edu.loss import ClipLoss

from .core import Case, Exercise, register
from .tripwire import guarded


# ----------------------------------------------------------------------------- 04.2 accumulation with a feature cache
class _TinyClip(torch.nn.Module):
    """A CLIP-shaped model small enough to differentiate in milliseconds: linear image tower, mean-of-
    embeddings text tower, learnable log temperature. forward -> (normalised img, normalised txt, exp'd scale)."""

    def __init__(self, seed: int, img_dim: int = 12, vocab: int = 50, dim: int = 8):
        super().__init__()
        torch.manual_seed(seed)
        self.visual = torch.nn.Linear(img_dim, dim)
        self.embed = torch.nn.Embedding(vocab, dim)
        self.text_proj = torch.nn.Linear(dim, dim)
        self.logit_scale = torch.nn.Parameter(torch.tensor(2.3))
        # The feature cache's point is memory: never more than one micro-batch's activations kept for backward.
        # With micro_rows set, forward notes whether a forward that builds a graph covered more rows than one
        # micro-batch, or started while an earlier one had not been through backward yet.
        self.micro_rows: int | None = None
        self._pending = 0
        self.one_at_a_time = True
        self.logit_scale.register_hook(self._backward_seen)   # every backward of the loss reaches logit_scale

    def _backward_seen(self, grad):
        self._pending = 0
        return grad

    def forward(self, images, tokens):
        if self.micro_rows is not None and torch.is_grad_enabled():
            if self._pending or images.shape[0] > self.micro_rows:
                self.one_at_a_time = False
            self._pending += 1
        img = F.normalize(self.visual(images), dim=-1)                          # (B, D)
        txt = F.normalize(self.text_proj(self.embed(tokens).mean(1)), dim=-1)   # (B, L, D) -> (B, D)
        return img, txt, self.logit_scale.exp()


def feature_cache_step(model, micro_batches, loss_fn) -> float:
    """The library's two-pass step, with the gradients zeroed first: after it, every .grad holds the
    gradient of the loss of the concatenated batch; returns that loss."""
    from cnclip_edu.train.accumulate import accumulated_step

    model.zero_grad()
    return accumulated_step(model, micro_batches, loss_fn)[0]


BUILDS_04_2 = ("cnclip_edu.train.accumulate.accumulated_step",)


def _run_accum(f, k: int, b: int, seed: int, stale_grads: bool = False) -> dict:
    """f on K micro-batches of B pairs -> its return value and every parameter's .grad."""
    model = _TinyClip(seed)
    g = torch.Generator().manual_seed(seed + 1)
    micro = [(torch.randn(b, 12, generator=g), torch.randint(0, 50, (b, 5), generator=g)) for _ in range(k)]
    model.micro_rows = b
    if stale_grads:  # what the previous optimizer step left behind
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.25)
    loss = guarded(f, feature_cache_step, BUILDS_04_2)(model, micro, ClipLoss())
    if isinstance(loss, torch.Tensor) and loss.numel() == 1:
        loss = loss.item()
    out = {"返回的损失": loss, "带梯度的前向一次只有一个微批次": model.one_at_a_time}
    for name, p in model.named_parameters():
        out[f"{name} 的梯度"] = p.grad.detach().clone() if p.grad is not None else None
    return out


def _cases_04_2():
    return [
        Case("K = 4 个微批次，每个 B = 3", lambda f: _run_accum(f, 4, 3, seed=0)),
        Case("K = 2 个微批次，每个 B = 5", lambda f: _run_accum(f, 2, 5, seed=1)),
        Case("K = 1（只有一个微批次：就是普通的一步）", lambda f: _run_accum(f, 1, 4, seed=2)),
        Case("K = 3，模型的 .grad 里还留着上一步的梯度", lambda f: _run_accum(f, 3, 2, seed=3, stale_grads=True)),
    ]


def _hidden_04_2(seed: int):
    import random

    rng = random.Random(seed)
    return [Case("随机的 K 和 B", lambda f, k=rng.randint(2, 5), b=rng.randint(2, 4), s=rng.randrange(10**6):
                 _run_accum(f, k, b, seed=s)),
            Case("K = 1", lambda f, b=rng.randint(2, 6), s=rng.randrange(10**6): _run_accum(f, 1, b, seed=s)),
            Case(".grad 里留着上一步的梯度", lambda f, k=rng.randint(2, 4), s=rng.randrange(10**6):
                 _run_accum(f, k, 3, seed=s, stale_grads=True))]


def _mutants_04_2():
    def splice(cache, fresh, j, at=None):
        at = j if at is None else at
        rest = cache[:at] + cache[at + 1:]
        return torch.cat(rest[:at] + [fresh] + rest[at:])

    def two_pass(zero=True, no_grad=True, scale_s=True, divide_loss=False, slot_zero=False, append=False,
                 detach_cache=False):
        def step(model, micro, loss_fn):
            if zero:
                model.zero_grad()
            k = len(micro)
            ctx = torch.no_grad() if no_grad else torch.enable_grad()
            with ctx:
                cache = [model(x, t)[:2] for x, t in micro]
            if detach_cache:   # right values and gradients, but pass 1 built K graphs (only to throw them away)
                cache = [(i.detach(), t.detach()) for i, t in cache]
            ci, ct = [c[0] for c in cache], [c[1] for c in cache]
            for j, (x, t) in enumerate(micro):
                img, txt, s = model(x, t)
                if append:   # the fresh features next to the whole cache, not in place of their own slot
                    all_i, all_t = torch.cat(ci + [img]), torch.cat(ct + [txt])
                else:
                    at = 0 if slot_zero else j
                    all_i, all_t = splice(ci, img, j, at), splice(ct, txt, j, at)
                if scale_s:
                    s = s.detach() + (s - s.detach()) / k
                loss = loss_fn(all_i, all_t, s)
                (loss / k if divide_loss else loss).backward(retain_graph=not no_grad)
            return loss.item()
        return step

    def mean_of_micro_losses(model, micro, loss_fn):
        model.zero_grad()
        total = 0.0
        for x, t in micro:
            loss = loss_fn(*model(x, t)) / len(micro)
            loss.backward()
            total += loss.item()
        return total

    def one_graph(model, micro, loss_fn):   # the right gradients, but all K micro-batches' activations alive at once
        model.zero_grad()
        feats = [model(x, t) for x, t in micro]
        loss = loss_fn(torch.cat([f[0] for f in feats]), torch.cat([f[1] for f in feats]), feats[0][2])
        loss.backward()
        return loss.item()

    def concatenated(model, micro, loss_fn):   # the big batch in one forward: no accumulation at all
        model.zero_grad()
        loss = loss_fn(*model(torch.cat([x for x, _ in micro]), torch.cat([t for _, t in micro])))
        loss.backward()
        return loss.item()

    return {"每个微批次各算一个损失再取平均（朴素累积）": mean_of_micro_losses,
            "K 个微批次都带梯度前向、最后一起反传一次（梯度对，但所有激活同时留在内存里）": one_graph,
            "把 K 个微批次拼成一个大批次、只前向一次（根本没有累积）": concatenated,
            "缓存的特征没有 detach（第一遍没有 no_grad）：梯度重复计了 K 次": two_pass(no_grad=False),
            "第一遍没有 no_grad、事后才 detach（梯度对，但第一遍白白为 K 个微批次建了计算图）":
                two_pass(no_grad=False, detach_cache=True),
            "开始时没有把梯度清零（上一步的梯度混了进来）": two_pass(zero=False),
            "logit_scale 的梯度没有除以 K（每一遍都给了它完整的梯度）": two_pass(scale_s=False),
            "像普通累积那样把每一遍的损失除以 K": two_pass(divide_loss=True, scale_s=False),
            "新算的特征总放在第 0 片（没有放回第 j 片）": two_pass(slot_zero=True),
            "新算的特征接在整个缓存后面（没有替换第 j 片）": two_pass(append=True)}


register(Exercise(
    id="04.2", title="带特征缓存的梯度累积 (feature cache)", points=3,
    hint="两遍：第一遍不求导，只为每个微批次留下特征；第二遍每次只让一个微批次带梯度，把它的新特征放回它在大批次里"
         "原来的位置，其余用缓存，在整个大批次上算损失、反传。想一想 K 遍反传加起来时，哪个量被每一遍都完整地求导了一次"
         "（它应当只算一次），以及开始之前 .grad 里可能还有什么。",
    reference=feature_cache_step, cases=_cases_04_2, mutants=_mutants_04_2, hidden=_hidden_04_2,
    builds=BUILDS_04_2))
