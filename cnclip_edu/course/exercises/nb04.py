"""Notebook 04's checked exercises: the symmetric InfoNCE loss (a capstone piece), gradient accumulation
with a feature cache, and what one rank computes when the batch is spread over W ranks (the default
gather of cn_clip, and open_clip's `local_loss`).

Every reference is the library's own code path (`ClipLoss`, `accumulated_step`, `replace_local_chunk`,
`contrastive_loss`), run on small fixed features (and, for grading, on features drawn from a seed);
the mutants are the slips a student makes. While an answer runs, the routines it builds are tripwires
(`tripwire.py`): an answer that only calls them is told so.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cnclip_edu.loss import ClipLoss, contrastive_loss, replace_local_chunk

from .core import Case, Exercise, register
from .tripwire import guarded


def _pairs(n: int, dim: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n L2-normalised (image, text) feature pairs: a shared vector plus independent noise."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, dim, generator=g)
    img = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    txt = F.normalize(z + noise * torch.randn(n, dim, generator=g), dim=-1)
    return img, txt


# ----------------------------------------------------------------------------- 04.1 symmetric InfoNCE
def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """The library's loss, single process: (N, D), (N, D), s -> 0-d tensor."""
    return ClipLoss()(image_features, text_features, logit_scale)


def _grad_of_images(f, img, txt, s):
    img = img.clone().requires_grad_()
    loss = f(img, txt, s)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return loss  # compared as it is: a float or a detached tensor is the mistake to report
    return torch.autograd.grad(loss, img)[0]  # (N, D)


def _on_other_device(f, *features, **kwargs) -> dict:
    """f on features that live on another device than the CPU: the `meta` device (shapes, no data) stands
    in for a GPU on a machine without one. A tensor the answer makes on the CPU (labels from a bare
    `torch.arange(N)`) then meets the features in one op and raises, as it would on a GPU. -> where the
    loss came out and its shape: plain data, the same for every right answer."""
    loss = f(*[x.to("meta") for x in features], **kwargs)
    if not isinstance(loss, torch.Tensor):
        return {"损失的类型": type(loss).__name__}
    return {"损失所在的设备": str(loss.device), "损失的形状": list(loss.shape)}


BUILDS_04_1 = ("cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.loss.contrastive_loss")


def _cases_04_1():
    img8, txt8 = _pairs(8, 16, noise=1.0, seed=0)
    img5, txt5 = _pairs(5, 4, noise=0.7, seed=1)
    img4, txt4 = _pairs(4, 32, noise=0.05, seed=2)  # cosines near 1: logits near 100

    def mine(f):
        return guarded(f, clip_loss, BUILDS_04_1)

    return [
        Case("8 对特征 (8, 16)，s = 14.3", lambda f: mine(f)(img8, txt8, 14.3)),
        Case("5 对特征 (5, 4)，s 是 0 维张量 torch.tensor(50.)", lambda f: mine(f)(img5, txt5, torch.tensor(50.0))),
        Case("4 对几乎对齐的特征，s = 100（logits 接近 100：检查数值稳定）", lambda f: mine(f)(img4, txt4, 100.0)),
        Case("对图片特征的梯度 (8, 16)，s = 14.3（损失必须可求导）", lambda f: _grad_of_images(mine(f), img8, txt8, 14.3)),
        Case("特征不在 CPU 上（用 meta 设备代替 GPU）：labels 要建在特征所在的设备上",
             lambda f: _on_other_device(lambda i, t: mine(f)(i, t, 14.3), img8, txt8)),
    ]


def _hidden_04_1(seed: int):
    import random

    rng = random.Random(seed)
    cases = []
    for kind in ("随机大小的特征，s 是 float", "随机大小的特征，s 是 0 维张量", "只有 1 对特征", "s = 100 且特征几乎对齐",
                 "对图片特征的梯度", "特征不在 CPU 上"):
        n = 1 if kind == "只有 1 对特征" else rng.randint(2, 12)
        dim = rng.choice([3, 8, 24])
        noise = 0.02 if "对齐" in kind else rng.uniform(0.3, 1.5)
        img, txt = _pairs(n, dim, noise=noise, seed=rng.randrange(10**6))
        s = 100.0 if "100" in kind else round(rng.uniform(1.0, 60.0), 2)
        if "梯度" in kind:
            cases.append(Case(kind, (lambda i, t, s: lambda f: _grad_of_images(guarded(f, clip_loss, BUILDS_04_1), i, t, s))(img, txt, s)))
        elif "CPU" in kind:
            cases.append(Case(kind, (lambda i, t, s: lambda f: _on_other_device(
                lambda a, b: guarded(f, clip_loss, BUILDS_04_1)(a, b, s), i, t))(img, txt, s)))
        else:
            scale = torch.tensor(s) if "张量" in kind else s
            cases.append(Case(kind, (lambda i, t, s: lambda f: guarded(f, clip_loss, BUILDS_04_1)(i, t, s))(img, txt, scale)))
    return cases


