"""deploy/speed_report.py: the verdict words follow timing.verdict's overlap rule; rows line up."""
from cnclip_edu.course.columns import shown_width
from cnclip_edu.deploy import speed_report as S
from cnclip_edu.deploy.timing import compare_timings, verdict


def test_judge_words_follow_the_overlap_rule():
    fast, slow = [1.0, 1.1, 1.2, 1.0], [2.0, 2.1, 2.2, 2.0]
    assert S.judge(fast, slow) == "更快" and S.judge(slow, fast) == "更慢"
    assert S.judge([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 3.0, 3.0]) == S.CANNOT_TELL      # touching ends overlap
    assert verdict([1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 3.0, 3.0]) == "分不出"


def test_tables_and_lines():
    samples = {(n, t, b): [m * b * (1 + 0.01 * i) for i in range(4)]
               for n, m in (("PyTorch fp32", 2.0), ("ORT fp32", 1.0)) for t in ("image", "text") for b in (1, 32)}
    lines = S.speed_table(samples, ["PyTorch fp32", "ORT fp32"], {"image": "视觉塔", "text": "文本塔"}, [1, 32])
    assert len(lines) == 1 + 4 + 2 + 4 and "2.00x" in lines[1]
    assert len({shown_width(ln) for ln in lines[1:5]}) == 1                             # the rows line up
    ratios = S.ratio_lines(samples, "ORT fp32", "PyTorch fp32", {"image": "视觉塔"}, [1], "是")
    assert ratios == ["  视觉塔 batch  1：是 2.00 倍，更快"]
    tp = S.throughput_lines(samples, ["ORT fp32"], {"image": "视觉塔"}, 1, 32)
    assert tp[0].endswith(S.CANNOT_TELL)                                            # same ms per item


def test_compare_timings_on_a_fake_clock():
    now = [0.0]
    costs = {"a": iter([100, 1, 1, 1, 1]), "b": iter([100, 3, 3, 3, 3])}

    def fn(name):
        def call():
            now[0] += next(costs[name])
        return call

    out = compare_timings(fn("a"), fn("b"), repeat=4, warmup=1, clock=lambda: now[0])
    assert out["a"] == [1, 1, 1, 1] and out["b"] == [3, 3, 3, 3] and out["verdict"] == "a 更快"


def test_fastest_table_uses_the_minimum():
    samples = {("PyTorch fp32", "image", 1): [9.0, 2.0, 30.0, 8.0], ("ORT fp32", "image", 1): [1.0, 20.0, 25.0, 9.0]}
    lines = S.fastest_table(samples, ["PyTorch fp32", "ORT fp32"], {"image": "视觉塔"}, [1])
    assert len(lines) == 2 and "  PyTorch fp32 最快" in lines[0] and "2.00" in lines[1] and "1.00" in lines[1] and lines[1].endswith("2.00x")
    assert shown_width(lines[0]) == shown_width(lines[1])                                # header and row line up
