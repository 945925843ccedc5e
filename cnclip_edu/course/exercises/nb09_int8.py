"""Exercises 09.4 and 09.5 of notebook 09 (deployment): int8 rounding (symmetric quantize, then dequantize)
and a Linear layer as ONNX Runtime's dynamic int8 computes it (u8 x s8 -> int32).

Compared with the library (`deploy.optimize.int8_roundtrip`, `deploy.int8_linear.dynamic_int8_linear`)
on inputs whose edges show the usual mistakes: an all-zero tensor, a negative largest magnitude,
activations all of one sign, an outlier, rows long enough that the sums pass 2**24.
"""
from __future__ import annotations

import random

from .core import Case, Exercise, register


# ----------------------------------------------------------------------------- 09.4 int8 rounding
def _weights():
    import torch

    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, 8, generator=g) * 0.05
    skew = torch.randn(32, generator=g).abs() * 0.01
    skew[3] = -0.2  # the largest magnitude is negative
    return [("一个 16×8 的权重矩阵", w), ("最大绝对值是负数的向量", skew),
            ("全为 0 的张量（缩放系数会是 0）", torch.zeros(4, 6))]


def _roundtrip_mutants() -> dict:
    import torch

    def no_round(w):
        return w / (w.abs().max() / 127) * (w.abs().max() / 127)

    def uses_max_not_absmax(w):
        scale = w.max() / 127
        return torch.round(w / scale).clamp(-127, 127) * scale

    def uses_255(w):
        scale = w.abs().max() / 255
        return torch.round(w / scale).clamp(-127, 127) * scale

    def floor_not_round(w):
        scale = w.abs().max() / 127
        return torch.floor(w / scale).clamp(-127, 127) * scale

    def zero_scale_nan(w):  # right on every tensor but the all-zero one: 0 / 0 -> NaN
        scale = w.abs().max() / 127
        return torch.round(w / scale).clamp(-127, 127) * scale

    return {"没有 round（没有量化）": no_round, "用 max 而不是绝对值的 max": uses_max_not_absmax,
            "除以 255（那是 uint8 的范围）": uses_255, "用 floor 而不是 round": floor_not_round,
            "全为 0 时除以 0（得到 NaN）": zero_scale_nan}


def _reference_roundtrip(w):
    from cnclip_edu.deploy.optimize import int8_roundtrip

    return int8_roundtrip(w)


register(Exercise(
    id="09.4", title="int8 对称量化再还原 (quantize + dequantize)", points=2,
    hint="缩放系数要让绝对值最大的元素（可能是负数）正好落在整数网格的端点上；取整要就近，不是向下；"
         "最后把整数乘回缩放系数，返回浮点张量。全为 0 的张量没有最大值可以定缩放系数：别让它除以 0。",
    reference=_reference_roundtrip,
    cases=lambda: [Case(label, lambda f, w=w: f(w.clone())) for label, w in _weights()],
    mutants=_roundtrip_mutants,
    hidden=lambda seed: [Case(label, lambda f, w=w: f(w.clone())) for label, w in _hidden_weights(seed)],
    builds=("cnclip_edu.deploy.optimize.int8_roundtrip", "cnclip_edu.deploy.int8_linear.quantize_weight"),
))


