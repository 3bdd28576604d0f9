#!/usr/bin/env bash
# ONNX conformance: small graphs made with the onnx helper, compressed at full rank by the
# command line, checked with onnx.checker (full_check) and run beside the originals in onnxruntime;
# the statistics file written by tdtools (Python) and read by the command line (Swift); the INT8
# step by onnxruntime's quantizer; then the
# property test: 500 random seeded graphs through simplify and compress (about a minute).
#   bash Tests/ONNXConformance/test-onnx.sh [TOOL]      # TOOL defaults to the debug build of tensor-compress
set -euo pipefail
cd "$(dirname "$0")/../.."
tool="${1:-.build/debug/tensor-compress}"
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
work=$(mktemp -d "${TMPDIR:-/tmp}/onnx-conformance.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$python" Tests/ONNXConformance/onnx_conformance.py "$tool" "$work"
# The comparison tool on one pair: outputs within 1e-4, both models pass the full checker, latency printed.
bash Scripts/compare-onnx.sh "$work/tucker2-explicit-pads.onnx" "$work/tucker2-explicit-pads.compressed.onnx" --check --tolerance 1e-4
# The statistics file layout from both sides: written by tdtools.calibrate, read back in Python
# against a NumPy reference, and consumed by `compress --statistics` for every layer.
"$python" Tests/ONNXConformance/statistics_format.py "$tool" "$work/statistics"
# The INT8 step (tdtools.quantize, onnxruntime's quantizer) on small models before and after compress.
"$python" Tests/ONNXConformance/quantize_check.py "$tool" "$work/quantize"
# Random graphs (Conv/Gemm/MatMul, scale/shift chains before and after convolutions) through simplify,
# compress and compress --simplify: every output passes the full checker and matches within 1e-4.
"$python" Tests/ONNXConformance/onnx_property.py "$tool" --count 500 --seed 1
