"""Exercises of notebook 09 (deployment); each part registers its own when imported:

- nb09_export.py: the export call of a text tower, two dynamic axes (09.1);
- nb09_run.py: a checked ONNX Runtime session run (09.2) and trimming padding (09.3);
- nb09_int8.py: int8 rounding (09.4) and a Linear in dynamic int8, u8 x s8 -> int32 (09.5);
- nb09_timing.py: a fair timing of two functions, warm-up, turns, medians, overlap of middle halves (09.6);
- nb09_tensorrt.py: the TensorRT optimization profile (09.7) and build (09.8), on a recording stand-in
  for `tensorrt` (deploy/trt_recorder.py) where there is no GPU;
- nb09_search.py: search from the two .onnx files alone, preprocessing from their metadata (09.9).

The registry (`core._load_all`) imports only the `nbNN` modules: this one is the notebook's entry.
"""
from . import nb09_export, nb09_int8, nb09_run, nb09_search, nb09_tensorrt, nb09_timing  # noqa: F401  (importing registers)
