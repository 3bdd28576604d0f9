#!/usr/bin/env bash
# Runs every example program once (they check their own results and exit non-zero on failure).
set -euo pipefail
cd "$(dirname "$0")/.."
for dir in Examples/*/; do
    name=$(basename "$dir")
    echo "example: $name" >&2
    swift run --skip-build "$name" >/dev/null
done
