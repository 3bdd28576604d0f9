#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode, and decomposes a generated
# 256×128×3×3 conv kernel (EVBMF ranks, Tucker-2, CP, tensor-train), printing what it did.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release --product decompose-conv-kernel
OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" .build/release/decompose-conv-kernel
