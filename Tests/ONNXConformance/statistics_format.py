"""The calibration statistics file from both sides: written by tdtools (Python), read by
`tensor-compress compress --statistics` (Swift). Documentation/StatisticsFormat.md is the layout.

    PYTHONPATH=Python python Tests/ONNXConformance/statistics_format.py TOOL WORKDIR

A small model (a 3×3 Conv with stride 2, a grouped and dilated 3×3 Conv, a 1×1 Conv, a Gemm and
a MatMul on a (batch, sequence, features) input with an attention mask) is calibrated with
`python -m tdtools.calibrate` on 6 samples in batches of 4, once with im2col statistics and once
with the per-channel fallback (--patch-limit 20) and --no-sensitivity. For each file:
- Python: the file has exactly the documented tensors (NAME.count [1], NAME.mean [g, d],
  NAME.gram [g, d, d] and NAME.sensitivity [1], all F64, for every compressible node that
  `inspect` lists) and metadata (with "sensitivity", the description of the measurement);
  tdtools.statistics.read gives the count, means and second moments of a NumPy reference computed
  here from the layers' inputs (an explicit loop over output positions for the convolutions,
  masked rows for the MatMul), within 1e-12 relative; writing what it read and reading it again
  gives the same arrays bit for bit. The sensitivities are finite and non-negative, and the same as
  the JSON that `python -m tdtools.sensitivity` writes from the same statistics (one measurement,
  two entry points).
- Swift: `compress --statistics` exits 0 with no warning, and every compressible node is replaced
  with an output error on the calibration inputs (the report's `outputError`), which the
  compressor computes only from the node's statistics. `compress --statistics --budget` weights
  the greedy allocation with the file's sensitivities: it says so on standard error and in the
  report, and writes the same model as `--layer-weights` with the same weights as JSON; with
  `--layer-weights` it says that those replace the file's.
Then files whose Gemm statistics have the wrong length, or whose Gemm sensitivity is negative,
must be refused by `compress` with a one-line error; `calibrate --no-sensitivity` writes no
sensitivities. (The first file is written with --sensitivity-check 0; a third calibration with
the default check must store the sensitivities exactly when the check's weighted damage, given
in the metadata, is the smaller; a fourth, with a tool that refuses every --budget run, must still
write the statistics, without sensitivities, with a warning and the reason in the metadata.)
Last, `calibrate --ctc-output z` must weight the MatMul's rows (aligned with z's batch and time
axes) by 1 − p_blank + floor against the NumPy reference, leave the other layers unweighted, say
it (standard error and metadata), and refuse outputs and nodes it cannot align.
Prints one line per check; exit status 1 when one fails.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors import safe_open
from safetensors.numpy import save_file

from tdtools import statistics
from tdtools.session import session
from tdtools.tool import compressible_nodes

rng = np.random.default_rng(23)
SAMPLES, BATCH = 6, 4
LAYERS = {"conv_stride", "conv_grouped", "conv_pointwise", "gemm", "matmul"}
SHAPES = ["x=1,4,9,9", "tokens=1,5,6", "attention_mask=1,5"]


def model():
    """x [batch, 4, 9, 9] → Conv 3×3 stride 2 pads 1 → Relu → Conv 3×3 groups 2 dilation 2 pads 2 →
    Conv 1×1 → GlobalAveragePool → Flatten → Gemm (transB) → y; tokens [batch, 5, 6] → MatMul → z."""
    w = lambda name, *s: numpy_helper.from_array(rng.standard_normal(s).astype(np.float32) * 0.5, name)
    inits = [w("W_stride", 8, 4, 3, 3), w("W_grouped", 8, 4, 3, 3), w("W_pointwise", 10, 8, 1, 1), w("W_gemm", 7, 10), w("W_matmul", 6, 12)]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", inits[0].name], ["a"], name="conv_stride", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Relu", ["a"], ["a_relu"], name="relu"),
        n("Conv", ["a_relu", inits[1].name], ["b"], name="conv_grouped", kernel_shape=[3, 3], group=2, dilations=[2, 2], pads=[2, 2, 2, 2]),
        n("Conv", ["b", inits[2].name], ["c"], name="conv_pointwise", kernel_shape=[1, 1]),
        n("GlobalAveragePool", ["c"], ["pooled"], name="pool"),
        n("Flatten", ["pooled"], ["flat"], name="flatten"),
        n("Gemm", ["flat", inits[3].name], ["y"], name="gemm", transB=1),
        n("MatMul", ["tokens", inits[4].name], ["z"], name="matmul"),
    ]
    graph = helper.make_graph(
        nodes, "statistics-format",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 9, 9]),
         helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", 5, 6]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 7]), helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 5, 12])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="statistics_format")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def inputs():
    mask = np.ones((SAMPLES, 5), dtype=np.int64)
    for k in range(SAMPLES):
        mask[k, 5 - k % 3:] = 0          # 0, 2 or 1 padded positions
    return {"x": rng.standard_normal((SAMPLES, 4, 9, 9)).astype(np.float32),
            "tokens": rng.standard_normal((SAMPLES, 5, 6)).astype(np.float32), "attention_mask": mask}


def layer_inputs(m, feeds):
    """Each node's first input on every sample, from onnxruntime with those values exposed."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(m)
    wanted = {node.name: node.input[0] for node in m.graph.node}
    outputs = {o.name for o in exposed.graph.output}
    for value in set(wanted.values()) - outputs:
        exposed.graph.output.append(helper.make_tensor_value_info(value, TensorProto.FLOAT, None))
    s = session(exposed)
    names = [o.name for o in s.get_outputs()]
    values = dict(zip(names, s.run(None, feeds)))
    values.update(feeds)
    return {node: values[value] for node, value in wanted.items()}


