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


def _three_runners():
    return {(n, t, b): [m * b * (1 + 0.01 * i) for i in range(4)]
            for n, m in (("PyTorch fp32", 3.0), ("ORT fp32", 1.5), ("ORT int8", 1.0))
            for t in ("image", "text") for b in (1, 32)}


TOWERS = {"image": "视觉塔", "text": "文本塔"}


def test_report_holds_every_table():
    lines = S.report(_three_runners(), ["PyTorch fp32", "ORT fp32", "ORT int8"], TOWERS, [1, 32])
    assert "  视觉塔 batch  1：int8 是 fp32 速度的 1.50 倍，更快" in lines
    assert "  文本塔 batch 32：ONNX Runtime 是 PyTorch 速度的 2.00 倍，更快" in lines
    assert any(ln.startswith("每格最快的一次") for ln in lines)


def test_ratio_span():
    samples = _three_runners()
    assert S.ratio_span(samples, "ORT int8", "ORT fp32", TOWERS, [1, 32]) == "1.50 倍（4 格里 4 格分得开）"
    assert S.ratio_span(samples, "ORT fp32", "PyTorch fp32", TOWERS, [32]) == "2.00 倍（2 格里 2 格分得开）"
    samples[("ORT int8", "text", 32)] = [v / 2 for v in samples[("ORT int8", "text", 32)]]
    assert S.ratio_span(samples, "ORT int8", "ORT fp32", TOWERS, [1, 32]) == "1.50–3.00 倍（4 格里 4 格分得开）"
    samples[("ORT int8", "image", 1)] = samples[("ORT fp32", "image", 1)]                 # the same times: overlap
    assert S.ratio_span(samples, "ORT int8", "ORT fp32", TOWERS, [1, 32]).endswith("（4 格里 3 格分得开）")


def test_padding_split_factors_and_verdicts():
    ways = {"pt52": [30.0, 31, 32, 33], "pt_trim": [10.0, 11, 12, 13], "ort_trim": [5.0, 6, 12, 13],
            "pt_unpad": [6.0, 7, 8, 9]}
    split = S.padding_split(ways, ([10.0, 10, 10, 10], [5.0, 5, 5, 5]))
    assert split[0].endswith("  分得开") and "2.74" in split[0]          # 31.5 / 11.5
    assert split[3].endswith("分不出") and "0.83" in split[3]            # 7.5 / 9: the middle halves overlap
    assert "1.28" in split[4] and "0.65" in split[5]                       # 11.5 / 9 and 7.5 / 11.5: 1.28 x 0.65 = 0.83
    assert split[-1].endswith("ONNX Runtime 更快") and "2.00" in split[-1]
    assert len(S.padding_split(ways)) == len(split) - 1                   # without section 6's pair
