#!/usr/bin/env bash
# The last step of `bash Scripts/main.sh minilm` (FINETUNE=0 leaves it out there; never part of the
# PP-OCR main job; the tests run 40 steps of it, Tests/FineTuning/test-finetune.sh), or a step of its own after it: fine-tunes
# the factors of the compressed all-MiniLM-L6-v2 by distillation against the original, on the
# calibration text (Debian's fortunes; the docstrings it is evaluated on are never seen), with
# onnxruntime-training's on-device API on the CPU, and scores it beside the original and the compressed
# model. Writes DIR/model.finetuned.onnx (the compressed graph with other values in its factors, so
# the same latency), DIR/finetune.json (settings, times, held-out cosine) and, unless --no-score,
# DIR/finetune.score.json.
# Python/tdtools/finetune.py is the step; Documentation/Performance.md ("Fine-tuning the
# factors") has the figures: on 2 cores, 300 steps take 1 to 3 minutes (0.22–0.65 s a step, quiet to
# shared) for +0.03 mean cosine at macs:0.67 and +0.06 at macs:0.5 on the docstrings; the MiniLM job
# runs 3000 steps with --more-text --every-layer (about 16 minutes) for 0.92 and more.
#
#     bash Scripts/finetune.sh [DIR] [--no-score] [--steps 300] [--lr 1e-4] [--hidden-weight 1] [--batch 16] [--threads 2]
#                              [--more-text] [--every-layer]
#
# --no-score (right after DIR, before the training options) leaves out the scoring and its
# DIR/finetune.score.json (the MiniLM job scores every model in one run of its own).
# DIR (default out/minilm) holds model.onnx, model.compressed.onnx and tokenizer.json. The first run
# creates .cache/venv-train (Scripts/train-venv.sh: about 350 MB from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=out/minilm
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then dir=$1; shift; fi
score=1
if [ "${1:-}" = "--no-score" ]; then score=0; shift; fi
for f in model.onnx model.compressed.onnx tokenizer.json; do
    [ -f "$dir/$f" ] || { echo "finetune: $dir/$f is missing (bash Scripts/main.sh minilm writes it)" >&2; exit 1; }
done
train=$(bash Scripts/train-venv.sh)
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
"$train" -m tdtools.finetune train "$dir/model.onnx" "$dir/model.compressed.onnx" "$dir/tokenizer.json" "$dir/model.finetuned.onnx" \
    --json "$dir/finetune.json" "$@"
[ "$score" = 0 ] || "$python" -m tdtools.finetune score "$dir/tokenizer.json" "$dir/model.onnx" "$dir/model.compressed.onnx" "$dir/model.finetuned.onnx" --json "$dir/finetune.score.json"
