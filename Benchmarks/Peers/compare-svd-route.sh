#!/usr/bin/env bash
# Truncated SVD routes on a 4096×11008 weight-like matrix, rank 512, one thread: ours (exact gesdd,
# randomized, block Krylov, automatic; svd-route-benchmark) and TensorLy 0.10's randomized_svd in
# the same run (its own virtual environment in .cache/venv-tensorly).
#   bash Benchmarks/Peers/compare-svd-route.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash Scripts/setup.sh
venv=.cache/venv-tensorly
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "tensorly==0.10.0" numpy scipy
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
swift build --package-path Benchmarks -c release --product svd-route-benchmark >&2
"$venv/bin/python" Benchmarks/Peers/tensorly_randomized_svd.py
Benchmarks/.build/release/svd-route-benchmark --filter "4096×11008 power"
