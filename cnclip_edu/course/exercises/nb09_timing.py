"""Exercise 09.6 of notebook 09 (deployment): time two functions fairly and say which is faster.

The student writes the timer the chapter's speed tables rest on: untimed warm-up calls, timed calls
taken in turns, medians, and the rule "middle halves overlap -> this run cannot tell". It is checked on
a fake machine: the functions advance a fake clock (`clock`) by scripted costs, so every case is exact
and the same on any computer. The scripts carry the usual mistakes' triggers: a slow first call (no
warm-up), an outlier (mean instead of median), a load that grows halfway through (timing one function
after the other), middle halves that just touch, extremes that overlap while the middle halves do not.
Compared with the library's `deploy.timing.compare_timings`.
"""
from __future__ import annotations

import random
import statistics

from .core import Case, Exercise, register

_MS = 1 / 1024  # one "millisecond" of the fake clock: a power of two, so every sum of costs is exact


class _FakeMachine:
    """A clock that moves only when `fa` or `fb` runs; from call number `heavy_from` on (counting every call
    of both) each call costs `heavy` times more, as when another process starts."""

    def __init__(self, costs_a, costs_b, first_extra=0.0, heavy_from=None, heavy=1):
        self.now, self.calls, self.heavy_from, self.heavy = 0.0, 0, heavy_from, heavy
        self.count = {"a": 0, "b": 0}
        self.fa, self.fb = self._fn("a", costs_a, first_extra), self._fn("b", costs_b, first_extra)

    def clock(self) -> float:
        return self.now

    def _fn(self, name, costs, first_extra):
        def fn():
            i = self.count[name]
            self.count[name] += 1
            cost = costs[i % len(costs)] * _MS + (first_extra * _MS if i == 0 else 0.0)
            if self.heavy_from is not None and self.calls >= self.heavy_from:
                cost *= self.heavy
            self.calls += 1
            self.now += cost
        return fn


def _case(label, costs_a, costs_b, repeat, warmup, first_extra=0.0, heavy_at_round=None, heavy=1) -> Case:
    def run(f):
        heavy_from = None if heavy_at_round is None else 2 * warmup + 2 * heavy_at_round   # a round boundary
        m = _FakeMachine(costs_a, costs_b, first_extra, heavy_from, heavy)
        out = f(m.fa, m.fb, repeat, warmup, clock=m.clock)
        return {"a（每次的秒数）": [float(v) for v in out["a"]], "b（每次的秒数）": [float(v) for v in out["b"]],
                "median_a": float(out["median_a"]), "median_b": float(out["median_b"]),
                "verdict": str(out["verdict"]), "fa、fb 各被调用的次数": [m.count["a"], m.count["b"]]}
    return Case(label, run)


def _cases():
    return [
        _case("a 明显更快，每个函数的第一次调用多花 50 ms（要预热）", [1, 1, 2, 1], [3, 4, 3, 5], repeat=8, warmup=2,
              first_extra=50),
        _case("中位数不同，但中间 50% 重叠", [2, 3, 5, 2, 4], [3, 4, 2, 5, 3], repeat=10, warmup=1),
        _case("一次被别的进程打断的调用（离群值 40 ms）", [1, 1, 40, 1, 1, 1], [2, 2, 2, 3, 2, 2], repeat=6, warmup=1),
        _case("计时到一半时机器变忙，每次调用慢 4 倍（两个函数其实一样快）", [2, 2, 3, 2], [2, 3, 2, 2], repeat=8, warmup=1,
              heavy_at_round=4, heavy=4),
        _case("中间 50% 恰好首尾相接（端点相等也算重叠）", [1, 1, 2, 2], [2, 2, 3, 3], repeat=4, warmup=1),
        _case("最慢的几次重叠，中间 50% 不重叠", [1, 1, 1, 1, 1, 1, 1, 9], [2, 2, 2, 2, 2, 2, 2, 2], repeat=8, warmup=1),
        _case("不预热、只计时一次 (warmup 0, repeat 1)", [3], [2], repeat=1, warmup=0),
    ]


def _hidden(seed: int):
    rng = random.Random(seed)

    def costs(n, lo, hi):
        return [rng.randint(lo, hi) for _ in range(n)]

    r = rng.randint(6, 12)
    x, y, z = sorted(rng.sample(range(1, 10), 3))   # a's upper quartile = y = b's lower quartile
    return [
        _case("两个快慢分明的函数，第一次调用很慢", costs(r, 1, 3), costs(r, 5, 8), repeat=r, warmup=rng.randint(1, 3),
              first_extra=rng.randint(20, 80)),
        _case("两个差不多快的函数", costs(r, 2, 6), costs(r, 2, 6), repeat=r, warmup=rng.randint(1, 3)),
        _case("带一次离群值的计时", costs(r - 1, 1, 2) + [rng.randint(30, 90)], costs(r, 3, 4), repeat=r, warmup=1),
        _case("计时中途机器变忙", costs(4, 2, 3), costs(4, 2, 3), repeat=2 * r, warmup=rng.randint(1, 2),
              heavy_at_round=r, heavy=rng.randint(3, 6)),
        _case("不预热", costs(r, 1, 2), costs(r, 1, 2), repeat=r, warmup=0, first_extra=rng.randint(20, 80)),
        _case("中间 50% 恰好首尾相接", [x, x, y, y], [y, y, z, z], repeat=4 * rng.randint(1, 3), warmup=1),
    ]


