#!/usr/bin/env bash
# Two ONNX models on the same inputs in onnxruntime: output differences and latency (median of
# ≥ 20 runs after a warm-up, one intra-op thread by default). Options: see Scripts/compare_onnx.py.
#   bash Scripts/compare-onnx.sh det.onnx det.compressed.onnx --input-shape x=1,3,640,640 --check
set -euo pipefail
python=$(bash "$(dirname "$0")/onnx-venv.sh")
exec "$python" "$(dirname "$0")/compare_onnx.py" "$@"