def _mutants_04_1():
    def labels(logits):
        return torch.arange(logits.shape[0])

    def one_direction(i, t, s):
        logits = s * i @ t.T
        return F.cross_entropy(logits, labels(logits))

    def no_scale(i, t, s):
        logits = i @ t.T
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    def divided_by_scale(i, t, s):
        logits = i @ t.T / s
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    def no_half(i, t, s):
        logits = s * i @ t.T
        return F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))

    def naive_softmax(i, t, s):
        logits = s * i @ t.T
        p_i2t = logits.exp() / logits.exp().sum(dim=1, keepdim=True)   # exp(100) overflows float32
        p_t2i = logits.exp() / logits.exp().sum(dim=0, keepdim=True)
        return -(p_i2t.diag().log().mean() + p_t2i.diag().log().mean()) / 2

    def as_float(i, t, s):
        return clip_loss(i, t, s).item()

    def labels_on_cpu(i, t, s):   # right on CPU tensors; on a GPU the labels meet the logits and raise
        logits = s * i @ t.T
        return (F.cross_entropy(logits, labels(logits)) + F.cross_entropy(logits.T, labels(logits))) / 2

    return {"labels 建在 CPU 上（torch.arange(N) 没有指定 device：特征在 GPU 上时报错）": labels_on_cpu,
            "只算了图到文一个方向": one_direction, "忘了乘 logit_scale": no_scale,
            "除以了 logit_scale（把 s 当成了 τ）": divided_by_scale, "两个方向相加后忘了除以 2": no_half,
            "手写 softmax 直接 exp（s = 100 时溢出）": naive_softmax, "返回了 .item()（不能求导）": as_float}


register(Exercise(
    id="04.1", title="对称 InfoNCE 损失 (symmetric InfoNCE)", points=2,
    hint="先想清楚 logits 矩阵的第 i 行、第 j 列是什么，正确答案落在哪里；两个方向各是一次「在 N 个候选里认出自己」的"
         "交叉熵，一个看行、一个看列。logit_scale 已经取过 exp，直接乘。你新建的 labels 要和 logits 在同一个设备上（特征可能在 GPU 上）。别自己写 exp 再除以和（s = 100 时会溢出），"
         "也别返回 Python 数（还要 backward）。库里的 ClipLoss 不能用：它是拿来和你比较的。",
    reference=clip_loss, cases=_cases_04_1, mutants=_mutants_04_1, hidden=_hidden_04_1, builds=BUILDS_04_1))


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


# ----------------------------------------------------------------------------- 04.3 one rank's loss
def rank_loss(img_local: torch.Tensor, txt_local: torch.Tensor, gathered_img: torch.Tensor,
              gathered_txt: torch.Tensor, rank: int, logit_scale) -> torch.Tensor:
    """What rank `rank` computes in ClipLoss's default mode: the gathered (W*B, D) features as
    constants, this rank's slice replaced by its own features with their gradient scaled by W."""
    world_size = gathered_img.shape[0] // img_local.shape[0]
    all_img = replace_local_chunk(gathered_img, img_local, rank, world_size, grad_scale=world_size)
    all_txt = replace_local_chunk(gathered_txt, txt_local, rank, world_size, grad_scale=world_size)
    return ClipLoss()(all_img, all_txt, logit_scale)


