#!/usr/bin/env bash
# Silero VAD end to end (bash Scripts/main.sh silero): silero_vad.onnx as the PyPI wheel silero-vad
# 6.2.3 ships it (MIT; every layer inside an If on the sample rate, 1-D convolutions and an LSTM),
# speech that espeak-ng reads from Debian's fortunes (calibration: "literature" and "wisdom" in the
# en-us voice; evaluation: "science" and "computers" in the en-gb voice, so other words and another
# voice), input statistics of the branch that 16 kHz input takes (calibrate.sh inlines an If whose
# condition is the same on every input), compressed at --budget macs:0.67 with the statistics (the
# 8 kHz branch, which no calibration input takes, is left as it is and outside the budget, as
# compress does by default with layers the statistics do not name; --uncalibrated data-free, which
# compresses them from their weights alone, broke the 8 kHz path) and, beside, --data-free; onnxruntime's dynamic INT8 quantization of the original and of the
# compressed model beside; each scored by its speech/non-speech decisions on 32 ms chunks against
# the original's, with onnxruntime latency per chunk; the original and the compressed model also
# at 8 kHz (the evaluation speech resampled), the branch no calibration input takes.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${BUDGET:-0.67}"
bash Scripts/setup.sh --speech
echo "main: building tensor-compress (release; a few minutes the first time)" >&2
swift build -c release --product tensor-compress -q >&2
tool=.build/release/tensor-compress
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
models=.cache/models/silero
out=out/silero
mkdir -p "$models" "$out"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ ! -f "$models/silero_vad.onnx" ] || [ ! -f "$models/silero_vad_16k_op15.onnx" ]; then
    [ -n "$(ls "$models"/wheel/silero_vad-6.2.3-*.whl 2>/dev/null)" ] \
        || python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest "$models/wheel" "silero-vad==6.2.3" >&2
    python3 - "$models" <<'PY'
import glob, os, sys, zipfile
target = sys.argv[1]
with zipfile.ZipFile(sorted(glob.glob(os.path.join(target, "wheel", "silero_vad-6.2.3-*.whl")))[-1]) as archive:
    for name in ("silero_vad.onnx", "silero_vad_16k_op15.onnx"):
        with archive.open("silero_vad/data/" + name) as source, open(os.path.join(target, name + ".part"), "wb") as f:
            f.write(source.read())
        os.replace(os.path.join(target, name + ".part"), os.path.join(target, name))
PY
fi
model="$models/silero_vad.onnx"
shapes=(--input-shape input=1,576 --input-shape state=2,1,128 --input-shape sr=)
echo "main: speech from espeak-ng (calibration and evaluation: other texts, other voices)" >&2
"$python" -m tdtools.evaluate.silero audio --split calibration --seconds 120 --out "$out/calibration.npy"
"$python" -m tdtools.evaluate.silero audio --split evaluation --seconds 120 --out "$out/evaluation.npy"
"$python" -m tdtools.evaluate.silero inputs --model "$model" --audio "$out/calibration.npy" --out "$out/calibration.npz"
TENSOR_COMPRESS="$tool" bash Scripts/calibrate.sh "$model" "$out/calibration.npz" "$out/stats.safetensors" --batch 64 >&2
echo "main: $tool compress $model ${shapes[*]} --statistics $out/stats.safetensors --budget macs:$budget" >&2
"$tool" compress "$model" --output "$out/silero_vad.compressed.onnx" "${shapes[@]}" --statistics "$out/stats.safetensors" \
    --budget "macs:$budget" --quiet --report "$out/report.json" | tail -1 >&2
"$tool" compress "$model" --output "$out/silero_vad.data-free.onnx" "${shapes[@]}" --budget "macs:$budget" --data-free \
    --quiet --report "$out/data-free.report.json" | tail -1 >&2
rm -f "$out/quantize.log"
# INT8 by onnxruntime's dynamic quantizer, as the model ships (no pre-processing: its compute is
# inside an If, which the quantizer does not enter), alone and after the low-rank compression.
for m in "$model" "$out/silero_vad.compressed.onnx"; do
    "$python" -m tdtools.quantize dynamic "$m" "$out/$(basename "$m" .onnx).int8.onnx" --no-preprocess --ops all >> "$out/quantize.log" 2>&1 \
        || { tail -5 "$out/quantize.log" >&2; exit 1; }
done
"$python" -m tdtools.evaluate.silero evaluate --audio "$out/evaluation.npy" "$model" "$out/silero_vad.compressed.onnx" "$out/silero_vad.data-free.onnx" \
    "$out/silero_vad.int8.onnx" "$out/silero_vad.compressed.int8.onnx" --json "$out/evaluation.json"
# The 8 kHz branch, which the calibration does not reach: the same speech resampled, as the
# model's wrapper feeds it at that rate.
"$python" -m tdtools.evaluate.silero evaluate --audio "$out/evaluation.npy" --rate 8000 "$model" "$out/silero_vad.compressed.onnx" \
    --json "$out/evaluation.8k.json"
rm -f "$out/calibration.npz"
# The wheel's other 16 kHz file, silero_vad_16k_op15.onnx (opset 15: the convolutions in the main
# graph, the LSTM inside an If on the batch size), calibrated, compressed and scored the same way.
op15="$models/silero_vad_16k_op15.onnx"
echo "main: the same for $op15" >&2
"$python" -m tdtools.evaluate.silero inputs --model "$op15" --audio "$out/calibration.npy" --out "$out/op15.calibration.npz"
TENSOR_COMPRESS="$tool" bash Scripts/calibrate.sh "$op15" "$out/op15.calibration.npz" "$out/op15.stats.safetensors" --batch 64 >&2
"$tool" compress "$op15" --output "$out/silero_vad_16k_op15.compressed.onnx" "${shapes[@]}" --statistics "$out/op15.stats.safetensors" \
    --budget "macs:$budget" --quiet --report "$out/op15.report.json" | tail -1 >&2
"$python" -m tdtools.evaluate.silero evaluate --audio "$out/evaluation.npy" "$op15" "$out/silero_vad_16k_op15.compressed.onnx" \
    --json "$out/evaluation.op15.json"
rm -f "$out/op15.calibration.npz"
