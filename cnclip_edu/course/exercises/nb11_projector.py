"""Exercise 11.3 of notebook 11 (from CLIP to a chat model that sees): the MLP projector, InternVL's `mlp1`.

The student builds `mlp_projector(in_dim, out_dim)`: an `nn.Sequential` of LayerNorm(in) -> Linear(in, out) ->
GELU -> Linear(out, out), the exact layout of InternVL's `mlp1`, whose checkpoint keys are `mlp1.0.*` (the
LayerNorm), `mlp1.1.*` and `mlp1.3.*` (the two Linear layers; the GELU at 2 has no weights). A case loads
random weights under those keys (strictly, as a real checkpoint loads) and runs tokens through the module; the
reference is the library's `MLPProjector`, its submodules in that order. A missing LayerNorm, a LayerNorm after
the first Linear or a missing GELU cannot take the weights; ReLU for GELU, the tanh approximation of GELU or an
extra non-linearity at the end change the output.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 11.3 the MLP projector
def _projector_reference(in_dim, out_dim):
    from torch import nn

    from cnclip_edu.mllm.projector import MLPProjector

    m = MLPProjector(in_dim, out_dim)
    return nn.Sequential(m.norm, m.fc1, m.act, m.fc2)   # mlp1's layout: 0 LayerNorm, 1 Linear, 2 GELU, 3 Linear


def _weights(in_dim: int, out_dim: int, seed: int) -> dict:
    """Random weights under InternVL's mlp1 keys (LayerNorm gain and bias away from 1 and 0, so both count)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)   # noqa: E731
    return {"0.weight": 1 + 0.5 * r(in_dim), "0.bias": 0.5 * r(in_dim),
            "1.weight": r(out_dim, in_dim) / in_dim ** 0.5, "1.bias": 0.5 * r(out_dim),
            "3.weight": r(out_dim, out_dim) / out_dim ** 0.5, "3.bias": 0.5 * r(out_dim)}


def _run(f, in_dim: int, out_dim: int, shape: tuple, seed: int):
    """Build the answer, load mlp1-style weights strictly, project tokens of scale 3 and mean 2 (as ViT features are
    not standardised: a LayerNorm that is missing shows)."""
    import torch

    mlp = f(in_dim, out_dim)
    mlp.load_state_dict(_weights(in_dim, out_dim, seed), strict=True)
    x = 2 + 3 * torch.randn(*shape, in_dim, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return mlp(x)


def _projector_cases():
    return [Case("课程的尺寸：2 个图块 × 4 个 token，512 → 128", lambda f: _run(f, 512, 128, (2, 4), 1)),
            Case("InternVL 的比例缩小：64 → 32，一个 token", lambda f: _run(f, 64, 32, (1,), 2)),
            Case("输入比输出窄：8 → 16，3 个图块 × 4 个 token", lambda f: _run(f, 8, 16, (3, 4), 3))]


def _projector_hidden(seed: int):
    rng = random.Random(seed)
    dims = [(4 * rng.randint(2, 32), rng.randint(4, 64)) for _ in range(2)]
    s = rng.randint(0, 10**6)
    return [Case("随机的宽度", lambda f, d=d, k=k: _run(f, d[0], d[1], (2, 4), s + 2 * k)) for k, d in enumerate(dims)]


def _projector_mistake(kind: str):
    def mlp_projector(in_dim, out_dim):
        from torch import nn

        if kind == "no_norm":
            return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        if kind == "norm_after":
            return nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        if kind == "no_act":
            return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), nn.Linear(out_dim, out_dim))
        act = {"relu": nn.ReLU(), "tanh_gelu": nn.GELU(approximate="tanh")}.get(kind, nn.GELU())
        layers = [nn.LayerNorm(in_dim), nn.Linear(in_dim, out_dim), act, nn.Linear(out_dim, out_dim)]
        if kind == "act_at_end":
            layers.append(nn.GELU())
        return nn.Sequential(*layers)
    return mlp_projector


register(Exercise(
    id="11.3", title="MLP 投影器 (InternVL 的 mlp1)：LayerNorm → Linear → GELU → Linear", points=2,
    hint="nn.Sequential 里依次放四个模块：LayerNorm(in_dim)（先把 ViT 特征归一化，它作用在输入的宽度上）、"
         "Linear(in_dim, out_dim)、GELU()、Linear(out_dim, out_dim)。顺序就是 InternVL 检查点的键名："
         "0 是 LayerNorm，1、3 是两个线性层，2 是没有权重的 GELU。常见错误：漏掉 LayerNorm、把它放在第一个线性层之后、"
         "用 ReLU 或 tanh 近似的 GELU 代替 GELU、在最后一个线性层后面再加一个激活函数。",
    reference=_projector_reference,
    cases=_projector_cases,
    hidden=_projector_hidden,
    builds=("cnclip_edu.mllm.projector.MLPProjector",),
    mutants=lambda: {
        "漏掉 LayerNorm": _projector_mistake("no_norm"),
        "LayerNorm 放在第一个线性层之后": _projector_mistake("norm_after"),
        "漏掉 GELU（两个线性层直接相连）": _projector_mistake("no_act"),
        "用 ReLU 代替 GELU": _projector_mistake("relu"),
        "用 tanh 近似的 GELU（InternVL 用的是精确的 nn.GELU()）": _projector_mistake("tanh_gelu"),
        "最后一个线性层后面又加了 GELU": _projector_mistake("act_at_end"),
    },
))
