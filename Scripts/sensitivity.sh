#!/usr/bin/env bash
# End-to-end sensitivity weights of an ONNX model's compressible nodes as a JSON file for
# compress --layer-weights (see Python/tdtools/sensitivity.py). calibrate.sh measures the same and
# stores them in the statistics file, where compress --statistics finds them; this is for a file
# without them, or other inputs:
#   bash Scripts/sensitivity.sh MODEL.onnx INPUTS STATS.safetensors WEIGHTS.json [--flops 0.5] [--samples 128] [--batch 32] [--input-shape N=d,…]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="${TENSOR_COMPRESS:-$here/../.build/release/tensor-compress}"
[ -x "$tool" ] || swift build -c release --product tensor-compress --package-path "$here/.." >&2
python=$(bash "$here/onnx-venv.sh")
PYTHONPATH="$here/../Python${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m tdtools.sensitivity "$tool" "$@"