def reference(m, feeds, per_channel):
    """count, mean [g, d], gram [g, d, d] of each compressible node, computed directly."""
    attributes = {node.name: {a.name: helper.get_attribute_value(a) for a in node.attribute} for node in m.graph.node}
    x = layer_inputs(m, feeds)
    result = {}
    for name in ("conv_stride", "conv_grouped", "conv_pointwise"):
        a = attributes[name]
        groups, (kh, kw) = a.get("group", 1), a["kernel_shape"]
        (sh, sw), (dh, dw) = a.get("strides", [1, 1]), a.get("dilations", [1, 1])
        top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
        data = x[name].astype(np.float64)
        n, c, h, w = data.shape
        cg = c // groups
        padded = np.pad(data, ((0, 0), (0, 0), (top, bottom), (left, right)))
        oh, ow = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1, (w + left + right - dw * (kw - 1) - 1) // sw + 1
        long = cg * kh * kw > 20
        rows = [[] for _ in range(groups)]
        for g in range(groups):
            if per_channel and long:
                rows[g] = data[:, g * cg:(g + 1) * cg].transpose(0, 2, 3, 1).reshape(-1, cg)
                continue
            for sample in range(n):
                for i in range(oh):
                    for j in range(ow):
                        patch = [padded[sample, g * cg + ch, i * sh + p * dh, j * sw + q * dw]
                                 for ch in range(cg) for p in range(kh) for q in range(kw)]
                        rows[g].append(patch)
        rows = [np.array(r, dtype=np.float64) for r in rows]
        result[name] = (float(rows[0].shape[0]), np.stack([r.mean(axis=0) for r in rows]),
                        np.stack([r.T @ r / r.shape[0] for r in rows]))
    for name in ("gemm", "matmul"):
        data = x[name].astype(np.float64)
        rows = data[feeds["attention_mask"].astype(bool)] if name == "matmul" else data.reshape(-1, data.shape[-1])
        result[name] = (float(rows.shape[0]), rows.mean(axis=0)[None], (rows.T @ rows / rows.shape[0])[None])
    return result


