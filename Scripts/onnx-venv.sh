#!/usr/bin/env bash
# Prints the Python of the ONNX scripts' virtual environment, creating it on first use in
# .cache/venv-onnx from Scripts/requirements-onnx.txt (onnx, onnxruntime, numpy, pillow, scipy, tokenizers,
# safetensors from PyPI), for Python/tdtools and the tests in Tests/ONNXConformance.
# A change to the requirements file recreates it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-onnx
stamp="$venv/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s Scripts/requirements-onnx.txt "$stamp"; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r Scripts/requirements-onnx.txt >&2
    cp Scripts/requirements-onnx.txt "$stamp"
fi
echo "$PWD/$venv/bin/python"
