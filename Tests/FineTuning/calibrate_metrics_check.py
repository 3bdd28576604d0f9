"""Checks the statistics file that Scripts/calibrate.sh wrote for all-MiniLM-L6-v2 with its output
metrics (Tests/FineTuning/test-finetune.sh runs it on a few quotations, --no-sensitivity): either
every one of the 36 linear layers has a symmetric, positive semi-definite NAME.outputMetric of
its output size and the metadata says how they were measured and that the check kept them, or
none has one and the metadata says the check left them out; and `compress --statistics --budget
macs:0.67` reads the file, fits the layers' factors in the metrics (their reasons say so) or not
(--no-output-metrics), with the same ranks either way.

    PYTHONPATH=Python python Tests/FineTuning/calibrate_metrics_check.py TOOL DIR
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from safetensors import safe_open

SHAPES = ["--input-shape", "input_ids=1,64", "--input-shape", "attention_mask=1,64", "--input-shape", "token_type_ids=1,64"]


def main():
    tool, work = sys.argv[1], sys.argv[2]
    path = os.path.join(work, "stats.safetensors")
    failures = []
    model = onnx.load(os.path.join(work, "model.onnx"))
    weights = {i.name: i for i in model.graph.initializer}
    outputs = {n.name: weights[n.input[1]].dims[-1] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights}
    with safe_open(path, framework="numpy") as f:
        note = (f.metadata() or {}).get("outputMetric", "")
        metrics = {k[: -len(".outputMetric")]: f.get_tensor(k) for k in f.keys() if k.endswith(".outputMetric")}
    if metrics:
        if set(metrics) != set(outputs) or "left out" in note or not note.startswith("E[g gᵀ]"):
            failures.append(f"{len(metrics)} output metrics (expected the {len(outputs)} linear layers'), metadata {note!r}")
        for name, g in metrics.items():
            m = outputs.get(name)
            if g.shape != (m, m) or not np.allclose(g, g.T, rtol=1e-10, atol=1e-14 * np.abs(g).max()) or np.linalg.eigvalsh(g).min() < -1e-9 * np.abs(g).max():
                failures.append(f"{name}: output metric {list(g.shape)} is not a symmetric positive semi-definite [{m}, {m}] matrix")
    elif not (note.startswith("none") and "left out" in note):
        failures.append(f"no output metrics, and the metadata does not say the check left them out: {note!r}")
    ranks = {}
    for label, extra in (("with", []), ("without", ["--no-output-metrics"])):
        report = os.path.join(work, f"metrics-{label}.json")
        done = subprocess.run([tool, "compress", os.path.join(work, "model.onnx"), "--output", os.path.join(work, f"metrics-{label}.onnx"),
                               "--statistics", path, "--budget", "macs:0.67", "--quiet", "--report", report] + SHAPES + extra,
                              capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"compress {' '.join(extra)} failed: {done.stderr.strip()[-300:]}")
            continue
        layers = [l for l in json.load(open(report))["layers"] if l["status"] == "replaced"]
        ranks[label] = {l["name"]: l.get("ranks") for l in layers}
        said = sum(any("the network's outputs" in r for r in l.get("reasons", [])) for l in layers)
        expected = len(layers) if metrics and label == "with" else 0
        if said != expected:
            failures.append(f"compress {label} the metrics: {said} of {len(layers)} replaced layers name the network's outputs, expected {expected}")
    if len(ranks) == 2 and ranks["with"] != ranks["without"]:
        failures.append("the budget chose other ranks with the output metrics than without")
    for f in failures:
        print("FAIL calibrate output metrics: " + f)
    if failures:
        sys.exit(1)
    print(f"calibrate output metrics: {len(metrics)} stored ({note[:60]}…); compress fits the factors in them at the same ranks")


if __name__ == "__main__":
    main()
