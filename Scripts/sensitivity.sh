#!/usr/bin/env bash
# End-to-end sensitivity weights of an ONNX model's compressible nodes (see Python/tdtools/sensitivity.py):
#   bash Scripts/sensitivity.sh MODEL.onnx INPUTS.npz STATS.safetensors WEIGHTS.json [--flops 0.5] [--input-shape N=d,…]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tool="${TENSOR_COMPRESS:-$here/../.build/release/tensor-compress}"
[ -x "$tool" ] || swift build -c release --product tensor-compress --package-path "$here/.." >&2
python=$(bash "$here/onnx-venv.sh")
PYTHONPATH="$here/../Python${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m tdtools.sensitivity "$tool" "$@"
