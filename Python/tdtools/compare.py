"""Runs two ONNX models on the same inputs in onnxruntime and compares outputs and latency.

    bash Scripts/compare-onnx.sh ORIGINAL.onnx OTHER.onnx [--input-shape NAME=d0,d1,...] [--inputs X.npz]
                                 [--runs 20] [--threads 1] [--check] [--json] [--tolerance T]
    python -m tdtools.compare ORIGINAL.onnx OTHER.onnx [...]     (with Python/ on PYTHONPATH)

Inputs: arrays from --inputs (one per graph input), else generated with a fixed seed: floating
point inputs standard normal, integer inputs 1 for names containing "mask", 0 for "type" ids, and
uniform in [0, 100) otherwise; dynamic dimensions from --input-shape. Latency: one warm-up run,
then the median of --runs runs of each model (interleaved), with the given intra-op thread count
and sequential execution. --check runs onnx.checker.check_model(full_check=True) on both models.
With --tolerance the exit status is 1 when a relative difference exceeds it.
"""
import argparse
import json
import sys

import numpy as np
import onnx

from .session import session
from .timing import median_seconds

TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8,
}


def make_inputs(sess, shapes, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        shape = shapes.get(arg.name)
        if shape is None:
            if any(not isinstance(d, int) for d in arg.shape):
                sys.exit(f"compare: input {arg.name} has dynamic shape {arg.shape}; pass --input-shape {arg.name}=...")
            shape = arg.shape
        dtype = TYPES.get(arg.type, np.float32)
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in arg.name:
            feeds[arg.name] = np.ones(shape, dtype=dtype)
        elif "type" in arg.name:
            feeds[arg.name] = np.zeros(shape, dtype=dtype)
        else:
            feeds[arg.name] = rng.integers(0, 100, size=shape).astype(dtype)
    return feeds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("original")
    parser.add_argument("other")
    parser.add_argument("--input-shape", action="append", default=[])
    parser.add_argument("--inputs")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tolerance", type=float)
    args = parser.parse_args()
    if args.runs < 20:
        sys.exit("compare: --runs must be at least 20")
    shapes = {}
    for item in args.input_shape:
        name, _, dims = item.rpartition("=")
        shapes[name] = [int(d) for d in dims.split(",")]
    result = {"original": args.original, "other": args.other, "threads": args.threads, "runs": args.runs}
    if args.check:
        for key, path in (("original", args.original), ("other", args.other)):
            onnx.checker.check_model(path, full_check=True)
        result["checker"] = "passed"
    a, b = session(args.original, args.threads), session(args.other, args.threads)
    if args.inputs:
        archive = np.load(args.inputs)
        feeds = {arg.name: archive[arg.name] for arg in a.get_inputs()}
    else:
        feeds = make_inputs(a, shapes)
    ya, yb = a.run(None, feeds), b.run(None, feeds)
    outputs = []
    worst = 0.0
    for arg, x, y in zip(a.get_outputs(), ya, yb):
        x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x64.shape != y64.shape:
            sys.exit(f"compare: output {arg.name} has shape {x64.shape} in the original and {y64.shape} in the other model")
        diff = np.abs(x64 - y64)
        norm = np.linalg.norm(x64)
        relative = float(np.linalg.norm(x64 - y64) / norm) if norm > 0 else float(np.linalg.norm(y64))
        max_relative = float(diff.max() / np.abs(x64).max()) if x64.size and np.abs(x64).max() > 0 else float(diff.max(initial=0))
        worst = max(worst, relative, max_relative)
        outputs.append({"name": arg.name, "shape": list(x64.shape), "maxAbsDifference": float(diff.max(initial=0)),
                        "relativeDifference": relative, "maxRelativeDifference": max_relative,
                        "bitIdentical": bool(np.array_equal(np.asarray(x), np.asarray(y)))})
    result["outputs"] = outputs
    ta, tb = median_seconds([lambda: a.run(None, feeds), lambda: b.run(None, feeds)], args.runs)
    result["latencyOriginal"], result["latencyOther"], result["speedup"] = ta, tb, ta / tb
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for o in outputs:
            print(f"{o['name']} {o['shape']}: max |a−b| {o['maxAbsDifference']:.3g}, ‖a−b‖/‖a‖ {o['relativeDifference']:.3g}, "
                  f"max|a−b|/max|a| {o['maxRelativeDifference']:.3g}{', bit-identical' if o['bitIdentical'] else ''}")
        print(f"latency (median of {args.runs}, {args.threads} intra-op thread): {ta * 1e3:.2f} ms → {tb * 1e3:.2f} ms "
              f"(the second model {ta / tb:.2f}× as fast as the first: "
              f"{f'{ta / tb:.2f}× faster' if ta >= tb else f'{tb / ta:.2f}× slower'})" + (", checker passed" if args.check else ""))
    if args.tolerance is not None and worst > args.tolerance:
        print(f"compare: relative difference {worst:.3g} exceeds {args.tolerance}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
