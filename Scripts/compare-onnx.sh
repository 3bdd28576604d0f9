#!/usr/bin/env bash
# Two ONNX models on the same inputs in onnxruntime: output differences and latency (median of
# ≥ 20 runs after a warm-up, one intra-op thread by default). Options: see Python/tdtools/compare.py.
#   bash Scripts/compare-onnx.sh det.onnx det.compressed.onnx --input-shape x=1,3,640,640 --check
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python=$(bash "$here/onnx-venv.sh")
PYTHONPATH="$here/../Python${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m tdtools.compare "$@"
