"""Exercises 02.7 and 02.8 of notebook 02 (the vision tower): FLIP's `random_masking`, which keeps [CLS]
and a random subset of the patch tokens of each image.

Two checks of one routine: 02.7 accepts any correct design of the student's own and so checks only
properties (which tokens come out, whole and without repeats, different per image and per seed, the
same again for the same seed, each patch and each pair of patches kept about equally often,
the images drawn independently); 02.8 asks for the convention MAE,
FLIP and cn_clip share (noise drawn from the generator, the smallest kept, the count rounded down) and
compares element by element with `random_masking`, dtype included. Both share the mutant builder
`_masking`, one step done differently.
"""
from __future__ import annotations

import math
import random

import torch

from cnclip_edu.model.vision import random_masking

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts, strict_dtype
from .nb02_common import _VISION


# ----------------------------------------------------------------------------- 02.7 / 02.8 FLIP random_masking
def _masking(x, mask_ratio, generator=None, same_for_all=False, count=None, descending=False, spatial_order=False,
             cls_in_pool=False, shift=1):
    """random_masking with one step done differently (for the mutants)."""
    B, L, D = x.shape
    N = L - 1
    keep = int(N * (1 - mask_ratio)) if count is None else count(N, mask_ratio)
    if cls_in_pool:  # draws noise for every token, [CLS] included, and keeps from all of them
        noise = torch.rand(B, L, generator=generator)
        ids = noise.argsort(dim=1, descending=descending)[:, : keep + 1]
        return torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, D))
    noise = torch.rand(1 if same_for_all else B, N, generator=generator).expand(B, N)
    ids = noise.argsort(dim=1, descending=descending)[:, :keep]
    if spatial_order:
        ids = ids.sort(dim=1).values
    kept = torch.gather(x, 1, (ids + shift).unsqueeze(-1).expand(-1, -1, D))
    return torch.cat([x[:, :1], kept], dim=1)


def _per_image_randperm(x, mask_ratio, generator=None):
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    ids = torch.stack([torch.randperm(L - 1, generator=generator)[:keep] for _ in range(B)]) + 1
    return torch.cat([x[:, :1], torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, D))], dim=1)


def _no_generator(x, mask_ratio, generator=None):
    return _masking(x, mask_ratio)  # torch.rand without generator=: draws from the global generator


_MASK_BUILDS = (_VISION + "random_masking",)
_mask_run = guarded(random_masking, _MASK_BUILDS)


def _token_ids(B: int, L: int) -> torch.Tensor:
    """(B, L, 1) long: token i's "feature" is i, so an error message shows which tokens were kept."""
    return torch.arange(L).view(1, L, 1).expand(B, L, 1).clone()


def _mask_case(label, x, ratio, seed):
    return Case(label, lambda f: _mask_run(f, x, ratio, torch.Generator().manual_seed(seed)))


def _mask_cases():
    g = torch.Generator().manual_seed(31)
    feats, one = torch.randn(3, 17, 8, generator=g), torch.randn(1, 10, 4, generator=g)
    return [_mask_case("特征就是编号 (4, 17, 1) 的整数张量，mask_ratio = 0.5", _token_ids(4, 17), 0.5, 0),
            _mask_case("随机特征 (3, 17, 8)，mask_ratio = 0.7（保留个数 16 × 0.3 = 4.8 不是整数）", feats, 0.7, 1),
            _mask_case("mask_ratio = 0.75：16 × 0.25 = 4 恰好是整数", _token_ids(2, 17), 0.75, 2),
            _mask_case("只有 1 张图、9 个 patch、mask_ratio = 0.5", one, 0.5, 3),
            _mask_case("float64 的输入：结果也要是 float64", feats.double(), 0.5, 4)]


def _mask_hidden(seed: int):
    rng = random.Random(seed)
    B, N, D = rng.randint(1, 5), rng.choice([4, 9, 16, 49]), rng.randint(1, 6)
    x = torch.randn(B, 1 + N, D, generator=torch.Generator().manual_seed(seed))
    ratio = rng.choice([0.25, 0.5, 0.6, 0.7, 0.75, 0.9])
    return [_mask_case("随机批次、随机 patch 数和 mask_ratio", x, ratio, seed),
            _mask_case("特征就是编号的整数张量", _token_ids(B, 1 + N), rng.choice([0.5, 0.75]), seed + 1)]


