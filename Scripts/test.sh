#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, build (library, examples, benchmarks),
# Swift tests, and the ONNX conformance run in onnxruntime (its own virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build --build-tests
if [ -d Benchmarks ] && [ -f Benchmarks/Package.swift ]; then
    swift build --package-path Benchmarks -c release
fi
bash Scripts/smoke-examples.sh
swift test --skip-build
bash Scripts/test-onnx.sh .build/debug/tensor-compress
