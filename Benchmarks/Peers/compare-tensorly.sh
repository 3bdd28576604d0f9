#!/usr/bin/env bash
# Side-by-side with TensorLy 0.10 (and SciPy's gesdd) on the same inputs, one BLAS thread each:
#   bash Benchmarks/Peers/compare-tensorly.sh            # prints a Markdown table, then the LLM-size SVD rows
# Makes its own virtual environment in .cache/venv-tensorly (TensorLy 0.10.0, NumPy, SciPy from PyPI),
# runs the Swift benchmark, which writes the inputs and CP starting points as .npy, then TensorLy
# on those files with the same initialization, iteration counts and tolerance 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash Scripts/setup.sh
venv=.cache/venv-tensorly
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "tensorly==0.10.0" numpy scipy
fi
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" OMP_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" MKL_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
swift build --package-path Benchmarks -c release --product decompositions-benchmark >&2
inputs=.cache/tensorly-inputs
Benchmarks/.build/release/decompositions-benchmark --write-inputs "$inputs" >&2
PYTHONPATH=Python "$venv/bin/python" Benchmarks/Peers/compare_tensorly.py "$inputs"
# The LLM-size row: a 4096×11008 matrix at rank 512, our routes against TensorLy's randomized_svd
# in the same run (Benchmarks/Peers/compare-svd-route.sh; a few minutes, most of it LAPACK's exact SVD).
bash Benchmarks/Peers/compare-svd-route.sh
