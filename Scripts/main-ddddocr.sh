#!/usr/bin/env bash
# ddddocr's captcha recogniser end to end (bash Scripts/main.sh ddddocr): common.onnx of the PyPI
# wheel ddddocr 1.6.1 (MIT; a CNN, a bidirectional LSTM of hidden size 512, a Gemm 1024 → 8210 and
# CTC; input1 [1, 1, 64, width]), on captchas rendered from text written by others
# (tdtools.evaluate.captcha: calibration from words of Debian's fortunes in DejaVuSans-Bold with
# dots; evaluation from words of the Python standard library's docstrings in DejaVuSerif with
# lines and a wave). Input statistics in onnxruntime (calibrate.sh on a directory of feeds, one
# captcha each: the widths differ and the batch is fixed at 1), compressed at --budget macs:0.67
# with the statistics and, beside, --data-free; onnxruntime's dynamic INT8 quantization of the
# original and of the compressed model; every model scored against the rendered text and against
# the original's strings, with onnxruntime latency (one intra-op thread).
# The per-layer tables are in out/ddddocr/*.layers.txt, `inspect` in out/ddddocr/inspect.txt.
# Every candidate layer that `compress` lists is handled without a list of names here: a layer
# that a later tensor-compress can compress (the LSTM's input projection) gets its statistics from
# calibrate.sh, its factors from compress and, as a MatMul, INT8 from the dynamic quantizer.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${BUDGET:-0.67}"
width="${WIDTH:-192}"   # the input width of the MAC counts: the median width of the captchas is about 190
bash Scripts/setup.sh --data
echo "main: building tensor-compress (release; a few minutes the first time)" >&2
swift build -c release --product tensor-compress -q >&2
tool=.build/release/tensor-compress
python=$(bash Scripts/onnx-venv.sh)
export PYTHONPATH="$PWD/Python${PYTHONPATH:+:$PYTHONPATH}"
models=.cache/models/ddddocr
out=out/ddddocr
mkdir -p "$models" "$out"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
if [ ! -f "$models/common.onnx" ] || [ ! -f "$models/charset.json" ]; then
    echo "main: fetching ddddocr 1.6.1 (PyPI wheel, 76 MB) once" >&2
    python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest "$models/wheel" "ddddocr==1.6.1" >&2
    # The model and its charset (CHARSET_BETA of ddddocr/charsets.py, read as a literal: nothing of
    # the package is imported).
    python3 - "$models" <<'PY'
import ast, glob, json, os, sys, zipfile
target = sys.argv[1]
with zipfile.ZipFile(sorted(glob.glob(os.path.join(target, "wheel", "ddddocr-1.6.1-*.whl")))[-1]) as archive:
    tree = ast.parse(archive.read("ddddocr/charsets.py").decode("utf-8"))
    charset = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "CHARSET_BETA")
    with open(os.path.join(target, "charset.json"), "w", encoding="utf-8") as f:
        json.dump(charset, f, ensure_ascii=False)
    with archive.open("ddddocr/common.onnx") as source, open(os.path.join(target, "common.onnx.part"), "wb") as f:
        f.write(source.read())
os.replace(os.path.join(target, "common.onnx.part"), os.path.join(target, "common.onnx"))
print(f"main: {target}/common.onnx and charset.json ({len(charset)} classes)", file=sys.stderr)
PY
    rm -rf "$models/wheel"
fi
model="$models/common.onnx"
shape=(--input-shape "input1=1,1,64,$width")
"$tool" inspect "$model" "${shape[@]}" > "$out/inspect.txt"
echo "main: inspect: $(tail -1 "$out/inspect.txt") (the table in $out/inspect.txt)" >&2
echo "main: 128 calibration captchas (fortunes, DejaVuSans-Bold), input statistics in onnxruntime" >&2
"$python" -m tdtools.evaluate.captcha inputs --split calibration --count 128 --out "$out/calibration"
# No end-to-end sensitivities: measured once on 64 of these captchas they took 512 s on this
# 2-core machine and failed calibrate's check (damage 0.01051 weighted against 0.01042 unweighted
# at macs:0.67), so compress would not have used them (Documentation/Performance.md).
TENSOR_COMPRESS="$tool" bash Scripts/calibrate.sh "$model" "$out/calibration" "$out/stats.safetensors" --no-sensitivity >&2
echo "main: $tool compress $model ${shape[*]} --statistics $out/stats.safetensors --budget macs:$budget" >&2
"$tool" compress "$model" --output "$out/common.compressed.onnx" "${shape[@]}" --statistics "$out/stats.safetensors" \
    --budget "macs:$budget" --quiet --report "$out/report.json" > "$out/common.layers.txt"
grep '^model:' "$out/common.layers.txt" | sed 's/^/main:   /' >&2
echo "main: the same --data-free" >&2
"$tool" compress "$model" --output "$out/common.data-free.onnx" "${shape[@]}" --budget "macs:$budget" --data-free \
    --quiet --report "$out/data-free.report.json" > "$out/common.data-free.layers.txt"
grep '^model:' "$out/common.data-free.layers.txt" | sed 's/^/main:   /' >&2
# What was not replaced, and why: compress's reasons, each with its layers (the Gathers on shapes left out).
awk '$1 !~ /^Gather/ && match($0, /(skipped|kept): .*$/) {
        reason = substr($0, RSTART, RLENGTH); sub(/ +$/, "", reason)
        if (!(reason in names)) order[++n] = reason
        names[reason] = names[reason] (names[reason] ? ", " : "") $1
    }
    END { for (k = 1; k <= n; k++) print "main:   not replaced (" order[k] "): " names[order[k]] }' "$out/common.layers.txt" >&2
# INT8 by onnxruntime's dynamic quantizer (per-channel INT8 weights of the MatMul/Gemm and the LSTM;
# the convolutions stay in float): of the recipes tried it kept the original's strings best (99%
# equal; static QDQ with MinMax ranges was faster but changed 7%; Documentation/Performance.md).
echo "main: INT8 of the original and of the compressed model (onnxruntime.quantization, dynamic, MatMul/Gemm/LSTM)" >&2
rm -f "$out/quantize.log"
for m in "$model" "$out/common.compressed.onnx"; do
    "$python" -m tdtools.quantize dynamic "$m" "$out/$(basename "$m" .onnx).int8.onnx" --ops MatMul,Gemm,LSTM >> "$out/quantize.log" 2>&1 \
        || { tail -5 "$out/quantize.log" >&2; exit 1; }
done
rm -rf "$out/calibration"
echo "main: evaluating in onnxruntime (200 evaluation captchas; latency over the first 40)" >&2
"$python" -m tdtools.evaluate.captcha evaluate --charset "$models/charset.json" "$model" "$out/common.compressed.onnx" \
    "$out/common.data-free.onnx" "$out/common.int8.onnx" "$out/common.compressed.int8.onnx" \
    --reports "$out/report.json" "$out/data-free.report.json" --count 200 --timed 40 --runs 5 --json "$out/evaluation.json"
echo "wrote $out: common.compressed.onnx (data-aware), common.data-free.onnx, common.int8.onnx (INT8 alone), common.compressed.int8.onnx (low-rank, then INT8), reports, per-layer tables (*.layers.txt), inspect.txt and evaluation.json ($SECONDS s)"
