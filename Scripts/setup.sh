#!/usr/bin/env bash
# Installs the system packages the build needs (OpenBLAS, LAPACKE, zlib, pkg-config) when they are missing;
# with --data also the evaluation data of the main job (Debian's fortunes and fonts-dejavu-core), with --speech
# fortunes and espeak-ng (the Silero VAD job's speech).
# Runs apt-get as root, or through sudo; exits non-zero with a clear message when it cannot.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ! pkg-config --exists openblas 2>/dev/null; then missing+=(libopenblas-dev); fi
if [ ! -f /usr/include/lapacke.h ] && [ ! -f /usr/include/x86_64-linux-gnu/lapacke.h ] && [ ! -f /usr/include/aarch64-linux-gnu/lapacke.h ]; then
    missing+=(liblapacke-dev)
fi
# zlib's headers, for ZIPFoundation (.npz reading) on Linux.
if ! pkg-config --exists zlib 2>/dev/null; then missing+=(zlib1g-dev); fi
for option in "$@"; do
    case "$option" in
    --data)
        [ -f /usr/share/games/fortunes/literature ] || missing+=(fortunes)
        [ -f /usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf ] || missing+=(fonts-dejavu-core) ;;
    --speech)
        [ -f /usr/share/games/fortunes/literature ] || missing+=(fortunes)
        command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng) ;;
    esac
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: missing system packages: ${missing[*]}; install them with your package manager (no apt-get here)." >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null 2>&1; then
    run=(sudo)
else
    echo "setup: missing system packages ${missing[*]}, and not root and no sudo to install them." >&2
    echo "setup: as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "setup: installing ${missing[*]} with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! "${run[@]}" apt-get update -qq || ! "${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; then
    echo "setup: apt-get could not install ${missing[*]}." >&2
    exit 1
fi
