#!/usr/bin/env bash
# Every GPU-only check and benchmark of the project, in one go (not yet run on a GPU: no session had one).
#
#   bash bench/run_gpu.sh                 # after `pip install -e '.[dev]'`; add '.[gpu]' for ORT CUDA + TensorRT
#   PYTHON=python3 bash bench/run_gpu.sh  # another interpreter
#
# 1. the tests marked `gpu` (bf16 training with fused AdamW and gradient checkpointing, fp16/bf16
#    feature extraction, TensorRT engines with profiles over batch AND text length, the ORT CUDA
#    provider with IO binding, where installed);
# 2. benchmarks, each writing its own section of docs/benchmarks.md next to the CPU ones:
#    encode (SDPA towers vs cn_clip's attention), train (ours vs cn_clip, ViT-B-16, bf16),
#    course (notebook 06's recipe on one GPU), onnx (PyTorch fp16 vs ORT CUDA fp16 vs TensorRT fp16,
#    only with a CUDA onnxruntime or TensorRT; int8 is a CPU format and is measured by the CPU run);
# 3. notebook 09 with TensorRT on (its executed copy lands in runs/gpu/executed/).
# The onnx step's section (`onnx-cuda`, with the GPU and the date) is what notebook 09 shows as the
# recorded GPU run. Commit docs/benchmarks.md after the run, failures included.
# A step that fails is reported and the others still run; the exit code says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
failed=()
step() {  # step NAME CMD...: run, time, remember failures
    local name=$1; shift
    echo; echo "=== $name: $*"
    local t0=$SECONDS
    "$@" || failed+=("$name")
    echo "=== $name took $((SECONDS - t0)) s"
}

$PY - <<'EOF' || { echo "run_gpu.sh: no CUDA device visible to PyTorch; nothing to do here"; exit 0; }
import importlib.util, sys
import torch
if not torch.cuda.is_available():
    sys.exit(1)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, ort.get_available_providers())
except ImportError:
    print("onnxruntime: not installed")
print("tensorrt:", "installed" if importlib.util.find_spec("tensorrt") else "not installed (TensorRT steps skip)")
EOF

step gpu-tests $PY -m pytest -q -rs -m gpu -p no:cacheprovider tests/test_train.py tests/test_eval_features.py tests/test_trt.py
step encode-fp16 $PY bench/bench_encode.py --device cuda --precision fp16 --batch-sizes 1 32 256
step train-bf16 $PY bench/bench_train.py --device cuda --model ViT-B-16 --batch-size 128 --precision bf16 --steps 20 --rounds 2
step course $PY bench/bench_course.py --device cuda --nproc 1
if $PY -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null \
   || $PY -c "import tensorrt" 2>/dev/null; then
    step onnx $PY bench/bench_onnx.py --device cuda --models course ViT-B-16 --batches 1 32
    step nb09-tensorrt $PY -m cnclip_edu course --notebooks 09 --work-dir runs/gpu -p device cuda -p use_tensorrt True
else
    echo; echo "=== onnx: skipped: neither a CUDA onnxruntime nor tensorrt is installed (pip install '.[gpu]')"
fi

echo
if [ ${#failed[@]} -eq 0 ]; then echo "run_gpu.sh: all steps passed"; else echo "run_gpu.sh: FAILED: ${failed[*]}"; exit 1; fi
