#!/usr/bin/env bash
# Quality and onnxruntime latency against the MAC budget, data-free and data-aware side by side,
# for PP-OCRv4 (Tucker-2 and CP for k×k convolutions; SVD for 1×1 convolutions and MatMuls) and
# all-MiniLM-L6-v2 (data-free, data-aware uniform, and the default data-aware sequence: greedy
# weighted by the sensitivities in the statistics file; evaluated on text of another domain than
# the calibration text). Run after the main jobs (bash Scripts/main.sh; bash Scripts/main.sh
# minilm), whose statistics files it reuses. Prints tables; JSON in out/curves/.
#   [MODELS="ppocr minilm"] bash Scripts/curves.sh [BUDGET …]        # default 0.9 0.8 0.67 0.5 0.4 0.3
set -euo pipefail
cd "$(dirname "$0")/.."
budgets=("${@:-0.9 0.8 0.67 0.5 0.4 0.3}")
read -r -a budgets <<< "${budgets[*]}"
tool=.build/release/tensor-compress
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
models=.cache/models/ppocr-v4
out=out/curves
mkdir -p "$out"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
read -r -a models_run <<< "${MODELS:-ppocr minilm}"
required=()
for m in "${models_run[@]}"; do
    case "$m" in
        ppocr) required+=(out/ppocr/det.stats.safetensors out/ppocr/rec.stats.safetensors) ;;
        minilm) required+=(out/minilm/stats.safetensors out/minilm/model.onnx out/minilm/tokenizer.json) ;;
        *) echo "curves: MODELS=${MODELS:-}: expected ppocr and/or minilm" >&2; exit 1 ;;
    esac
done
for f in "${required[@]}"; do
    [ -f "$f" ] || { echo "curves: $f is missing; run bash Scripts/main.sh and bash Scripts/main.sh minilm first" >&2; exit 1; }
done
ppocr=(); [[ " ${models_run[*]} " == *" ppocr "* ]] && ppocr=(det rec)
for m in "${ppocr[@]}"; do
    if [ "$m" = det ]; then shape=x=1,3,640,640; else shape=x=1,3,48,320; fi
    # The compressed models are simplified (--simplify); the original simplified alone is the
    # second model, so that speed-ups are printed against both.
    "$tool" simplify "$models/$m.onnx" --output "$out/$m.simplified.onnx" > /dev/null
    paths=("$models/$m.onnx" "$out/$m.simplified.onnx"); reports=()
    for b in "${budgets[@]}"; do
        for conv in tucker2 cp; do
            for data in free aware; do
                name="$out/$m.$conv.$data.$b"
                extra=(--data-free); [ "$data" = aware ] && extra=(--statistics "out/ppocr/$m.stats.safetensors")
                "$tool" compress "$models/$m.onnx" --output "$name.onnx" --input-shape "$shape" --conv "$conv" "${extra[@]}" \
                    --budget "macs:$b" --simplify --quiet --report "$name.json" > /dev/null
                paths+=("$name.onnx"); reports+=("$name.json")
            done
        done
    done
    "$python" -m tdtools.evaluate.ocr evaluate --simplified "--$m" "${paths[@]}" "--$m-reports" "${reports[@]}" --json "$out/$m.json" > "$out/$m.txt"
    cat "$out/$m.txt"
done
[[ " ${models_run[*]} " == *" minilm "* ]] || exit 0
paths=(out/minilm/model.onnx); reports=()
shapes=(--input-shape input_ids=1,64 --input-shape attention_mask=1,64 --input-shape token_type_ids=1,64)
for b in "${budgets[@]}"; do
    "$tool" compress out/minilm/model.onnx --output "$out/minilm.free.$b.onnx" "${shapes[@]}" --budget "macs:$b" --data-free --quiet --report "$out/minilm.free.$b.json" > /dev/null
    "$tool" compress out/minilm/model.onnx --output "$out/minilm.uniform.$b.onnx" "${shapes[@]}" --statistics out/minilm/stats.safetensors \
        --budget "macs:$b" --allocation uniform --quiet --report "$out/minilm.uniform.$b.json" > /dev/null
    "$tool" compress out/minilm/model.onnx --output "$out/minilm.aware.$b.onnx" "${shapes[@]}" --statistics out/minilm/stats.safetensors \
        --budget "macs:$b" --quiet --report "$out/minilm.aware.$b.json" > /dev/null
    paths+=("$out/minilm.free.$b.onnx" "$out/minilm.uniform.$b.onnx" "$out/minilm.aware.$b.onnx")
    reports+=("$out/minilm.free.$b.json" "$out/minilm.uniform.$b.json" "$out/minilm.aware.$b.json")
done
"$python" -m tdtools.evaluate.minilm evaluate out/minilm/tokenizer.json "${paths[@]}" --reports "${reports[@]}" --json "$out/minilm.json" | tee "$out/minilm.txt"
