"""End-to-end sensitivity of each compressible node of an ONNX model: the weights of the greedy
budget allocation (`tensor-compress compress --budget`).

`tdtools.calibrate` measures them after the statistics and stores them in the statistics file
(NAME.sensitivity), where `compress --statistics` finds them: that is the default path. This
module is the measurement, and a command that writes them as a JSON file for `--layer-weights`
(for a statistics file that has none, or other inputs):

    bash Scripts/sensitivity.sh MODEL.onnx INPUTS STATS.safetensors WEIGHTS.json [--flops 0.5] [--samples 128]
                                [--batch 32] [--batch-axis NAME=AXIS ...] [--input-shape NAME=d0,d1,... ...]
    python -m tdtools.sensitivity TOOL MODEL.onnx INPUTS STATS.safetensors WEIGHTS.json [...]   (Python/ on PYTHONPATH)

INPUTS is what `tdtools.calibrate` takes (an .npz of samples, or a directory of feeds).

For every compressible node with statistics, alone: compress it data-aware (with the statistics)
at a FLOP budget of --flops of its own cost, read the normalised output error e² that the
compressor reports for it, run the whole model on the first --samples calibration samples in
onnxruntime, and measure the damage D, the mean over the graph outputs of the mean over the rows
of their first axis (the samples) of ‖y − ŷ‖² / ‖y‖². The node's weight is D / e²: how much of
its layer-level error reaches the network's output. The greedy allocation then minimises the
predicted damage Σ w_l e_l² per MAC instead of the sum of layer errors. A node that the
single-layer compression does not replace (its stack would not be smaller, say) gets no weight,
and weight 1 in the allocation; so does a node whose single-layer compression fails (the
tool's error is printed).

Cost: one `compress` of one layer and one onnxruntime run over the samples per node.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from safetensors import safe_open

from . import statistics
from .session import session
from .tool import ToolError, compressible_nodes

FLOPS, SAMPLES, CHECK_BUDGET = 0.5, 128, 0.67


def outputs(s, feeds):
    """The graph outputs of every feed in `feeds`, float32, feed by feed."""
    return [[np.asarray(y, dtype=np.float32) for y in s.run(None, f)] for f in feeds]


def damage(reference, damaged):
    """Mean over the outputs of the mean over rows (first axis) of ‖y − ŷ‖² / ‖y‖², in float64."""
    per_output = []
    for j in range(len(reference[0])):
        rows = []
        for ours, theirs in zip(reference, damaged):
            a, b = ours[j].astype(np.float64), theirs[j].astype(np.float64)
            if a.ndim == 0:
                a, b = a[None], b[None]
            axes = tuple(range(1, a.ndim))
            rows.append(np.sum((a - b) ** 2, axis=axes) / np.maximum(np.sum(a ** 2, axis=axes), 1e-30))
        per_output.append(np.mean(np.concatenate(rows)))
    return float(np.mean(per_output))


def description(flops, samples):
    """The statistics file's `__metadata__["sensitivity"]`: how the weights were measured."""
    return (f"each node alone compressed at flops:{flops} of its cost with the statistics; damage ‖y − ŷ‖²/‖y‖² of the graph "
            f"outputs on {samples} calibration samples in onnxruntime, over the node's normalised output error e²")