def _numbered(B: int, L: int, D: int, dtype=torch.float64) -> torch.Tensor:
    """(B, L, D): token i's features are i·D, i·D + 1, ..., i·D + D - 1 (exact in float64), so an output
    row says which token it came from and whether its D numbers stayed together."""
    return (torch.arange(L).view(1, L, 1) * D + torch.arange(D).view(1, 1, D)).expand(B, L, D).to(dtype).clone()


_PROPERTY_KEYS = ("[CLS]（第 0 个 token）在最前面", "每一行都是输入里某个 token 完整的 D 个数",
                  "后面留下的都是 patch（编号 1 … N），不含 [CLS]", "同一张图里留下的 patch 互不重复",
                  "批次里各张图留下的子集不全相同", "同一个随机种子，留下的子集相同（随机数从 generator 抽）",
                  "换一个随机种子，留下的子集会变")
_FREQUENCY_KEY = "每个 patch 被留下的频率都接近 keep / N"
_PAIR_KEY = "任意两个 patch（相邻的、离得远的）一起被留下的频率都接近 keep(keep-1) / (N(N-1))"
_OVERLAP_KEY = "相邻两张图留下的子集平均重合约 keep² / N 个（各张图独立地抽）"
_STAT_KEYS = (_FREQUENCY_KEY, _PAIR_KEY, _OVERLAP_KEY)


def _mask_properties(f, B: int, N: int, D: int, ratio: float, seed: int, frequencies: bool = False):
    """What any correct design of random_masking satisfies (plain data): the answer's own convention for
    which random numbers it draws is free here. `frequencies`: also whether every patch is kept about
    keep / N of the time (needs a large batch)."""
    x = _numbered(B, 1 + N, D)
    # seed twice (an answer that ignores `generator` draws from the global RNG and differs), then seed + 1
    outs = [_mask_run(f, x, ratio, torch.Generator().manual_seed(s)) for s in (seed, seed, seed + 1)]
    for out in outs:
        if not torch.is_tensor(out):  # the shortcut marker (or something that is no tensor)
            return out
    out, again, other = outs
    props = {"输出的形状": list(out.shape), "输出的 dtype": str(out.dtype)}
    if (out.dim() != 3 or out.shape[0] != B or out.shape[-1] != D or out.shape[1] < 1
            or other.shape != out.shape or again.shape != out.shape):
        # the same keys as a well-shaped answer (None: not measurable), so the message names the shape first
        return {**props, **{k: None for k in _PROPERTY_KEYS + _STAT_KEYS * frequencies}}
    token = out[..., 0] / D                                           # (B, 1 + keep): which token each row came from
    whole = bool((out == (token * D).unsqueeze(-1) + torch.arange(D, dtype=out.dtype)).all()
                 and (token == token.round()).all())
    ids = token[:, 1:].round().long()                                 # (B, keep)
    sets = [frozenset(row.tolist()) for row in ids]
    props.update(zip(_PROPERTY_KEYS, (
        bool((token[:, 0] == 0).all()),
        whole,
        bool(((ids >= 1) & (ids <= N)).all()),
        all(len(sub) == ids.shape[1] for sub in sets),
        B < 2 or ids.shape[1] in (0, N) or len(set(sets)) > 1,
        ids.shape[1] in (0, N) or torch.equal(out, again),
        ids.shape[1] in (0, N) or not torch.equal(out, other),
    )))
    if frequencies:
        # A uniform random subset per image, drawn independently. With B = 2000, N = 16, keep = 4 (the case
        # below) a correct answer fails these thresholds with a chance below 1e-5 in all: each patch's
        # frequency ~ Binomial(2000, 1/4) / 2000 leaves ±0.05 with p = 3e-7 (x 16 patches); each pair's
        # ~ Binomial(2000, 1/20) / 2000 leaves ±0.03 with p = 8e-9 (x 120 pairs); the 1999 overlaps of
        # consecutive images are i.i.d. hypergeometric (mean 1, variance 0.6), their mean leaves ±0.15 with
        # p < 2e-13 (Bernstein). A run of consecutive patches never keeps two far-apart patches together,
        # and images drawn in identical pairs overlap by about (keep + keep²/N) / 2 = 2.5.
        keep = ids.shape[1]
        kept = torch.zeros(B, N + 1).scatter_(1, ids.clamp(0, N), 1.0)[:, 1:]          # (B, N) 0/1
        together = (kept.T @ kept / B)[tuple(torch.triu_indices(N, N, 1))]            # every pair i < j
        props[_FREQUENCY_KEY] = bool(((kept.mean(0) - keep / N).abs() < 0.05).all())
        props[_PAIR_KEY] = bool(((together - keep * (keep - 1) / (N * (N - 1))).abs() < 0.03).all())
        props[_OVERLAP_KEY] = bool(abs((kept[1:] * kept[:-1]).sum(1).mean().item() - keep * keep / N) < 0.15)
    return props