def _reference(fa, fb, repeat, warmup, clock):
    from cnclip_edu.deploy.timing import compare_timings

    return compare_timings(fa, fb, repeat=repeat, warmup=warmup, clock=clock)


def _mutants() -> dict:
    import numpy as np

    def rule(a, b):
        (a_lo, a_hi), (b_lo, b_hi) = np.percentile(a, [25, 75]), np.percentile(b, [25, 75])
        if a_hi >= b_lo and b_hi >= a_lo:
            return "分不出"
        return "a 更快" if statistics.median(a) < statistics.median(b) else "b 更快"

    def result(a, b, judge=rule, centre=statistics.median):
        return {"a": a, "b": b, "median_a": centre(a), "median_b": centre(b), "verdict": judge(a, b)}

    def timed(f, clock):
        t0 = clock()
        f()
        return clock() - t0

    def interleaved(fa, fb, repeat, warmup, clock):
        for _ in range(warmup):
            fa()
            fb()
        a, b = [], []
        for _ in range(repeat):
            a.append(timed(fa, clock))
            b.append(timed(fb, clock))
        return a, b

    def no_warmup(fa, fb, repeat, warmup, clock):
        return result(*interleaved(fa, fb, repeat, 0, clock))

    def warmup_timed_too(fa, fb, repeat, warmup, clock):
        return result(*interleaved(fa, fb, repeat + warmup, 0, clock))

    def one_after_the_other(fa, fb, repeat, warmup, clock):
        for _ in range(warmup):
            fa()
            fb()
        a = [timed(fa, clock) for _ in range(repeat)]
        b = [timed(fb, clock) for _ in range(repeat)]
        return result(a, b)

    def mean(fa, fb, repeat, warmup, clock):
        return result(*interleaved(fa, fb, repeat, warmup, clock), centre=statistics.mean)

    def medians_only(fa, fb, repeat, warmup, clock):
        a, b = interleaved(fa, fb, repeat, warmup, clock)
        return result(a, b, judge=lambda a, b: "a 更快" if statistics.median(a) < statistics.median(b) else "b 更快")

    def strict_overlap(fa, fb, repeat, warmup, clock):
        def judge(a, b):
            (a_lo, a_hi), (b_lo, b_hi) = np.percentile(a, [25, 75]), np.percentile(b, [25, 75])
            if a_hi > b_lo and b_hi > a_lo:
                return "分不出"
            return "a 更快" if statistics.median(a) < statistics.median(b) else "b 更快"
        return result(*interleaved(fa, fb, repeat, warmup, clock), judge=judge)

    def min_max(fa, fb, repeat, warmup, clock):
        def judge(a, b):
            if max(a) >= min(b) and max(b) >= min(a):
                return "分不出"
            return "a 更快" if statistics.median(a) < statistics.median(b) else "b 更快"
        return result(*interleaved(fa, fb, repeat, warmup, clock), judge=judge)

    def real_clock(fa, fb, repeat, warmup, clock):
        import time

        return result(*interleaved(fa, fb, repeat, warmup, time.perf_counter))

    return {"不预热": no_warmup, "预热的调用也计了时": warmup_timed_too,
            "先把 fa 计完再计 fb（不轮流）": one_after_the_other, "取平均数而不是中位数": mean,
            "只比中位数，不看中间 50% 是否重叠": medians_only, "端点相等不算重叠": strict_overlap,
            "用最小–最大的范围代替中间 50%": min_max, "不用参数 clock，自己读 time.perf_counter": real_clock}


register(Exercise(
    id="09.6", title="公平地比较两个函数的速度：预热、轮流计时、中位数、中间 50%", points=3,
    hint="想清楚四件事：第一次调用里有一次性的准备工作，不能算进去；机器的负载会在几秒内变化，所以两个函数要轮流计时，"
         "别先计完一个再计另一个；个别被打断的调用会拉高平均数，但拉不动中位数；两个函数中间 50% 的计时范围只要有交点"
         "（端点相等也算），这一次就分不出谁快。时间只从参数 clock 读。",
    reference=_reference, cases=_cases, mutants=_mutants, hidden=_hidden,
    builds=("cnclip_edu.deploy.timing.compare_timings", "cnclip_edu.deploy.timing.time_interleaved",
            "cnclip_edu.deploy.timing.verdict", "cnclip_edu.deploy.timing.overlap",
            "cnclip_edu.deploy.timing.middle_half", "cnclip_edu.deploy.timing.time_samples",
            "cnclip_edu.deploy.timing.timeit"),
))
