#!/usr/bin/env bash
# Our full convolutions beside onnxruntime's on the same shapes and thread count:
#   bash Benchmarks/Peers/compare-onnxruntime.sh           # OPENBLAS_NUM_THREADS=1 by default
# Makes its own virtual environment in .cache/venv-onnxruntime (onnxruntime, onnx, numpy from PyPI).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash Scripts/setup.sh
venv=.cache/venv-onnxruntime
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q onnxruntime onnx numpy
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --package-path Benchmarks -c release --product layers-benchmark >&2
mkdir -p .cache
Benchmarks/.build/release/layers-benchmark --json > .cache/layers.json
PYTHONPATH=Python "$venv/bin/python" Benchmarks/Peers/compare_onnxruntime.py .cache/layers.json
