#!/usr/bin/env bash
# The main job: installs what is missing, builds in release mode and runs the example compressor.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release
echo "main: no example program yet" >&2