def check_layout(path, expected_names, sensitivities=True):
    """The raw file: exactly the documented tensors, all F64, and the metadata. Returns failures."""
    failures = []
    with safe_open(path, framework="numpy") as f:
        keys = set(f.keys())
        suffixes = statistics.SUFFIXES + ((statistics.SENSITIVITY,) if sensitivities else ())
        want = {name + suffix for name in expected_names for suffix in suffixes}
        if keys != want:
            failures.append(f"tensors {sorted(keys ^ want)} differ from the layout")
        for key in sorted(keys & want):
            t = f.get_tensor(key)
            if t.dtype != np.float64:
                failures.append(f"{key} is {t.dtype}, not F64")
            if key.endswith((statistics.COUNT, statistics.SENSITIVITY)) and t.shape != (1,):
                failures.append(f"{key} has shape {list(t.shape)}, not [1]")
            if key.endswith(statistics.SENSITIVITY) and not (np.isfinite(t[0]) and t[0] >= 0):
                failures.append(f"{key} is {t[0]}, not finite and non-negative")
        found = f.metadata() or {}
        described = "sensitivity" in found and "flops:" in found["sensitivity"]
        # Without onnxruntime-training (this run's environment) there are no output metrics, and the
        # metadata says why.
        if not found.get("outputMetric", "").startswith("none"):
            failures.append(f"__metadata__ outputMetric {found.get('outputMetric')!r}: expected why there are none")
        if {k: v for k, v in found.items() if k not in ("sensitivity", "outputMetric")} != statistics.METADATA or described != sensitivities:
            failures.append(f"__metadata__ {found}, expected {statistics.METADATA}" + (" with the sensitivities' description" if sensitivities else ""))
    return failures


def check_values(stats, expected):
    failures = []
    for name, (count, mean, gram) in expected.items():
        s = stats.get(name)
        if s is None:
            failures.append(f"{name}: no statistics")
            continue
        if s.count != count or s.mean.shape != mean.shape or s.gram.shape != gram.shape:
            failures.append(f"{name}: count {s.count}, mean {list(s.mean.shape)}, gram {list(s.gram.shape)}; "
                            f"expected {count}, {list(mean.shape)}, {list(gram.shape)}")
            continue
        error = max(np.abs(s.mean - mean).max() / max(np.abs(mean).max(), 1e-300), np.abs(s.gram - gram).max() / np.abs(gram).max())
        if error > 1e-12:
            failures.append(f"{name}: mean and gram differ from the NumPy reference by {error:.2e} (relative)")
    return failures


def check_round_trip(path, stats, work):
    """write(read(file)) reads back bit for bit, with an output metric added to one layer; a
    metric that is not square and finite is refused by the writer and by the reader."""
    failures = []
    again = os.path.join(work, "round-trip.stats.safetensors")
    first = sorted(stats)[0]
    stats[first].output_metric = np.random.default_rng(5).standard_normal((3, 3))
    statistics.write(again, stats)
    back = statistics.read(again)
    if set(back) != set(stats) or any(back[n].count != stats[n].count or not np.array_equal(back[n].mean, stats[n].mean)
                                      or not np.array_equal(back[n].gram, stats[n].gram) or back[n].sensitivity != stats[n].sensitivity
                                      or (back[n].output_metric is None) != (stats[n].output_metric is None)
                                      or (back[n].output_metric is not None and not np.array_equal(back[n].output_metric, stats[n].output_metric))
                                      for n in stats):
        failures.append("write(read(file)) does not read back bit for bit")
    for bad in (np.ones((2, 3)), np.array([[1.0, np.nan], [0.0, 1.0]])):
        stats[first].output_metric = bad
        try:
            statistics.write(again, stats)
            failures.append(f"the writer took an output metric {bad.tolist()}")
        except statistics.StatisticsError as error:
            if "output metric" not in str(error):
                failures.append(f"the writer's refusal does not name the output metric: {error}")
        tensors = statistics.tensors({n: s for n, s in stats.items() if n != first} | {first: statistics.LayerStatistics(stats[first].count, stats[first].mean, stats[first].gram)})
        tensors[first + statistics.OUTPUT_METRIC] = bad
        save_file(tensors, again)
        try:
            statistics.read(again)
            failures.append(f"the reader took an output metric {bad.tolist()}")
        except statistics.StatisticsError as error:
            if statistics.OUTPUT_METRIC not in str(error):
                failures.append(f"the reader's refusal does not name the output metric: {error}")
    stats[first].output_metric = None
    return failures


