"""Exercises of notebook 02 (the vision tower): the student builds a ViT's `encode_image` piece by piece,
then FLIP's `random_masking`: first any correct design of their own (02.6 checks properties only), then
the convention MAE, FLIP and cn_clip share, compared element by element (02.7).

Each answer is a function of a library module (`visual`, `attn`, `block`, the whole `model`) and a
tensor, run on seeded tiny towers (towers.py) and compared with the library's own method on the same
module: e.g. `VisionTransformer.patch_tokens(visual, images)` is the reference of
`patch_tokens(visual, images)`. Every exercise also has grading cases drawn from a seed (`hidden`) and
names the library routines it builds (`builds`): an answer that calls one of them is refused
(guards.py), so `visual(images)` does not pass as a hand-written ViT.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from cnclip_edu.model.clip import CLIP
from cnclip_edu.model.vision import ResidualAttentionBlock, SelfAttention, VisionTransformer, random_masking

from .core import Case, Exercise, register
from .guards import guarded, refuse_shortcuts, strict_dtype
from .towers import feature_probes, images, tiny_clip, tiny_vit

_VISION = "cnclip_edu.model.vision."
_SDPA = "torch.nn.functional.scaled_dot_product_attention"


def _vit_cases(run):
    """Three towers: course-like (32 px, patch 8, width 32), tiny (12 px, patch 4), and a batch of one."""
    def cases():
        big = tiny_vit(seed=1, resolution=32, patch=8, width=32, layers=2, heads=4, output_dim=16)
        small = tiny_vit(seed=2)
        x_big, x_small, x_one = images(2, 32, seed=3), images(3, 12, seed=4), images(1, 12, seed=5)
        return [Case("32×32 图、patch 8、宽 32 的 ViT，2 张图", lambda f: run(f, big, x_big)),
                Case("12×12 图、patch 4、宽 16 的 ViT，3 张图", lambda f: run(f, small, x_small)),
                Case("同一个 12×12 的 ViT，只有 1 张图 (B = 1)", lambda f: run(f, small, x_one))]
    return cases


def _vit_hidden(run):
    """A tower of a random size (grid 2-4, patch 2-5, 1-4 heads) and a random batch (1-4 images)."""
    def hidden(seed: int):
        rng = random.Random(seed)
        grid, patch, heads = rng.randint(2, 4), rng.randint(2, 5), rng.choice([1, 2, 4])
        vit = tiny_vit(seed=seed, resolution=grid * patch, patch=patch, width=8 * heads, layers=2, heads=heads,
                       output_dim=rng.choice([4, 12]))
        x = images(rng.randint(1, 4), grid * patch, seed=seed + 1)
        return [Case("随机大小的 ViT 和一批随机图片", lambda f: run(f, vit, x))]
    return hidden


# ----------------------------------------------------------------------------- 02.1 patchify
def _patches_rows_then_channels(visual, x):  # flattens each patch as (P, P, 3) instead of (3, P, P)
    B, P = x.shape[0], visual.patch_size
    W = visual.conv1.weight
    p = x.unfold(2, P, P).unfold(3, P, P)  # (B, 3, g, g, P, P)
    p = p.permute(0, 2, 3, 4, 5, 1).reshape(B, -1, 3 * P * P)
    return p @ W.reshape(W.shape[0], -1).T


def _patches_column_order(visual, x):  # walks the grid column by column
    B, P = x.shape[0], visual.patch_size
    W = visual.conv1.weight
    p = x.unfold(2, P, P).unfold(3, P, P)  # (B, 3, g, g, P, P)
    p = p.permute(0, 3, 2, 1, 4, 5).reshape(B, -1, 3 * P * P)
    return p @ W.reshape(W.shape[0], -1).T


_PATCH_BUILDS = (_VISION + "VisionTransformer.patch_tokens", _VISION + "VisionTransformer.embed",
                 _VISION + "VisionTransformer.forward")
_patch_run = guarded(VisionTransformer.patch_tokens, _PATCH_BUILDS)

register(Exercise(
    id="02.1", title="切块并线性映射 (patchify)", points=2,
    hint="每个 patch 展平的顺序要和卷积核 conv1.weight 的 (3, P, P) 排列一致；patch 按行排列；"
         "卷积的输出是 (B, D, g, g)，变成 (B, N, D) 要交换轴，光改形状不够。",
    reference=VisionTransformer.patch_tokens,
    cases=_vit_cases(_patch_run), hidden=_vit_hidden(_patch_run), builds=_PATCH_BUILDS,
    compare=refuse_shortcuts(),
    mutants=lambda: {
        "卷积后直接 reshape 成 (B, N, D)，没有转置": lambda v, x: v.conv1(x).reshape(x.shape[0], -1, v.conv1.weight.shape[0]),
        "忘了把 (B, D, N) 转置成 (B, N, D)": lambda v, x: v.conv1(x).flatten(2),
        "展平 patch 时按 (P, P, 3) 的顺序，和卷积核 (3, P, P) 对不上": _patches_rows_then_channels,
        "按列而不是按行给 patch 排序": _patches_column_order,
        "直接调用库里的 visual.patch_tokens": lambda v, x: v.patch_tokens(x),
    }))


# ----------------------------------------------------------------------------- 02.2 [CLS] + positions
def _cls_at_end(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([t, cls], dim=1) + v.positional_embedding


def _positions_on_patches_only(v, t):
    cls = v.class_embedding.expand(t.shape[0], 1, -1)
    return torch.cat([cls, t + v.positional_embedding[1:]], dim=1)


_CLS_BUILDS = (_VISION + "VisionTransformer.add_class_and_positions", _VISION + "VisionTransformer.embed")
_cls_run = guarded(VisionTransformer.add_class_and_positions, _CLS_BUILDS)


def _cls_pos_cases():
    vit = tiny_vit(seed=6)
    g = torch.Generator().manual_seed(7)
    t3, t1 = torch.randn(3, 9, 16, generator=g), torch.randn(1, 9, 16, generator=g)
    return [Case("3 张图的 patch token (3, 9, 16)", lambda f: _cls_run(f, vit, t3)),
            Case("1 张图的 patch token (1, 9, 16)", lambda f: _cls_run(f, vit, t1))]


def _cls_pos_hidden(seed: int):
    rng = random.Random(seed)
    grid = rng.randint(2, 4)
    vit = tiny_vit(seed=seed, resolution=grid * 3, patch=3, width=8, heads=2)
    t = torch.randn(rng.randint(1, 4), grid * grid, 8, generator=torch.Generator().manual_seed(seed))
    return [Case("随机大小的一批 patch token", lambda f: _cls_run(f, vit, t))]


register(Exercise(
    id="02.2", title="加上 [CLS] 和位置编码", points=2,
    hint="[CLS] 排在所有 patch 前面；它也占一个位置，所以 positional_embedding 的每一行（包括第 0 行）都要用上。"
         "class_embedding 只有一个向量，要先变成每张图一份才能拼接。",
    reference=VisionTransformer.add_class_and_positions,
    cases=_cls_pos_cases, hidden=_cls_pos_hidden, builds=_CLS_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "[CLS] 拼在了最后": _cls_at_end,
        "位置编码只加在 patch 上，[CLS] 没有位置": _positions_on_patches_only,
        "忘了加位置编码": lambda v, t: torch.cat([v.class_embedding.expand(t.shape[0], 1, -1), t], dim=1),
    }))


# ----------------------------------------------------------------------------- 02.3 multi-head attention
def _attention(attn, x, scale=None, merge=None, softmax_dim=-1, split=None):
    """The hand-written attention with one step done wrong (for the mutants)."""
    B, L, D = x.shape
    H = attn.heads
    qkv = x @ attn.in_proj_weight.T + attn.in_proj_bias  # (B, L, 3D)
    q, k, v = qkv.chunk(3, dim=-1)  # (B, L, D) each
    split = split or (lambda t: t.view(B, L, H, D // H).transpose(1, 2))
    q, k, v = split(q), split(k), split(v)  # (B, H, L, Dh)
    scores = q @ k.transpose(-1, -2) / (scale if scale is not None else math.sqrt(D // H))
    y = scores.softmax(dim=softmax_dim) @ v  # (B, H, L, Dh)
    y = merge(y) if merge else y.transpose(1, 2).reshape(B, L, D)
    return attn.out_proj(y)


_ATTN_BUILDS = (_VISION + "SelfAttention.forward", _SDPA)
_attn_run = guarded(SelfAttention.forward, _ATTN_BUILDS)


def _attn_cases():
    vit4 = tiny_vit(seed=8, width=32, heads=4)
    vit2 = tiny_vit(seed=9)
    g = torch.Generator().manual_seed(10)
    x4, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(3, 10, 16, generator=g)
    return [Case("宽 32、4 个头，x 形状 (2, 10, 32)", lambda f: _attn_run(f, vit4.transformer.resblocks[0].attn, x4)),
            Case("宽 16、2 个头，x 形状 (3, 10, 16)", lambda f: _attn_run(f, vit2.transformer.resblocks[1].attn, x2))]


def _attn_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4, 8])
    vit = tiny_vit(seed=seed, width=8 * heads, heads=heads)
    x = torch.randn(rng.randint(1, 3), rng.randint(2, 12), 8 * heads, generator=torch.Generator().manual_seed(seed))
    return [Case("随机头数、随机序列长度", lambda f: _attn_run(f, vit.transformer.resblocks[0].attn, x))]


register(Exercise(
    id="02.3", title="手写多头自注意力 (multi-head self-attention)", points=3,
    hint="in_proj_weight 是 q、k、v 三个矩阵叠在一起；每个头只用 D / H 维，缩放也按每个头的维度算；"
         "softmax 让每个 query 对所有 key 的权重和为 1；合并多头之前，头的轴要先回到序列轴后面。",
    reference=SelfAttention.forward,
    cases=_attn_cases, hidden=_attn_hidden, builds=_ATTN_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了除以 √Dh": lambda a, x: _attention(a, x, scale=1.0),
        "除以 √D 而不是 √Dh": lambda a, x: _attention(a, x, scale=math.sqrt(x.shape[-1])),
        "合并多头时没有先转置，直接 reshape": lambda a, x: _attention(a, x, merge=lambda y: y.reshape(x.shape)),
        "softmax 沿错了维度 (dim=-2)": lambda a, x: _attention(a, x, softmax_dim=-2),
        "拆头时直接 view(B, H, L, Dh)": lambda a, x: _attention(
            a, x, split=lambda t: t.reshape(x.shape[0], a.heads, x.shape[1], -1)),
        "用了 F.scaled_dot_product_attention": lambda a, x: a.out_proj(
            F.scaled_dot_product_attention(*a.qkv(x)).transpose(1, 2).reshape(x.shape)),
    }))


# ----------------------------------------------------------------------------- 02.4 the pre-LN block
def _post_ln(b, x):
    x = b.ln_1(x + b.attn(x))
    return b.ln_2(x + b.mlp(x))


def _normalised_residual(b, x):
    h = b.ln_1(x)
    x = h + b.attn(h)
    h = b.ln_2(x)
    return h + b.mlp(h)


def _block_with(b, x, act):
    x = x + b.attn(b.ln_1(x))
    return x + b.mlp.c_proj(act(b.mlp.c_fc(b.ln_2(x))))


# QuickGELU.forward too: the exercise asks for the MLP put together by hand, so `block.mlp(h)` (an
# nn.Sequential that runs the library's QuickGELU) and `block.mlp.gelu(h)` are refused; c_fc / c_proj
# (plain nn.Linear) stay allowed, and so does `block.attn` (02.3 may not have passed yet)
_BLOCK_BUILDS = (_VISION + "ResidualAttentionBlock.forward", _VISION + "Transformer.forward",
                 _VISION + "QuickGELU.forward")
_block_run = guarded(ResidualAttentionBlock.forward, _BLOCK_BUILDS)


def _block_cases():
    vit = tiny_vit(seed=12, width=32, heads=4)
    g = torch.Generator().manual_seed(13)
    x1, x2 = torch.randn(2, 10, 32, generator=g), torch.randn(1, 5, 32, generator=g) * 3
    blocks = vit.transformer.resblocks
    return [Case("第 1 个块，x 形状 (2, 10, 32)", lambda f: _block_run(f, blocks[0], x1)),
            Case("第 2 个块，x 形状 (1, 5, 32)，数值较大", lambda f: _block_run(f, blocks[1], x2))]


def _block_hidden(seed: int):
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    vit = tiny_vit(seed=seed, width=8 * heads, heads=heads)
    x = torch.randn(rng.randint(1, 3), rng.randint(2, 12), 8 * heads, generator=torch.Generator().manual_seed(seed)) * 2
    block = vit.transformer.resblocks[rng.randint(0, 1)]
    return [Case("随机宽度的块、随机输入", lambda f: _block_run(f, block, x))]


register(Exercise(
    id="02.4", title="pre-LN 残差块 (residual block)", points=2,
    hint="pre-LN：LayerNorm 只作用在进子层的那一份上，加回去的是没有归一化的 x；两个子层各用自己的 LayerNorm；"
         "MLP 要自己拼：c_fc、你自己写的激活函数（CLIP 训练时用的那一个，见上面的图）、c_proj——"
         "整个 block.mlp(...) 和 block.mlp.gelu(...) 都会调用库里的 QuickGELU，不算数。",
    reference=ResidualAttentionBlock.forward, needs=("02.3",),
    cases=_block_cases, hidden=_block_hidden, builds=_BLOCK_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "写成了 post-LN (BERT 的顺序)": _post_ln,
        "残差加的是归一化以后的 x": _normalised_residual,
        "MLP 没有加残差": lambda b, x: b.mlp(b.ln_2(x + b.attn(b.ln_1(x)))),
        "两个子层都用了 ln_1": lambda b, x: (lambda y: y + b.mlp(b.ln_1(y)))(x + b.attn(b.ln_1(x))),
        "MLP 用了精确的 GELU 而不是 QuickGELU": lambda b, x: _block_with(b, x, F.gelu),
        "QuickGELU 忘了 1.702（成了 SiLU）": lambda b, x: _block_with(b, x, lambda t: t * torch.sigmoid(t)),
        "直接调用库里的块 block(x)": lambda b, x: b(x),
        "MLP 直接用库里的 block.mlp（没有自己写 QuickGELU）": lambda b, x: (lambda y: y + b.mlp(b.ln_2(y)))(
            x + b.attn(b.ln_1(x))),
        "激活函数用了库里的 block.mlp.gelu": lambda b, x: _block_with(b, x, b.mlp.gelu),
    }))


# ----------------------------------------------------------------------------- 02.5 encode_image(model, images)
def _encode(m, x, pool="cls", ln_pre=True, ln_post_after_proj=False, grad=True):
    v = m.visual
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
        x = v.embed(x)
        if ln_pre:
            x = v.ln_pre(x)
        for block in v.transformer.resblocks:
            x = block(x)
        x = x[:, 0] if pool == "cls" else x.mean(dim=1)
        return v.ln_post(x @ v.proj) if ln_post_after_proj else v.ln_post(x) @ v.proj


_ENCODE_IMAGE_BUILDS = (_VISION + "VisionTransformer.forward", _VISION + "Transformer.forward",
                        "cnclip_edu.model.clip.CLIP.encode_image", "cnclip_edu.model.clip.CLIP.forward")
_encode_run = guarded(CLIP.encode_image, _ENCODE_IMAGE_BUILDS)
_GRAD_PARAMS = ("visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding",
                "visual.transformer.resblocks.0.attn.in_proj_weight", "visual.ln_pre.weight", "visual.proj")


# the features (no autograd), and the gradients of a weighted sum of them w.r.t. a few visual parameters
_features, _gradients = feature_probes(_encode_run, _GRAD_PARAMS)


def _encode_image_cases():
    big = tiny_clip(seed=21, resolution=32, patch=8, width=32, layers=2, head_width=8)
    small = tiny_clip(seed=22, layers=2)
    x_big, x_small, x_one = images(2, 32, seed=23), images(3, 12, seed=24), images(1, 12, seed=25)
    return [Case("32×32 图、patch 8、宽 32、2 层的 CLIP，2 张图", lambda f: _features(f, big, x_big)),
            Case("12×12 图、patch 4、宽 16、2 层的 CLIP，3 张图", lambda f: _features(f, small, x_small)),
            Case("只有 1 张图 (B = 1)", lambda f: _features(f, small, x_one)),
            Case("反向传播：梯度要能传到 model.visual 的参数", lambda f: _gradients(f, small, x_small))]


def _encode_image_hidden(seed: int):
    rng = random.Random(seed)
    grid, patch, heads = rng.randint(2, 4), rng.randint(2, 5), rng.choice([1, 2, 4])
    m = tiny_clip(seed=seed, resolution=grid * patch, patch=patch, width=8 * heads, layers=rng.randint(1, 3),
                  head_width=8)
    x = images(rng.randint(1, 4), grid * patch, seed=seed + 1)
    return [Case("随机大小的 CLIP 和一批随机图片", lambda f: _features(f, m, x)),
            Case("随机大小的 CLIP：梯度", lambda f: _gradients(f, m, x))]


register(Exercise(
    id="02.5", title="完整的 encode_image(model, images)", points=3,
    hint="CLIP 的 ViT 在进第一个残差块之前多一个 LayerNorm；走完所有块以后只有一个 token 代表整张图；"
         "投影和最后一个 LayerNorm 的先后顺序要对；别用 torch.no_grad() 或 .detach()，否则梯度传不回参数。",
    reference=CLIP.encode_image, needs=("02.1", "02.2", "02.4"),
    cases=_encode_image_cases, hidden=_encode_image_hidden, builds=_ENCODE_IMAGE_BUILDS,
    compare=refuse_shortcuts(),
    mutants=lambda: {
        "忘了 ln_pre": lambda m, x: _encode(m, x, ln_pre=False),
        "对所有 token 取平均，而不是取 [CLS]": lambda m, x: _encode(m, x, pool="mean"),
        "先投影再 ln_post": lambda m, x: _encode(m, x, ln_post_after_proj=True),
        "在 torch.no_grad() 里计算（梯度传不回参数）": lambda m, x: _encode(m, x, grad=False),
        "直接调用库里的 model.visual(images)": lambda m, x: m.visual(x),
        "直接调用库里的 model.encode_image": lambda m, x: m.encode_image(x),
    }))


# ----------------------------------------------------------------------------- 02.6 / 02.7 FLIP random_masking
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
                  "批次里各张图留下的子集不全相同", "换一个随机种子，留下的子集会变")
_FREQUENCY_KEY = "每个 patch 被留下的频率都接近 keep / N"


def _mask_properties(f, B: int, N: int, D: int, ratio: float, seed: int, frequencies: bool = False):
    """What any correct design of random_masking satisfies (plain data): the answer's own convention for
    which random numbers it draws is free here. `frequencies`: also whether every patch is kept about
    keep / N of the time (needs a large batch)."""
    x = _numbered(B, 1 + N, D)
    outs = [_mask_run(f, x, ratio, torch.Generator().manual_seed(s)) for s in (seed, seed + 1)]
    for out in outs:
        if not torch.is_tensor(out):  # the shortcut marker (or something that is no tensor)
            return out
    out, other = outs
    props = {"输出的形状": list(out.shape), "输出的 dtype": str(out.dtype)}
    if out.dim() != 3 or out.shape[0] != B or out.shape[-1] != D or out.shape[1] < 1 or other.shape != out.shape:
        # the same keys as a well-shaped answer (None: not measurable), so the message names the shape first
        return {**props, **{k: None for k in _PROPERTY_KEYS + (_FREQUENCY_KEY,) * frequencies}}
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
        ids.shape[1] in (0, N) or not torch.equal(out, other),
    )))
    if frequencies:
        keep = ids.shape[1]
        counts = torch.zeros(N + 1).index_add_(0, ids.flatten().clamp(0, N), torch.ones(ids.numel()))[1:]
        props[_FREQUENCY_KEY] = bool(((counts / B - keep / N).abs() < 0.05).all())
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


def _first_patches(x, mask_ratio, generator=None):
    keep = int((x.shape[1] - 1) * (1 - mask_ratio))
    return x[:, : 1 + keep]


def _index_not_expanded(x, mask_ratio, generator=None):
    B, L, D = x.shape
    keep = int((L - 1) * (1 - mask_ratio))
    ids = torch.rand(B, L - 1, generator=generator).argsort(dim=1)[:, :keep] + 1
    return torch.cat([x[:, :1, :1], torch.gather(x, 1, ids.unsqueeze(-1))], dim=1)  # only feature 0 of each token


register(Exercise(
    id="02.6", title="FLIP 的随机掩码：你自己的设计（检查性质）", points=2,
    hint="[CLS] 永远排第一；每张图要各自留下 keep 个互不重复的 patch，子集随图、随随机种子而变，"
         "每个 patch 被留下的机会相同；留下的每个 token 要带着它完整的 D 个数。",
    reference=random_masking,
    cases=_mask_property_cases, hidden=_mask_property_hidden, builds=_MASK_BUILDS, compare=refuse_shortcuts(),
    mutants=lambda: {
        "每张图用了同一组随机数（同一个子集）": lambda x, r, g=None: _masking(x, r, g, same_for_all=True),
        "[CLS] 也参与了随机丢弃": lambda x, r, g=None: _masking(x, r, g, cls_in_pool=True),
        "下标忘了 +1（把 [CLS] 当成了第 0 个 patch）": lambda x, r, g=None: _masking(x, r, g, shift=0),
        "有放回地抽 patch（torch.randint，会重复）": _with_replacement,
        "总是留下前 keep 个 patch（不随机）": _first_patches,
        "保留个数四舍五入": lambda x, r, g=None: _masking(x, r, g, count=lambda N, r_: round(N * (1 - r_))),
        "gather 的下标没有沿 D 展开（每个 token 只剩一个数）": _index_not_expanded,
        "直接调用库里的 random_masking": lambda x, r, g=None: random_masking(x, r, g),
    }))


register(Exercise(
    id="02.7", title="FLIP 的 random_masking：按 MAE / FLIP / cn_clip 的约定", points=2,
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