def _run_rank(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0) -> dict:
    """Call f as rank `rank` would, then differentiate: the loss and the three gradients it yields."""
    img_all, txt_all = _pairs(world_size * batch, dim, noise=0.8, seed=seed)   # (W*B, D): all_gather's result
    rows = slice(rank * batch, (rank + 1) * batch)
    img_l = img_all[rows].clone().requires_grad_()
    txt_l = txt_all[rows].clone().requires_grad_()
    s = torch.tensor(10.0, requires_grad=True)
    loss = f(img_l, txt_l, img_all.clone(), txt_all.clone(), rank, s)
    if not isinstance(loss, torch.Tensor):
        return {"损失": loss}
    wrt = [img_l, txt_l, s]
    grads = (torch.autograd.grad(loss, wrt, allow_unused=True) if loss.requires_grad else [None] * 3)
    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, wrt)]
    return {"损失": loss.detach(), "本地图片特征的梯度": grads[0], "本地文本特征的梯度": grads[1],
            "logit_scale 的梯度": grads[2]}


def _cases_04_3():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3",
                 (lambda w, r: lambda f: _run_rank(guarded(f, rank_loss, BUILDS_04_3), w, r, seed=w + r))(w, r))
            for w, r in [(2, 0), (2, 1), (4, 2)]]


def _hidden_04_3(seed: int):
    import random

    rng = random.Random(seed)
    out = []
    for kind in ("W = 2，随机的 rank", "W = 3 或 4，随机的 rank", "最后一个 rank"):
        w = 2 if kind.startswith("W = 2") else rng.choice([3, 4])
        r = w - 1 if kind == "最后一个 rank" else rng.randrange(w)
        out.append(Case(kind, (lambda w, r, b, s: lambda f: _run_rank(guarded(f, rank_loss, BUILDS_04_3), w, r, batch=b, seed=s))(
            w, r, rng.randint(1, 4), rng.randrange(10**6))))
    return out


BUILDS_04_3 = ("cnclip_edu.loss.replace_local_chunk",)