def _hidden_weights(seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    rows, cols = (int(v) for v in torch.randint(2, 40, (2,), generator=g))
    w = torch.randn(rows, cols, generator=g) * 0.02
    i, j = int(torch.randint(rows, (), generator=g)), int(torch.randint(cols, (), generator=g))
    w[i, j] = -0.3  # the largest magnitude is negative
    return [("一个随机大小的权重矩阵（绝对值最大的是负数）", w), ("一个全为正的权重向量", w.abs().flatten()[:50]),
            ("一个随机大小的全 0 张量", torch.zeros(cols, rows))]


# ----------------------------------------------------------------------------- 09.5 a Linear in dynamic int8
def _linear_inputs(seed: int, n: int, k: int, m: int, kind: str):
    """(x (n, k), weight (m, k), bias (m,)) with the activations of one kind; the largest |weight| is negative."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=g) * 2
    if kind == "positive":
        x = x.abs() + 0.05  # after a ReLU / GELU-like block: nothing below 0
    elif kind == "negative":
        x = -x.abs() - 0.05
    elif kind == "zero":
        x = torch.zeros(n, k)
    elif kind == "outlier":
        x[int(torch.randint(n, (), generator=g)), int(torch.randint(k, (), generator=g))] = 40.0
    elif kind == "large":  # long rows of large same-sign products: |acc| > 2**24, where float32 stops being exact
        x = torch.rand(n, k, generator=g) * 0.5 + 0.5
        return x, torch.rand(m, k, generator=g) * 0.05 + 0.30, torch.randn(m, generator=g) * 0.1
    w = torch.randn(m, k, generator=g) * 0.05
    w[int(torch.randint(m, (), generator=g)), int(torch.randint(k, (), generator=g))] = -0.35
    return x, w, torch.randn(m, generator=g) * 0.1


def _linear_case(label: str, seed: int, n: int, k: int, m: int, kind: str, bias: bool = True) -> Case:
    def run(f):
        x, w, b = _linear_inputs(seed, n, k, m, kind)
        y, acc = f(x, w, b if bias else None)
        return {"y": y, "acc（整数累加）": acc}
    return Case(label, run)


def _linear_cases():
    return [_linear_case("一批正负都有的激活 (5×64) 乘 (16×64) 的权重", 0, 5, 64, 16, "mixed"),
            _linear_case("全为正的激活（比如 GELU 之后）", 1, 4, 32, 8, "positive"),
            _linear_case("全为负的激活", 2, 3, 32, 8, "negative"),
            _linear_case("全为 0 的一批", 3, 2, 16, 4, "zero"),
            _linear_case("一个很大的离群值 (outlier)，没有 bias", 4, 6, 48, 12, "outlier", bias=False),
            _linear_case("很长的一行 (K = 2048)：累加和超过 2**24，float32 不再能精确表示每个整数", 5, 3, 2048, 4, "large")]


def _linear_hidden(seed: int):
    rng = random.Random(seed)
    kinds = [("正负都有的激活，随机大小", "mixed"), ("全为正的激活，随机大小", "positive"),
             ("全为负的激活，随机大小", "negative"), ("带离群值的激活，随机大小", "outlier")]
    return [_linear_case(label, rng.randrange(1 << 30), rng.randint(1, 9), rng.randint(24, 96), rng.randint(1, 20), kind)
            for label, kind in kinds] + [_linear_case("全为 0 的一批，随机大小", rng.randrange(1 << 30),
                                                      rng.randint(1, 4), rng.randint(4, 32), rng.randint(1, 8), "zero"),
                                   _linear_case("很长的一行，累加和超过 2**24，随机大小", rng.randrange(1 << 30),
                                                rng.randint(2, 4), rng.randint(2048, 3072), rng.randint(3, 6), "large")]


def _reference_int8_linear(x, weight, bias):
    from cnclip_edu.deploy.int8_linear import dynamic_int8_linear

    return dynamic_int8_linear(x, weight, bias)


def _int8_linear_mutants() -> dict:
    import torch

    def make(*, range_without_zero=False, per_row=False, symmetric_act=False, forget_zp=False, w_max=False,
             w_255=False, float_acc=False, float_acc_cast=False, uint8_subtract=False, narrow_acc=False,
             zp="round", levels=255):
        def answer(x, weight, bias):
            w_scale = (weight.max() if w_max else weight.abs().max()) / (255 if w_255 else 127)
            w_q = torch.round(weight / w_scale).clamp(-127, 127).to(torch.int8)
            if symmetric_act:  # int8 activations, no zero point: s8 x s8
                x_scale = x.abs().max() / 127
                x_q, zp = torch.round(x / x_scale).clamp(-127, 127).to(torch.int32), torch.tensor(0)
            else:
                dims = dict(dim=1, keepdim=True) if per_row else {}
                lo = x.amin(**dims) if range_without_zero else torch.clamp(x.amin(**dims), max=0.0)
                hi = x.amax(**dims) if range_without_zero else torch.clamp(x.amax(**dims), min=0.0)
                x_scale = (hi - lo) / levels
                x_scale = torch.where(x_scale == 0, torch.ones_like(x_scale), x_scale)
                zp = {"round": lambda: torch.round(-lo / x_scale),      # the integer that 0.0 lands on
                      "trunc": lambda: torch.trunc(-lo / x_scale),      # int(-lo / s): cut, not rounded
                      "sign": lambda: torch.round(lo / x_scale),        # the sign slipped
                      "middle": lambda: torch.full_like(lo, 128.0)}[zp]().clamp(0, 255)   # symmetric habit
                x_q = (torch.round(x / x_scale) + zp).clamp(0, 255).to(torch.uint8)
                zp = zp.to(torch.uint8)
            if forget_zp:
                a = x_q.to(torch.int32)
            elif uint8_subtract:
                a = (x_q - zp).to(torch.int32)  # wraps around below 0
            else:
                a = x_q.to(torch.int32) - zp.to(torch.int32)
            if float_acc:
                acc = a.float() @ w_q.float().T
            elif float_acc_cast:  # exact only while every partial sum stays below 2**24
                acc = (a.float() @ w_q.float().T).round().to(torch.int32)
            elif narrow_acc:
                acc = a.to(torch.int16) @ w_q.to(torch.int16).T  # sums overflow int16
            else:
                acc = (a.to(torch.int64) @ w_q.to(torch.int64).T).to(torch.int32)
            y = acc.to(torch.float32) * (x_scale * w_scale)
            return (y + bias if bias is not None else y), acc
        return answer

    return {"激活的范围没有把 0 包进去（全正或全负的一批才出错）": make(range_without_zero=True),
            "激活按每一行量化，而不是整批一个缩放系数": make(per_row=True),
            "激活也用对称 int8（s8×s8，没有零点）": make(symmetric_act=True),
            "忘了减去零点": make(forget_zp=True),
            "权重的缩放系数用 max 而不是 max|w|": make(w_max=True),
            "权重除以 255（那是 uint8 的级数）": make(w_255=True),
            "在浮点里相乘（acc 不是整数）": make(float_acc=True),
            "在 float32 里累加再转成 int32（和超过 2**24 时丢掉末位）": make(float_acc_cast=True),
            "在 uint8 里减零点（负数回绕成大正数）": make(uint8_subtract=True),
            "用 int16 累加（溢出）": make(narrow_acc=True),
            "零点用 int(−lo / s) 截断，而不是取最近的整数": make(zp="trunc"),
            "零点的符号反了：round(lo / s)": make(zp="sign"),
            "零点固定取 128（uint8 的中点），不看这一批的范围": make(zp="middle"),
            "缩放系数 = 范围 / 256（256 个整数之间只有 255 个间隔）": make(levels=256)}


register(Exercise(
    id="09.5", title="动态 int8 的一层 Linear (u8 × s8 → int32)", points=4,
    hint="权重和练习 09.4 一样。激活：先定区间（它必须包含 0.0，否则 0.0 量化后回不来），区间的两端对上 uint8 的两端；"
         "数一数 256 个整数之间有几个间隔，就知道缩放系数；零点是 0.0 落在的那个整数，它必须是整数，所以要取最近的。"
         "全 0 的一批区间长度为 0，不能去除。相乘前先转成足够宽的整数类型再减零点，累加必须是精确的整数；"
         "把两个还原公式代进 x·wᵀ，两个缩放系数可以提到外面，剩下的就是 acc。bias 可能是 None。",
    reference=_reference_int8_linear,
    cases=_linear_cases,
    mutants=_int8_linear_mutants,
    hidden=_linear_hidden,
    builds=("cnclip_edu.deploy.int8_linear.dynamic_int8_linear", "cnclip_edu.deploy.int8_linear.quantize_activation",
            "cnclip_edu.deploy.int8_linear.quantize_weight"),
))
