#!/usr/bin/env bash
# Times dinoreg, PyTorch + transformers (SDPA), ONNX Runtime and OpenVINO on the same rows, in one
# run, so the ratios are comparable; checks every engine's outputs against PyTorch's on the same
# input; prints each ratio and a markdown table (peak RSS of every engine, dinoreg's GFLOP/s and its
# share of the machine's sgemm peak, the CPU and its ISA in the caption).
#
#   scripts/bench_peers.sh                      # the default rows: five DINOv2, three DINOv3
#   scripts/bench_peers.sh --rows small:2048:1 --peers dinoreg,torch --iters 3
#   scripts/bench_peers.sh --rows dinov3-base:512:1 --isa avx2   # the AVX2 paths on an AVX-512 CPU
#   PYTHON=/tmp/ref/bin/python THREADS=2 scripts/bench_peers.sh
#
# Needs a Python with the peers:
#   python3 -m venv .venv && .venv/bin/pip install torch torchvision transformers onnxruntime onnxscript onnx safetensors openvino
#   PYTHON=.venv/bin/python scripts/bench_peers.sh
#
# Random full-size checkpoints (HF layout: Dinov2WithRegistersModel, DINOv3ViTModel) and the ONNX
# exports (torch.onnx.export, dynamo=True, opset 18; the legacy exporter cannot export antialiased
# bicubic) are made once into $DINOREG_BENCH_CACHE (default ~/.cache/dinoreg-bench); ONNX Runtime
# and OpenVINO (f32: INFERENCE_PRECISION_HINT=f32) run the same graph. Each engine runs in its own
# process, so each peak RSS is its own. The machine should be otherwise idle: on a shared machine,
# check `uptime` first and rerun when the load is low. Extra arguments go to `bench_peers.py run`
# (--rows arch:size:batch,..., --peers, --iters, --warmup, --isa native|avx2, --gemm, --no-check);
# DINOREG=path/to/dinoreg skips the cargo build and times that binary.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
CACHE=${DINOREG_BENCH_CACHE:-$HOME/.cache/dinoreg-bench}

if ! missing=$("$PYTHON" - <<'PY'
import importlib.util, sys
need = ["torch", "torchvision", "transformers", "onnxruntime", "onnxscript", "onnx", "safetensors", "openvino"]
gone = [m for m in need if importlib.util.find_spec(m) is None]
print(" ".join(gone))
sys.exit(1 if gone else 0)
PY
); then
    echo "error: $PYTHON lacks ${missing:-the peers}; set PYTHON to a venv made with:" >&2
    echo "  python3 -m venv .venv && .venv/bin/pip install torch torchvision transformers onnxruntime onnxscript onnx safetensors openvino" >&2
    exit 1
fi

if [ -z "${DINOREG:-}" ]; then
    cargo build --release --bin dinoreg
    DINOREG=target/release/dinoreg
fi
echo "load: $(uptime)"
"$PYTHON" scripts/bench_peers.py run \
    --dinoreg "$DINOREG" \
    --cache "$CACHE" \
    --threads "$THREADS" \
    "$@"
echo "load: $(uptime)"
