"""deploy/recorded_onnx.py reads bench_onnx.py's section of docs/benchmarks.md (notebook 09, appendix B)."""
from cnclip_edu.deploy.recorded_onnx import course_row, io_binding_changes, onnx_record
from cnclip_edu.deploy.timing import recorded_benchmark

SECTION = """## ONNX export

Command: `python bench/bench_onnx.py --threads 1` (git abc, 2026-12-01, 5 s in all). Machine: AMD EPYC, 2 cores visible, torch 2.1 (1 threads), no GPU. PyTorch and ONNX Runtime both ran with 1 CPU thread(s).

Text batches: a bigger batch runs cut to its longest caption (28 tokens) in the ONNX graph.

| model | tower | batch | ORT fp32 | ORT fp32 IO binding | ORT int8 |
|---|---|---|---|---|---|
| course | image | 1 | 3.50x | 3.85x | 5.00x |
| course | text | 32 | 0.40x | - | 0.90x |

| course model | t2i_r1 | zs_shape_acc |
|---|---|---|
| PyTorch fp32 | 0.4690 | 0.7500 |
| ORT fp32 | 0.4690 | 0.7500 |
| ORT int8 | 0.4650 | 0.7500 |"""


def test_reads_every_field():
    rec = onnx_record(SECTION)
    assert (rec["date"], rec["machine"], rec["threads"]) == ("2026-12-01", "AMD EPYC, 2 cores visible", "1")
    assert rec["command"] == "python bench/bench_onnx.py --threads 1" and rec["longest_caption"] == 28
    assert rec["fp32_scores"] == {"t2i_r1": 0.469, "zs_shape_acc": 0.75}
    assert course_row(rec["rows"], "text", 32)["ORT int8"] == "0.90x" and course_row(rec["rows"], "text", 1) is None
    (label, change), = io_binding_changes(rec["rows"])
    assert label == "course image batch 1" and abs(change - (3.50 / 3.85 - 1)) < 1e-12


def test_absent_section_and_the_real_record():
    assert onnx_record(None) is None
    real = recorded_benchmark("onnx")
    if real is not None:                       # a source checkout: the committed record parses
        rec = onnx_record(real)
        assert rec["rows"] and rec["fp32_scores"] and rec["date"] != "?"


def test_course_lines_name_only_the_recorded_cells():
    from cnclip_edu.deploy.recorded_onnx import course_lines
    rows = onnx_record(SECTION)["rows"]
    lines = course_lines(rows, {"image": "视觉塔", "text": "文本塔"}, [1, 32])
    assert lines == ["  视觉塔 batch  1：ORT fp32 3.50x，ORT int8 5.00x", "  文本塔 batch 32：ORT fp32 0.40x，ORT int8 0.90x"]