def _mask_property_cases():
    return [Case("4 张图、16 个 patch、D = 3、mask_ratio = 0.5", lambda f: _mask_properties(f, 4, 16, 3, 0.5, 0)),
            Case("3 张图、16 个 patch、mask_ratio = 0.7（16 × 0.3 = 4.8 不是整数）",
                 lambda f: _mask_properties(f, 3, 16, 2, 0.7, 1)),
            Case("只有 1 张图、36 个 patch、mask_ratio = 0.5", lambda f: _mask_properties(f, 1, 36, 4, 0.5, 2)),
            Case("2000 张图、16 个 patch、mask_ratio = 0.75：每个 patch 被留下的频率",
                 lambda f: _mask_properties(f, 2000, 16, 1, 0.75, 3, frequencies=True))]


def _mask_property_hidden(seed: int):
    rng = random.Random(seed)
    B, N, D = rng.randint(3, 5), rng.choice([16, 49]), rng.randint(1, 6)
    # at least 1820 possible subsets and 3 images: a correct random design draws the same subset for every
    # image (or again after a new seed) with a chance below 1e-6 (and keep >= 1: torch.multinomial refuses 0)
    ratio = rng.choice([r for r in (0.25, 0.5, 0.6, 0.7, 0.75, 0.9) if math.comb(N, int(N * (1 - r))) >= 1820])
    return [Case("随机批次、随机 patch 数和 mask_ratio", lambda f: _mask_properties(f, B, N, D, ratio, seed))]


def _with_replacement(x, mask_ratio, generator=None):
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    ids = torch.randint(1, L, (B, keep), generator=generator)
    return torch.cat([x[:, :1], torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, D))], dim=1)


def _window(x, mask_ratio, generator=None, shared_permutation=False):
    """Each image keeps `keep` consecutive patches from a random start (cyclic); with `shared_permutation`
    consecutive in one random order of the patches drawn for the whole batch. Every patch is kept equally
    often, but only N of the C(N, keep) subsets can occur."""
    B, L, D = x.shape
    N = L - 1
    keep = int(N * (1 - mask_ratio))
    start = torch.randint(0, N, (B, 1), generator=generator)
    ids = (start + torch.arange(keep)) % N
    if shared_permutation:
        ids = torch.randperm(N, generator=generator)[ids]
    return torch.cat([x[:, :1], torch.gather(x, 1, (ids + 1).unsqueeze(-1).expand(-1, -1, D))], dim=1)


