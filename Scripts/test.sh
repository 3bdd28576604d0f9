#!/usr/bin/env bash
# The whole test suite on a fresh machine: system packages, build (library, examples, benchmarks),
# Swift tests, the ONNX conformance run in onnxruntime (its own virtual environment), and a short run
# of the fine-tuning step (onnxruntime-training, in another; about 350 MB from PyPI the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build --build-tests
if [ -d Benchmarks ] && [ -f Benchmarks/Package.swift ]; then
    swift build --package-path Benchmarks -c release
fi
bash Scripts/smoke-examples.sh
# One BLAS thread for the tests: several tests compare two computations bit for bit, and a
# compression running concurrently in the same process (Swift Testing runs suites in parallel)
# limits OpenBLAS to one thread process-wide while it runs, which changes rounding.
OPENBLAS_NUM_THREADS=1 swift test --skip-build --disable-xctest
bash Tests/ONNXConformance/test-onnx.sh .build/debug/tensor-compress
# The fine-tuning step, short (40 steps on MiniLM compressed data-free; onnxruntime-training in its own venv).
bash Tests/FineTuning/test-finetune.sh .build/debug/tensor-compress
echo "test.sh: every stage passed (Swift tests, examples, benchmarks build, ONNX conformance, statistics format, INT8 step and property graphs in onnxruntime, fine-tuning)"