def _mutants_04_3():
    def no_scale(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return ClipLoss()(replace_local_chunk(gi, i, rank, w), replace_local_chunk(gt, t, rank, w), s)

    def all_gathered(i, t, gi, gt, rank, s):
        return ClipLoss()(gi, gt, s)

    def loss_times_w(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return w * ClipLoss()(replace_local_chunk(gi, i, rank, w), replace_local_chunk(gt, t, rank, w), s)

    def slot_zero(i, t, gi, gt, rank, s):
        w = gi.shape[0] // i.shape[0]
        return ClipLoss()(replace_local_chunk(gi, i, 0, w, grad_scale=w), replace_local_chunk(gt, t, 0, w, grad_scale=w), s)

    def local_only(i, t, gi, gt, rank, s):
        return ClipLoss()(i, t, s)

    return {"本地那一片的梯度没有乘 W": no_scale, "直接用 all_gather 的结果（全部没有梯度）": all_gathered,
            "把整个损失乘以 W（logit_scale 的梯度也被放大了）": loss_times_w,
            "本地特征总放在第 0 片（忘了按 rank 放）": slot_zero, "只用本地的 B 个样本（没有用聚合来的负样本）": local_only}


register(Exercise(
    id="04.3", title="一个 rank 上的聚合损失 (all-gather + 本地片保留梯度)", points=3,
    hint="W 从两个形状里算出来；聚合结果里属于本 rank 的那一片换成本地特征（值不变），并且只让这一片的梯度放大 W 倍"
         "（第 4 部分的 detach 技巧）。放大整个损失不行：那样 logit_scale 的梯度也被放大了。",
    reference=rank_loss, cases=_cases_04_3, mutants=_mutants_04_3, hidden=_hidden_04_3, builds=BUILDS_04_3))


# ----------------------------------------------------------------------------- 04.4 local_loss
def local_rank_loss(img_local: torch.Tensor, txt_local: torch.Tensor, all_img: torch.Tensor,
                    all_txt: torch.Tensor, rank: int, logit_scale) -> torch.Tensor:
    """ClipLoss(local_loss=True, gather_with_grad=True) on rank `rank`: its B rows against all W*B
    columns, labels offset by rank*B (all_img / all_txt come from a differentiable gather)."""
    batch = img_local.shape[0]
    labels = torch.arange(batch, device=img_local.device) + rank * batch
    return contrastive_loss(logit_scale * img_local @ all_txt.T, logit_scale * txt_local @ all_img.T, labels)


def _run_local(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0):
    """Differentiable gather simulated in one process: the rank's rows are views of the full batch."""
    img_full, txt_full = _pairs(world_size * batch, dim, noise=0.8, seed=seed)
    img_full.requires_grad_()
    txt_full.requires_grad_()
    rows = slice(rank * batch, (rank + 1) * batch)
    loss = f(img_full[rows], txt_full[rows], img_full, txt_full, rank, 10.0)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return {"损失": loss}
    g_img, g_txt = torch.autograd.grad(loss, [img_full, txt_full])
    return {"损失": loss.detach(), "全批图片特征的梯度": g_img, "全批文本特征的梯度": g_txt}


def _local_on_other_device(f, world_size: int, rank: int, batch: int = 3, dim: int = 8, seed: int = 0) -> dict:
    """`_run_local`'s features on the meta device (a GPU stand-in): labels made on the CPU raise."""
    img_full, txt_full = _pairs(world_size * batch, dim, noise=0.8, seed=seed)
    rows = slice(rank * batch, (rank + 1) * batch)
    return _on_other_device(lambda i, t, ai, at: f(i, t, ai, at, rank, 10.0),
                            img_full[rows], txt_full[rows], img_full, txt_full)


def _cases_04_4():
    return [Case(f"W = {w} 个进程，rank = {r}，每个进程 B = 3",
                 (lambda w, r: lambda f: _run_local(guarded(f, local_rank_loss, BUILDS_04_4), w, r, seed=w + r))(w, r))
            for w, r in [(2, 1), (4, 0), (4, 3)]] + [
        Case("W = 2，rank = 1，特征不在 CPU 上（用 meta 设备代替 GPU）：labels 要建在特征所在的设备上",
             lambda f: _local_on_other_device(guarded(f, local_rank_loss, BUILDS_04_4), 2, 1, seed=5))]


# the reference itself too: notebook 04 imports it as the fallback after the check, so it is within reach
BUILDS_04_4 = ("cnclip_edu.loss.ClipLoss.forward", "cnclip_edu.course.exercises.nb04.local_rank_loss")


def _hidden_04_4(seed: int):
    import random

    rng = random.Random(seed)
    return [Case(kind, (lambda w, r, b, s: lambda f: _run_local(guarded(f, local_rank_loss, BUILDS_04_4), w, r, batch=b, seed=s))(
                w, (0 if kind == "rank 0" else w - 1 if kind == "最后一个 rank" else rng.randrange(w)),
                rng.randint(1, 4), rng.randrange(10**6)))
            for kind, w in (("随机的 W 和 rank", rng.choice([2, 3, 4])), ("rank 0", rng.choice([2, 4])),
                            ("最后一个 rank", rng.choice([2, 3])))] + [
        Case("特征不在 CPU 上", (lambda w, b, s: lambda f: _local_on_other_device(
            guarded(f, local_rank_loss, BUILDS_04_4), w, w - 1, batch=b, seed=s))(
                rng.choice([2, 3]), rng.randint(2, 4), rng.randrange(10**6)))]


def _mutants_04_4():
    def no_offset(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ at.T, s * t @ ai.T, torch.arange(i.shape[0]))

    def local_columns(i, t, ai, at, rank, s):
        return contrastive_loss(s * i @ t.T, s * t @ i.T)

    def same_rows_twice(i, t, ai, at, rank, s):
        labels = torch.arange(i.shape[0]) + rank * i.shape[0]
        logits = s * i @ at.T
        return contrastive_loss(logits, logits, labels)

    def labels_on_cpu(i, t, ai, at, rank, s):   # right on CPU tensors; on a GPU the labels meet the logits and raise
        labels = torch.arange(i.shape[0]) + rank * i.shape[0]
        return contrastive_loss(s * i @ at.T, s * t @ ai.T, labels)

    return {"labels 建在 CPU 上（torch.arange(B) 没有指定 device：特征在 GPU 上时报错）": labels_on_cpu,
            "标签没有加 rank * B 的偏移": no_offset, "只用本地的 B 列（没有用聚合来的负样本）": local_columns,
            "文到图也用了图片行 (img_local @ all_txt.T)": same_rows_twice}


register(Exercise(
    id="04.4", title="local_loss：本 rank 的 B 行对全部 W·B 列", points=2,
    hint="本 rank 的 B 张图片对全部 W·B 句文本打分、B 句文本对全部 W·B 张图片打分，两个矩阵都是 (B, W·B)；"
         "再想一想：本 rank 的第 i 个样本在全局批次里排第几？它就是第 i 行正确答案所在的列。labels 要建在特征所在的设备上。",
    reference=local_rank_loss, cases=_cases_04_4, mutants=_mutants_04_4, hidden=_hidden_04_4,
    builds=BUILDS_04_4))
