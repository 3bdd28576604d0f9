#!/usr/bin/env bash
# all-MiniLM-L6-v2 (until its ONNX job lands: the safetensors state dict at EVBMF ranks).
exec bash "$(dirname "$0")/main-minilm-safetensors.sh" "$@"