def _pairs_of_images(x, mask_ratio, generator=None):
    """Images 2k and 2k + 1 keep the same subset: each image is uniform, but they are not independent."""
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    noise = torch.rand((B + 1) // 2, L - 1, generator=generator).repeat_interleave(2, dim=0)[:B]
    ids = noise.argsort(dim=1)[:, :keep] + 1
    return torch.cat([x[:, :1], torch.gather(x, 1, ids.unsqueeze(-1).expand(-1, -1, D))], dim=1)


def _first_patches(x, mask_ratio, generator=None):
    keep = int((x.shape[1] - 1) * (1 - mask_ratio))
    return x[:, : 1 + keep]


def _index_not_expanded(x, mask_ratio, generator=None):
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    ids = torch.rand(B, L - 1, generator=generator).argsort(dim=1)[:, :keep] + 1
    return torch.cat([x[:, :1, :1], torch.gather(x, 1, ids.unsqueeze(-1))], dim=1)  # only feature 0 of each token


register(Exercise(
    id="02.7", title="FLIP 的随机掩码：你自己的设计（检查性质）", points=2,
    hint="[CLS] 永远排第一；每张图要各自留下 keep 个互不重复的 patch，子集随图、随种子而变（随机数都从 generator 抽），"
         "每个大小为 keep 的子集被抽中的机会相同，各张图独立地抽；留下的每个 token 要带着它完整的 D 个数。",
    reference=random_masking,
    cases=_mask_property_cases, hidden=_mask_property_hidden, builds=_MASK_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "每张图用了同一组随机数（同一个子集）": lambda x, r, g=None: _masking(x, r, g, same_for_all=True),
        "[CLS] 也参与了随机丢弃": lambda x, r, g=None: _masking(x, r, g, cls_in_pool=True),
        "下标忘了 +1（把 [CLS] 当成了第 0 个 patch）": lambda x, r, g=None: _masking(x, r, g, shift=0),
        "有放回地抽 patch（torch.randint，会重复）": _with_replacement,
        "总是留下前 keep 个 patch（不随机）": _first_patches,
        "随机起点，留下连续的 keep 个 patch（循环）": _window,
        "整批一个随机排列，每张图取其中随机起点的连续一段": lambda x, r, g=None: _window(x, r, g, shared_permutation=True),
        "每两张图用同一个子集（各张图不独立）": _pairs_of_images,
        "保留个数四舍五入": lambda x, r, g=None: _masking(x, r, g, count=lambda N, r_: round(N * (1 - r_))),
        "gather 的下标没有沿 D 展开（每个 token 只剩一个数）": _index_not_expanded,
        "没有把 generator 传给随机函数（从全局生成器抽）": _no_generator,
        "直接调用库里的 random_masking": lambda x, r, g=None: random_masking(x, r, g),
    }))


register(Exercise(
    id="02.8", title="FLIP 的 random_masking：按 MAE / FLIP / cn_clip 的约定", points=2,
    hint="每张图要有自己的一组随机数，按题目说的方式从 generator 里抽；留下随机数最小的那几个 patch，"
         "个数按题目的公式向下取整；下标是 patch 的编号，到 x 里取之前要想想 [CLS] 占了位置 0；"
         "gather 的下标要和取出的结果一样有 D 这一维。",
    reference=random_masking,
    cases=_mask_cases, hidden=_mask_hidden, builds=_MASK_BUILDS, compare=refuse_shortcuts(strict_dtype()),
    mutants=lambda: {
        "每张图用了同一组随机数（同一个子集）": lambda x, r, g=None: _masking(x, r, g, same_for_all=True),
        "[CLS] 也参与了随机丢弃": lambda x, r, g=None: _masking(x, r, g, cls_in_pool=True),
        "下标忘了 +1（把 [CLS] 当成了第 0 个 patch）": lambda x, r, g=None: _masking(x, r, g, shift=0),
        "留下随机数最大的（降序）": lambda x, r, g=None: _masking(x, r, g, descending=True),
        "把留下的 patch 按原来的位置重新排序": lambda x, r, g=None: _masking(x, r, g, spatial_order=True),
        "保留个数用 L 而不是 N = L - 1 来算": lambda x, r, g=None: _masking(x, r, g, count=lambda N, r_: int((N + 1) * (1 - r_))),
        "保留个数四舍五入": lambda x, r, g=None: _masking(x, r, g, count=lambda N, r_: round(N * (1 - r_))),
        "保留个数 = N - int(N × mask_ratio)": lambda x, r, g=None: _masking(x, r, g, count=lambda N, r_: N - int(N * r_)),
        "每张图用 torch.randperm 抽子集": _per_image_randperm,
        "没有把 generator 传给 torch.rand": _no_generator,
        "先转成 float32 再处理": lambda x, r, g=None: _masking(x.float(), r, g),
        "直接调用库里的 random_masking": lambda x, r, g=None: random_masking(x, r, g),
    }))
