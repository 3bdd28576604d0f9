"""Where a model's time goes in onnxruntime: kernel time by operator type, from its profiler.

    python -m tdtools.profile FEEDS.npz MODEL.onnx [MODEL.onnx ...] [--runs 50] [--sample 0] [--json OUT]

FEEDS.npz holds one array per graph input with the samples on the first axis (the files that
`tdtools.evaluate.minilm inputs` and `Scripts/calibrate.sh` read); sample `--sample` is run, with
its first axis kept as a batch of 1. Each model runs in the project's session (one intra-op
thread, sequential, onnxruntime's full graph optimisation), `--runs` times after one warm-up run,
with onnxruntime's profiler on; a node's time is the median over the runs of its kernel time in a
run (every invocation summed: a node in a Loop body runs once per iteration), summed by operator
type as onnxruntime ran it (after its fusions: `MatMulInteger`,
`DynamicQuantizeLinear`, `Attention`, `SkipLayerNormalization`, `FusedMatMul`, …). The table gives
each type's milliseconds and share of the summed kernel time, the summed kernel time, and the
wall time of a run (median over the same runs, profiler on), for each model side by side.
"""
import argparse
import bisect
import json
import os
import statistics
import tempfile

import numpy as np

from .session import session
from .tables import print_table


def profile(path, feeds, runs):
    """({op type: median seconds per run summed over its nodes}, median wall seconds of a run).

    A node's kernel time in a run is the sum of its invocations in that run (a node inside a Loop
    or Scan body runs once per iteration); the first run is the warm-up and is left out."""
    with tempfile.TemporaryDirectory() as directory:
        s = session(path, profile=os.path.join(directory, "profile"))
        for _ in range(runs + 1):
            s.run(None, feeds)
        with open(s.end_profiling()) as f:
            events = json.load(f)
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    starts = [start for start, _ in windows]
    per_run = {}                                 # (node, op) → seconds in each run
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            k = bisect.bisect_right(starts, e["ts"]) - 1
            if k < 0 or e["ts"] > windows[k][1]:
                continue
            times = per_run.setdefault((e["name"], e.get("args", {}).get("op_name", "?")), [0.0] * len(windows))
            times[k] += e["dur"] * 1e-6
    by_op = {}
    for (_, op), times in per_run.items():
        by_op[op] = by_op.get(op, 0.0) + statistics.median(times[1:] if len(times) > 1 else times)
    walls = [(end - start) * 1e-6 for start, end in windows]
    return by_op, statistics.median(walls[1:] if len(walls) > 1 else walls)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("feeds")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.runs < 1:
        raise SystemExit(f"profile: --runs {args.runs} must be at least 1")
    with np.load(args.feeds) as archive:
        count = min(len(archive[name]) for name in archive.files)
        if not 0 <= args.sample < count:
            raise SystemExit(f"profile: --sample {args.sample} is outside the {count} samples of {args.feeds}")
        feeds = {name: archive[name][args.sample:args.sample + 1] for name in archive.files}
    results = [(path, *profile(path, feeds, args.runs)) for path in args.models]
    ops = sorted({op for _, by_op, _ in results for op in by_op}, key=lambda op: -max(r[1].get(op, 0.0) for r in results))
    header = ["operator"] + [f"{os.path.basename(path)} ms (share)" for path, _, _ in results]
    rows = []
    for op in ops:
        row = [op]
        for _, by_op, _ in results:
            total = sum(by_op.values())
            row.append(f"{1e3 * by_op[op]:.3f} ({100 * by_op[op] / total:.1f}%)" if op in by_op else "")
        rows.append(row)
    rows.append(["kernels, summed"] + [f"{1e3 * sum(by_op.values()):.3f}" for _, by_op, _ in results])
    rows.append(["run (wall)"] + [f"{1e3 * wall:.3f}" for _, _, wall in results])
    print(f"onnxruntime kernel time by operator type: sample {args.sample} of {args.feeds}, median of {args.runs} runs, 1 intra-op thread")
    print_table(header, rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"feeds": args.feeds, "sample": args.sample, "runs": args.runs,
                       "models": [{"model": path, "seconds": by_op, "wall": wall} for path, by_op, wall in results]}, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
