#!/usr/bin/env bash
# Fetches PP-OCRv4's detector and recognizer (the ONNX models shipped in the PyPI wheel
# rapidocr-onnxruntime 1.4.4, Apache-2.0) once into .cache/models/ppocr-v4/{det,rec}.onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
target=.cache/models/ppocr-v4
if [ -f "$target/det.onnx" ] && [ -f "$target/rec.onnx" ]; then exit 0; fi
mkdir -p "$target" .cache/models/wheel
python3 -m pip download --no-deps --quiet --disable-pip-version-check --dest .cache/models/wheel "rapidocr-onnxruntime==1.4.4" >&2
python3 - "$target" <<'PY'
import glob, os, sys, zipfile
target = sys.argv[1]
wheel = sorted(glob.glob(".cache/models/wheel/rapidocr_onnxruntime-1.4.4-*.whl"))[-1]
with zipfile.ZipFile(wheel) as archive:
    for member, name in (("ch_PP-OCRv4_det_infer.onnx", "det.onnx"), ("ch_PP-OCRv4_rec_infer.onnx", "rec.onnx")):
        path = next(n for n in archive.namelist() if n.endswith("models/" + member))
        with archive.open(path) as source, open(os.path.join(target, name + ".part"), "wb") as out:
            out.write(source.read())
        os.replace(os.path.join(target, name + ".part"), os.path.join(target, name))
PY
echo "fetch-ppocr: models in $target" >&2
