"""Chapter 09: deployment. `export.py` writes the two towers to ONNX (dynamic batch and text length),
`onnx_runner.py` runs them with ONNX Runtime (`OnnxEncoder`: padding trimmed, threads, IO binding),
`optimize.py` saves ONNX Runtime's graph optimisations and makes int8 files, `trt.py` builds and runs
TensorRT engines (GPU only), `quality.py` measures what a deployment costs in accuracy on the toy
world, and `timing.py` is the one timing helper of the benchmarks and notebook 09."""
