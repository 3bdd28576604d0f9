#!/usr/bin/env bash
# Input statistics of every compressible node of an ONNX model, from onnxruntime runs (the file of
# compress --statistics; Documentation/StatisticsFormat.md):
#   bash Scripts/calibrate.sh MODEL.onnx INPUTS STATS.safetensors [--batch 8] [--batch-axis NAME=AXIS] [--patch-limit 4096] [--ctc-output NAME]
#                             [--no-sensitivity] [--no-output-metrics]
# Then each node's end-to-end sensitivity and each Gemm/MatMul node's end-to-end output metric (with
# onnxruntime-training, whose environment Scripts/train-venv.sh creates on first use).
# INPUTS: an .npz with one array per graph input (first axis the samples; constants/NAME for inputs fed as they are),
# or a directory of .npz feeds, one complete feed each. See Python/tdtools/calibrate.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="${TENSOR_COMPRESS:-$here/../.build/release/tensor-compress}"
if [ ! -x "$tool" ]; then
    swift build -c release --product tensor-compress --package-path "$here/.." >&2
fi
python=$(bash "$here/onnx-venv.sh")
# The output metrics need onnxruntime-training, in an environment of its own: calibrate runs this
# script for it (created on first use, about 350 MB) when the model has Gemm or MatMul nodes.
export TDTOOLS_TRAINING_ENV="$here/train-venv.sh"
PYTHONPATH="$here/../Python${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m tdtools.calibrate "$tool" "$@"
