#!/usr/bin/env bash
# Times dinoreg, PyTorch + transformers (SDPA) and ONNX Runtime on the same rows, in one run, so
# the ratios are comparable, and prints each ratio and a markdown table (with peak RSS).
#
#   scripts/bench_peers.sh                      # the five default rows
#   scripts/bench_peers.sh --rows small:2048:1 --peers dinoreg,torch --iters 3
#   PYTHON=/tmp/ref/bin/python THREADS=2 scripts/bench_peers.sh
#
# Needs a Python with the peers:
#   python3 -m venv .venv && .venv/bin/pip install torch transformers onnxruntime onnxscript onnx safetensors
#   PYTHON=.venv/bin/python scripts/bench_peers.sh
#
# Random full-size checkpoints (HF layout) and the ONNX exports (torch.onnx.export, dynamo=True,
# opset 18; the legacy exporter cannot export antialiased bicubic) are made once into
# $DINOREG_BENCH_CACHE (default ~/.cache/dinoreg-bench). Each peer runs in its own process, so
# each peak RSS is its own. The machine should be otherwise idle: on a shared machine, check
# `uptime` first and rerun when the load is low. Extra arguments go to `bench_peers.py run`
# (--rows arch:size:batch,..., --peers, --iters, --warmup).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
THREADS=${THREADS:-$(nproc)}
CACHE=${DINOREG_BENCH_CACHE:-$HOME/.cache/dinoreg-bench}

if ! "$PYTHON" -c "import torch, transformers, onnxruntime, onnxscript, onnx, safetensors" 2>/dev/null; then
    echo "error: $PYTHON lacks the peers; set PYTHON to a venv made with:" >&2
    echo "  python3 -m venv .venv && .venv/bin/pip install torch transformers onnxruntime onnxscript onnx safetensors" >&2
    exit 1
fi

cargo build --release --bin dinoreg
echo "load: $(uptime)"
"$PYTHON" scripts/bench_peers.py run \
    --dinoreg target/release/dinoreg \
    --cache "$CACHE" \
    --threads "$THREADS" \
    "$@"
echo "load: $(uptime)"