def measure(tool, model, stats_path, feeds, names, shapes, flops=FLOPS, log=None):
    """{node: D / e²} for the nodes `names`, compressed one at a time with the statistics file
    `stats_path`, the damage measured on `feeds` (a list of onnxruntime feeds); `shapes` are the
    `NAME=d0,…` input shapes for `compress`. `log(k, count, name, e², D, weight, why)` is called
    after each node (weight None and `why` the reason when the node gets none: not replaced alone,
    the single-layer `compress` failed, or its compression left the outputs on `feeds` exactly as
    they were: a weight of 0 would make the node free for the greedy allocation, which then cuts it
    to its smallest rank although data that reaches it, such as an `If` branch these samples never
    take, would show the damage)."""
    # onnxruntime's default intra-op threads (one per core), as calibrate runs: nothing here is timed.
    reference = outputs(session(model, threads=0), feeds)
    arguments = [a for s in shapes for a in ("--input-shape", s)]
    weights = {}
    with tempfile.TemporaryDirectory() as work:
        for k, name in enumerate(names):
            out, report = os.path.join(work, "one.onnx"), os.path.join(work, "one.json")
            done = subprocess.run([tool, "compress", model, "--output", out, "--statistics", stats_path,
                                   "--include", "^" + re.escape(name) + "$", "--rank-selection", f"flops:{flops}",
                                   "--min-parameters", "0", "--allow-no-change", "--quiet", "--report", report] + arguments,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                # A node that cannot be compressed alone at this fraction gets no weight, with the
                # tool's reason; the others are still measured.
                if log:
                    log(k, len(names), name, None, None, None, "compress failed: " + (done.stderr.strip().splitlines() or ["no message"])[-1])
                continue
            with open(report) as f:
                layer = next((l for l in json.load(f)["layers"] if l["name"] == name), None)
            if layer is None or layer["status"] != "replaced" or not layer.get("outputError"):
                if log:
                    log(k, len(names), name, None, None, None, layer["reason"] if layer and layer.get("reason") else "not replaced")
                continue
            d = damage(reference, outputs(session(out, threads=0), feeds))
            e2 = layer["outputError"] ** 2
            if not d > 0:
                if log:
                    log(k, len(names), name, e2, d, None, "no damage measurable on these samples")
                continue
            weights[name] = d / e2
            if log:
                log(k, len(names), name, e2, d, weights[name], None)
    return weights


def check(tool, model, stats_path, weights, feeds, shapes, budget=CHECK_BUDGET):
    """(damage with the weights, damage without): the model compressed at `--budget macs:budget`
    with the statistics file `stats_path` (which holds no sensitivities), once with `weights`
    as --layer-weights and once with every weight 1, each run on `feeds` and its damage measured
    as in `measure`. The weights are worth using only when the first is below the second: the
    allocation adds the predicted damages w e² of the layers, which some networks do not follow.
    Raises ToolError when a compression fails."""
    with tempfile.TemporaryDirectory() as work:
        arguments = []
        for label, given in (("weighted", weights), ("unweighted", {})):
            path = os.path.join(work, label + ".json")
            with open(path, "w") as f:
                json.dump(given, f)
            arguments.append(["--layer-weights", path])
        return damages(tool, model, stats_path, feeds, shapes, budget, arguments)


def damages(tool, model, stats_path, feeds, shapes, budget, variants):
    """The damage (as in `measure`) on `feeds` of the model compressed at `--budget macs:budget`
    with the statistics file `stats_path` and each list of extra arguments in `variants`.
    Raises ToolError when a compression fails."""
    reference = outputs(session(model, threads=0), feeds)
    arguments = [a for s in shapes for a in ("--input-shape", s)]
    result = []
    with tempfile.TemporaryDirectory() as work:
        for k, extra in enumerate(variants):
            out = os.path.join(work, f"{k}.onnx")
            done = subprocess.run([tool, "compress", model, "--output", out, "--statistics", stats_path,
                                   "--budget", f"macs:{budget}", "--allow-no-change", "--quiet"] + extra + arguments, capture_output=True, text=True)
            if done.returncode != 0:
                raise ToolError(f"compress --budget macs:{budget} {' '.join(extra)} failed: {done.stderr.strip()}")
            result.append(damage(reference, outputs(session(out, threads=0), feeds)))
    return tuple(result)


def main():
    from .calibrate import input_plan
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("tool", "model", "inputs", "statistics", "output"):
        parser.add_argument(name)
    parser.add_argument("--flops", type=float, default=FLOPS, help=f"each node's FLOP fraction in its single-layer compression (default {FLOPS})")
    parser.add_argument("--samples", type=int, default=SAMPLES, help=f"calibration samples of the damage (default {SAMPLES})")
    parser.add_argument("--batch", type=int, default=32, help="samples per onnxruntime run (default 32)")
    parser.add_argument("--batch-axis", action="append", default=[], metavar="NAME=AXIS", help="as for tdtools.calibrate")
    parser.add_argument("--input-shape", action="append", default=[], help="NAME=d0,d1,… for inspect and compress (default: the batch's shapes)")
    args = parser.parse_args()
    if not 0 < args.flops < 1 or args.samples < 1:
        sys.exit(f"sensitivity: --flops {args.flops} must be in (0, 1) and --samples {args.samples} at least 1")
    feeds_of, shapes, _ = input_plan(onnx.load(args.model), args)
    shapes = args.input_shape or shapes
    feeds, _ = first_samples(feeds_of, args.samples)
    try:
        with safe_open(args.statistics, framework="numpy") as f:
            measured = {k[: -len(statistics.COUNT)] for k in f.keys() if k.endswith(statistics.COUNT)}
        nodes = [n["name"] for n in compressible_nodes(args.tool, args.model, shapes)]
        missing = [n for n in nodes if n not in measured]
        if missing:
            print(f"sensitivity: {len(missing)} compressible nodes have no statistics and get no weight: {', '.join(missing[:5])}", file=sys.stderr)

        def log(k, count, name, e2, d, weight, why):
            print(f"sensitivity: {k + 1}/{count} {name}: " + (f"not replaced alone ({why}), no weight" if weight is None
                                                              else f"e² {e2:.3g}, damage {d:.3g}, weight {weight:.3g}"), file=sys.stderr)
        weights = measure(args.tool, args.model, args.statistics, feeds, [n for n in nodes if n in measured], shapes, args.flops, log)
    except ToolError as error:       # inspect failed
        sys.exit(f"sensitivity: {error}")
    with open(args.output, "w") as f:
        json.dump(weights, f, indent=2, sort_keys=True)
    print(f"sensitivity: wrote {args.output}: weights of {len(weights)} nodes")


def first_samples(feeds_of, samples):
    """(the feeds of `feeds_of()` (pairs of a feed and the samples in it) until `samples` samples, their sample count)."""
    feeds, count = [], 0
    for feed, n in feeds_of():
        if count >= samples:
            break
        feeds.append(feed)
        count += n
    return feeds, count


if __name__ == "__main__":
    main()
