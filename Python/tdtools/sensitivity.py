"""End-to-end sensitivity of each compressible node of an ONNX model, as weights for the greedy
budget allocation (`tensor-compress compress --layer-weights`).

    bash Scripts/sensitivity.sh MODEL.onnx INPUTS.npz STATS.safetensors WEIGHTS.json [--flops 0.5] [--samples 128]
                                [--input-shape NAME=d0,d1,... ...]
    python -m tdtools.sensitivity TOOL MODEL.onnx INPUTS.npz STATS.safetensors WEIGHTS.json [...]   (Python/ on PYTHONPATH)

For every compressible node alone: compress it data-aware (with the statistics) at a FLOP
budget of --flops of its own cost, read the normalised output error e² that the compressor
reports for it, run the whole model on --samples calibration inputs in onnxruntime, and measure
the damage D = mean over samples of ‖y − ŷ‖² / ‖y‖² over the graph outputs. The node's weight is
D / e²: how much of its layer-level error reaches the network's output. The greedy allocation
then minimises the predicted damage Σ w_l e_l² per MAC instead of the sum of layer errors.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

from .session import session
from .tool import ToolError, compressible_nodes


def outputs(s, feeds, batch=32):
    n = next(iter(feeds.values())).shape[0]
    parts = [s.run(None, {k: v[i:i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    return [np.concatenate([p[j] for p in parts]).astype(np.float64) for j in range(len(parts[0]))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("tool", "model", "inputs", "statistics", "output"):
        parser.add_argument(name)
    parser.add_argument("--flops", type=float, default=0.5)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--input-shape", action="append", default=[])
    args = parser.parse_args()
    archive = np.load(args.inputs)
    base = session(args.model)
    feeds = {i.name: archive[i.name][:args.samples] for i in base.get_inputs()}
    reference = outputs(base, feeds)
    shapes = [a for s in args.input_shape for a in ("--input-shape", s)]
    try:
        nodes = [n["name"] for n in compressible_nodes(args.tool, args.model, args.input_shape)]
    except ToolError as error:
        sys.exit(f"sensitivity: {error}")
    weights = {}
    with tempfile.TemporaryDirectory() as work:
        for k, name in enumerate(nodes):
            out, report = os.path.join(work, "one.onnx"), os.path.join(work, "one.json")
            done = subprocess.run([args.tool, "compress", args.model, "--output", out, "--statistics", args.statistics,
                                   "--include", "^" + re.escape(name) + "$", "--rank-selection", f"flops:{args.flops}",
                                   "--min-parameters", "0", "--quiet", "--report", report] + shapes, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"sensitivity: compressing {name} failed: {done.stderr.strip()}")
            with open(report) as f:
                layer = next((l for l in json.load(f)["layers"] if l["name"] == name), None)
            if layer is None or layer["status"] != "replaced" or not layer.get("outputError"):
                continue
            damaged = outputs(session(out), feeds)
            damage = float(np.mean([np.sum((a - b) ** 2, axis=tuple(range(1, a.ndim))) / np.maximum(np.sum(a ** 2, axis=tuple(range(1, a.ndim))), 1e-30)
                                    for a, b in zip(reference, damaged)]))
            weights[name] = damage / layer["outputError"] ** 2
            print(f"sensitivity: {k + 1}/{len(nodes)} {name}: e² {layer['outputError'] ** 2:.3g}, damage {damage:.3g}, weight {weights[name]:.3g}",
                  file=sys.stderr)
    with open(args.output, "w") as f:
        json.dump(weights, f, indent=2, sort_keys=True)
    print(f"sensitivity: wrote {args.output}: weights of {len(weights)} nodes")


if __name__ == "__main__":
    main()