def compress(tool, model_path, stats, out, ranks=("--rank", "2"), extra=()):
    return subprocess.run([tool, "compress", model_path, "--output", out, "--statistics", stats, *ranks, "--min-parameters", "0",
                           "--allow-growth", "--json", "--quiet", *extra] + [a for s in SHAPES for a in ("--input-shape", s)],
                          capture_output=True, text=True)


def check_sensitivity_command(tool, model_path, inputs_path, stats_path, stats, work):
    """python -m tdtools.sensitivity on the same statistics writes the file's sensitivities as JSON."""
    path = os.path.join(work, "weights.json")
    done = subprocess.run([sys.executable, "-m", "tdtools.sensitivity", tool, model_path, inputs_path, stats_path, path, "--batch", str(BATCH)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return [f"tdtools.sensitivity failed: {done.stderr.strip()}"]
    with open(path) as f:
        weights = json.load(f)
    stored = {n: s.sensitivity for n, s in stats.items() if s.sensitivity is not None}
    if set(weights) != set(stored) or any(abs(weights[n] - stored[n]) > 1e-9 * max(abs(stored[n]), 1e-300) for n in stored):
        return [f"tdtools.sensitivity wrote {weights}; the statistics file has {stored}"]
    return []


def check_default_weights(tool, model_path, stats_path, stats, work):
    """compress --budget uses the file's sensitivities unless --layer-weights is given, and says which."""
    budget = ("--budget", "macs:0.6")
    weights = os.path.join(work, "stored-weights.json")
    with open(weights, "w") as f:
        json.dump({n: s.sensitivity for n, s in stats.items() if s.sensitivity is not None}, f)
    runs = {}
    for label, extra in (("default", ()), ("given", ("--layer-weights", weights))):
        out = os.path.join(work, f"weighted.{label}.onnx")
        done = compress(tool, model_path, stats_path, out, budget, extra)
        if done.returncode != 0:
            return [f"compress --budget ({label} weights) failed: {done.stderr.strip()}"]
        with open(out, "rb") as f:
            runs[label] = (done.stderr, json.loads(done.stdout).get("layerWeights") or "", f.read())
    failures = []
    if "end-to-end sensitivity from --statistics" not in runs["default"][0] or "sensitivity from --statistics" not in runs["default"][1]:
        failures.append(f"without --layer-weights, standard error {runs['default'][0].strip()!r} and the report's layerWeights "
                        f"{runs['default'][1]!r} do not say that the file's sensitivities weight the allocation")
    if "--layer-weights" not in runs["given"][1] or "not the" not in runs["given"][0]:
        failures.append(f"with --layer-weights, standard error {runs['given'][0].strip()!r} does not say that they replace the file's sensitivities")
    if runs["default"][2] != runs["given"][2]:
        failures.append("the default run and --layer-weights with the file's sensitivities wrote different models")
    return failures


def check_swift(tool, model_path, stats, nodes, work):
    """compress --statistics uses every layer's statistics. Returns failures."""
    done = compress(tool, model_path, stats, os.path.join(work, "compressed.onnx"))
    if done.returncode != 0:
        return [f"compress --statistics failed: {done.stderr.strip()}"]
    if "warning" in done.stderr:
        return [f"compress --statistics warned: {done.stderr.strip()}"]
    document = json.loads(done.stdout)
    failures = [f"warning in the report: {w}" for w in document.get("warnings", [])]
    layers = {layer["name"]: layer for layer in document["layers"]}
    for name in nodes:
        layer = layers.get(name)
        if layer is None or layer["status"] != "replaced":
            failures.append(f"{name}: not replaced ({layer['reason'] if layer else 'not in the report'})")
        elif layer.get("outputError") is None:
            failures.append(f"{name}: replaced without its statistics (no outputError)")
    return failures


def check_sensitivity_verdict(tool, model_path, inputs_path, work):
    """calibrate with its default --sensitivity-check: the metadata gives both damages, and the file
    has sensitivities exactly when the weighted one is the smaller."""
    path = os.path.join(work, "checked.stats.safetensors")
    done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, model_path, inputs_path, path, "--batch", str(BATCH)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return [f"calibrate failed: {done.stderr.strip()}"]
    described = statistics.metadata(path).get("sensitivity", "")
    found = re.search(r"by ([-+.\de]+) against ([-+.\de]+) unweighted", described)
    if not found:
        return [f"__metadata__ sensitivity {described!r} does not give the check's damages"]
    kept = float(found.group(1)) < float(found.group(2))
    stored = any(s.sensitivity is not None for s in statistics.read(path).values())
    if stored != kept or ("left out" in described) == kept or ("sensitivities kept" in done.stderr) != kept:
        return [f"damages {found.group(1)} (weighted) and {found.group(2)}: sensitivities {'stored' if stored else 'absent'}, "
                f"metadata {described!r}, standard error {done.stderr.strip()!r}"]
    return []


def check_failed_check(tool, model_path, inputs_path, nodes, work):
    """A check whose budget compression fails (a tool that refuses every --budget run): calibrate
    still writes the statistics, without sensitivities, warns, and says why in the metadata."""
    wrapper = os.path.join(work, "refusing-budgets.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = --budget ] && { echo 'tensor-compress: error: refused for the test' >&2; exit 1; }; done\n"
                f"exec '{tool}' \"$@\"\n")
    os.chmod(wrapper, 0o755)
    path = os.path.join(work, "failed-check.stats.safetensors")
    done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", wrapper, model_path, inputs_path, path, "--batch", str(BATCH)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(path):
        return [f"calibrate exited {done.returncode} (file written: {os.path.exists(path)}): {done.stderr.strip()}"]
    read = statistics.read(path)
    described = statistics.metadata(path).get("sensitivity", "")
    failures = []
    if sorted(read) != nodes:
        failures.append(f"statistics of {sorted(read)}, expected {nodes}")
    if any(s.sensitivity is not None for s in read.values()):
        failures.append("sensitivities stored although their check failed")
    if "failed" not in described or "refused for the test" not in described:
        failures.append(f"__metadata__ sensitivity {described!r} does not say why they are missing")
    if "warning" not in done.stderr:
        failures.append(f"no warning on standard error: {done.stderr.strip()!r}")
    return failures


def check_refusal(tool, model_path, stats, work):
    """A file whose gemm statistics are one feature short: the Swift reader must refuse it."""
    broken = dict(stats)
    s = stats["gemm"]
    broken["gemm"] = statistics.LayerStatistics(s.count, s.mean[:, :-1], s.gram[:, :-1, :-1])
    path = os.path.join(work, "broken.stats.safetensors")
    statistics.write(path, broken)
    done = compress(tool, model_path, path, os.path.join(work, "broken.onnx"))
    lines = done.stderr.strip().splitlines()
    if done.returncode == 0 or len(lines) != 1 or not lines[0].startswith("tensor-compress: error:") or "statistics" not in lines[0]:
        return [f"compress accepted statistics of the wrong length for gemm, or did not say so in one line "
                f"(exit {done.returncode}: {done.stderr.strip()})"]
    if os.path.exists(os.path.join(work, "broken.onnx")):
        return ["compress left an output file after refusing the statistics"]
    # A negative sensitivity: tdtools.statistics refuses to write one, so the tensors are written raw.
    raw = statistics.tensors({n: statistics.LayerStatistics(s.count, s.mean, s.gram) for n, s in stats.items()})
    raw["gemm" + statistics.SENSITIVITY] = np.array([-1.0])
    save_file(raw, path)
    done = compress(tool, model_path, path, os.path.join(work, "broken.onnx"))
    lines = done.stderr.strip().splitlines()
    if done.returncode == 0 or len(lines) != 1 or "gemm.sensitivity" not in lines[0]:
        return [f"compress accepted a negative sensitivity of gemm, or did not say so in one line (exit {done.returncode}: {done.stderr.strip()})"]
    return []


def check_output_metric_failures(tool, model_path, inputs_path, work):
    """calibrate's output metrics when their environment is missing or fails: a --training-python
    that is not an executable file is refused before anything runs; one that fails (exit status 3,
    no message) leaves the statistics and sensitivities written, with a warning and the reason in
    __metadata__["outputMetric"]."""
    failures = []
    path = os.path.join(work, "metrics.stats.safetensors")
    run = lambda python: subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, model_path, inputs_path, path, "--batch", str(BATCH),
                                         "--sensitivity-check", "0", "--training-python", python], capture_output=True, text=True)
    done = run(os.path.join(work, "no-such-python"))
    if done.returncode == 0 or "is not an executable file" not in done.stderr:
        failures.append(f"a missing --training-python: exit {done.returncode}, {done.stderr.strip()[-200:]!r}")
    failing = os.path.join(work, "failing-python")
    with open(failing, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(failing, 0o755)
    if os.path.exists(path):
        os.remove(path)
    done = run(failing)
    if done.returncode != 0 or not os.path.exists(path):
        return failures + [f"a failing training environment: exit {done.returncode}, file written: {os.path.exists(path)}: {done.stderr.strip()[-300:]}"]
    note = statistics.metadata(path).get("outputMetric", "")
    layers = statistics.read(path)
    if "warning: the statistics are written without output metrics" not in done.stderr or "exit status 3" not in note:
        failures.append(f"a failing training environment: no warning or reason: metadata {note!r}, stderr {done.stderr.strip()[-300:]!r}")
    if any(s.output_metric is not None for s in layers.values()) or not any(s.sensitivity is not None for s in layers.values()):
        failures.append("a failing training environment: output metrics written, or the sensitivities lost")
    return failures


def check_ctc_weighting(tool, model_path, inputs_path, m, feeds, work):
    """calibrate --ctc-output z --ctc-blank 3 --ctc-floor 0.2: the MatMul's rows (aligned with z's
    [batch, time]) weighted by 1 − softmax(z)[…, 3] + 0.2 on top of the attention mask (z holds logits,
    taken from onnxruntime's run as calibrate takes them),
    every other layer as unweighted, the weighting in the metadata; a 2-D output, an unaligned
    --ctc-node and a negative floor refused with a message."""
    failures = []
    path = os.path.join(work, "ctc.stats.safetensors")
    run = lambda *extra: subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, model_path, inputs_path, path,
                                         "--batch", str(BATCH), "--no-sensitivity", *extra], capture_output=True, text=True)
    done = run("--ctc-output", "z", "--ctc-blank", "3", "--ctc-floor", "0.2")
    if done.returncode != 0:
        return [f"calibrate --ctc-output failed: {done.stderr.strip()}"]
    expected = reference(m, feeds, per_channel=False)
    x = layer_inputs(m, feeds)["matmul"].astype(np.float64)
    z = dict(zip([o.name for o in session(m).get_outputs()], session(m).run(None, feeds)))["z"].astype(np.float64)
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    keep = feeds["attention_mask"].astype(bool)
    rows, w = x[keep], (1 - p[:, :, 3] + 0.2)[keep]
    expected["matmul"] = (float(rows.shape[0]), ((w[:, None] * rows).sum(axis=0) / w.sum())[None],
                          (((w[:, None] * rows).T @ rows) / w.sum())[None])
    failures += check_values(statistics.read(path), expected)
    if "matmul" not in statistics.metadata(path).get("weighting", "") or "matmul" not in done.stderr:
        failures.append(f"the weighting is not said: metadata {statistics.metadata(path)}, stderr {done.stderr.strip()!r}")
    for extra, said in ((["--ctc-output", "y"], "[batch, time, classes]"), (["--ctc-output", "nothing"], "not one of the model's outputs"),
                        (["--ctc-output", "z", "--ctc-node", "gemm"], "among the nodes gemm"), (["--ctc-output", "z", "--ctc-floor", "-1"], "--ctc-floor -1"),
                        (["--ctc-floor", "0.3"], "need --ctc-output")):
        done = run(*extra)
        if done.returncode == 0 or said not in done.stderr or "Traceback" in done.stderr:
            failures.append(f"calibrate {' '.join(extra)}: exit {done.returncode}, expected a refusal saying {said!r}: {done.stderr.strip()[-300:]!r}")
    return failures


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    m = model()
    model_path = os.path.join(work, "statistics-format.onnx")
    onnx.save_model(m, model_path)
    feeds = inputs()
    inputs_path = os.path.join(work, "inputs.npz")
    np.savez(inputs_path, **feeds)
    nodes = sorted(n["name"] for n in compressible_nodes(tool, model_path, SHAPES))
    failed = 0
    if set(nodes) != LAYERS:
        print(f"FAIL statistics: inspect lists the compressible nodes {nodes}, expected {sorted(LAYERS)}")
        sys.exit(1)
    # The per-channel run also checks --no-sensitivity (a file without sensitivities).
    for label, extra, per_channel in (("im2col patches", ["--sensitivity-check", "0"], False),
                                      ("per-channel fallback, --no-sensitivity", ["--patch-limit", "20", "--no-sensitivity"], True)):
        stats_path = os.path.join(work, "model.stats.safetensors")
        done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, model_path, inputs_path, stats_path,
                               "--batch", str(BATCH)] + extra, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"FAIL statistics ({label}): calibrate failed: {done.stderr.strip()}")
            failed += 1
            continue
        stats = statistics.read(stats_path)
        checks = [("layout (names, F64, shapes, metadata)", check_layout(stats_path, nodes, sensitivities=not per_channel)),
                  ("values against NumPy", check_values(stats, reference(m, feeds, per_channel))),
                  ("Python round trip", check_round_trip(stats_path, stats, work)),
                  ("read by compress --statistics, every layer", check_swift(tool, model_path, stats_path, nodes, work))]
        if not per_channel:
            checks += [("sensitivities the same as tdtools.sensitivity's", check_sensitivity_command(tool, model_path, inputs_path, stats_path, stats, work)),
                       ("sensitivities weight compress --budget unless --layer-weights, said", check_default_weights(tool, model_path, stats_path, stats, work)),
                       ("wrong length and negative sensitivity refused by compress", check_refusal(tool, model_path, stats, work))]
        for check, failures in checks:
            failed += bool(failures)
            print(f"{'FAIL' if failures else 'ok  '} statistics ({label}): {check}" + "".join(f"\n    {f}" for f in failures))
    failures = check_sensitivity_verdict(tool, model_path, inputs_path, work)
    failed += bool(failures)
    print(f"{'FAIL' if failures else 'ok  '} statistics (checked sensitivities): kept or left out as the metadata says" + "".join(f"\n    {f}" for f in failures))
    failures = check_failed_check(tool, model_path, inputs_path, nodes, work)
    failed += bool(failures)
    print(f"{'FAIL' if failures else 'ok  '} statistics (a check that fails): statistics written without sensitivities, said" + "".join(f"\n    {f}" for f in failures))
    failures = check_output_metric_failures(tool, model_path, inputs_path, work)
    failed += bool(failures)
    print(f"{'FAIL' if failures else 'ok  '} statistics (output metrics): a missing training environment refused, a failing one said, the rest written" + "".join(f"\n    {f}" for f in failures))
    failures = check_ctc_weighting(tool, model_path, inputs_path, m, feeds, work)
    failed += bool(failures)
    print(f"{'FAIL' if failures else 'ok  '} statistics (--ctc-output): the aligned rows weighted by the blank probability, the rest not, refusals" + "".join(f"\n    {f}" for f in failures))
    print("statistics format: " + (f"{failed} checks failed" if failed else "every check passed"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
