#!/usr/bin/env bash
# Prints the Python of the training environment, creating it on first use in .cache/venv-train from
# Scripts/requirements-train.txt (onnxruntime-training and what it needs, from PyPI: about 350 MB to
# download, of which 299 MB are the onnxruntime-training wheel; 1.1 GB installed; PIP_FIND_LINKS=DIR
# takes the wheel from a folder). Two steps use it: calibrate.sh's output metrics (tdtools.gradients)
# and the fine-tuning (Scripts/finetune.sh). A change to the requirements file recreates it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/venv-train
stamp="$venv/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s Scripts/requirements-train.txt "$stamp"; then
    echo "train-venv: creating $venv (onnxruntime-training, about 350 MB to download)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check -r Scripts/requirements-train.txt >&2
    cp Scripts/requirements-train.txt "$stamp"
fi
echo "$PWD/$venv/bin/python"
