"""Chapter 09: deployment. `export.py` writes the two towers to ONNX (dynamic batch), `onnx_runner.py`
runs them with ONNX Runtime (`OnnxEncoder`), `trt.py` builds and runs TensorRT engines (GPU only)."""
