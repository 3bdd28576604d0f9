#!/usr/bin/env bash
# The fine-tuning step end to end, short: all-MiniLM-L6-v2 exported to ONNX, compressed data-free at
# --budget macs:0.67 (the most room to recover, and no calibration run), its factors trained for 40
# steps by Scripts/finetune.sh (onnxruntime-training in .cache/venv-train, created on first use: about
# 350 MB from PyPI), then checked in the project's onnxruntime (finetune_check.py): the held-out
# quotations' cosine rose by at least 0.02, only the factors' values changed, and the model passes
# onnx's full checker and gives finite unit-norm embeddings closer to the original's than before.
# Then tdtools.gradients (calibrate's output metrics) against hand-computed gradients, and calibrate.sh with
# them on a few quotations (calibrate_metrics_check.py).
#   bash Tests/FineTuning/test-finetune.sh [TOOL]      # TOOL defaults to the debug build of tensor-compress
set -euo pipefail
cd "$(dirname "$0")/../.."
tool="${1:-.build/debug/tensor-compress}"
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
work=$(mktemp -d "${TMPDIR:-/tmp}/finetune-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
bash Scripts/export-minilm.sh "$work" > /dev/null
"$tool" compress "$work/model.onnx" --output "$work/model.compressed.onnx" --input-shape input_ids=1,64 \
    --input-shape attention_mask=1,64 --input-shape token_type_ids=1,64 --budget macs:0.67 --data-free --quiet > /dev/null
bash Scripts/finetune.sh "$work" --no-score --steps 40 --every-layer --log-every 40 --holdout 64
"$python" Tests/FineTuning/finetune_check.py "$work"
# The output metrics of calibrate (tdtools.gradients, onnxruntime-training) against hand-computed gradients.
"$(bash Scripts/train-venv.sh)" Tests/FineTuning/gradients_check.py
# calibrate.sh with its output metrics (onnxruntime-training) on 48 quotations, then compress reading them.
"$python" -m tdtools.evaluate.minilm inputs "$work/tokenizer.json" --split calibration --count 48 --out "$work/calibration.npz" > /dev/null
TENSOR_COMPRESS="$tool" bash Scripts/calibrate.sh "$work/model.onnx" "$work/calibration.npz" "$work/stats.safetensors" --batch 16 \
    --no-sensitivity --sensitivity-samples 32
"$python" Tests/FineTuning/calibrate_metrics_check.py "$tool" "$work"
