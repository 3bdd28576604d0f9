"""The INT8 step (tdtools.quantize, onnxruntime's quantizer) on a small opset-12 convolutional
model and a small MatMul model, each before and after `tensor-compress compress`:

    PYTHONPATH=Python python Tests/ONNXConformance/quantize_check.py TOOL WORKDIR

- static: the opset is raised to 13, the output holds QuantizeLinear/DequantizeLinear pairs with
  per-channel (axis) weight scales, onnxruntime runs it, and its outputs stay within 8% (relative
  Frobenius norm) of the float model's on held-out inputs;
- dynamic: the output holds DynamicQuantizeLinear or MatMulInteger nodes and stays within 5%
  (a factorized stack quantizes more layers in a row than the original, hence the static margin);
- static quantization calibrated on a directory of feeds of several widths (percentile, entropy,
  ``--held-out``), whose outputs stay within 8% at a width it was not calibrated on;
- ``--exclude`` keeps the matching node in float, and a malformed expression is refused;
- ``--held-out``: every candidate recipe is tried and scored, and the one written is the one whose
  outputs on the held-out samples are closest to the float model's (its error recomputed here),
  and a percentile candidate (its ranges from the collection that the percentile candidates share)
  is the model that ``--percentile`` writes alone;
- ``--per-tensor``: the ranges chosen per activation are no worse on the held-out samples than the
  best uniform percentile, the closest recipe of all is written, and it is refused without
  ``--held-out`` or with fewer than two percentile candidates;
  ``--percentile``, ``--method`` and ``--candidates`` are checked (dynamic, malformed, out of range, together with
  what they contradict: refused);
- ``--bias-correction``, on pages of a flat background: every Conv's bias is corrected (a bias-less
  one gets one), and each Conv output channel's mean on the calibration inputs is the float
  model's to within half a unit of its bias (closer than without the correction); with
  ``--held-out`` each recipe is tried as it is and corrected, and the closest is written; with
  dynamic it is refused;
- a static run without calibration inputs, or onto its own input, is refused with one line;
- ``tdtools.profile`` lists the kernel time by operator type of the float and the INT8 model.
Prints one line per check; exit status 1 when one fails.
"""
import os
import re
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tdtools.session import session

rng = np.random.default_rng(31)
failures = []


def check(ok, label, detail=""):
    print(("ok   " if ok else "FAIL ") + label + (f": {detail}" if detail else ""))
    if not ok:
        failures.append(label)


def conv_model(path, dims=(1, 8, 12, 12)):
    w1 = rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((8, 16, 1, 1)).astype(np.float32) * 0.2
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [dims[0], 8, *dims[2:]])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(np.zeros(16, np.float32) + 0.1, "b1"),
                               numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), path)


def matmul_model(path):
    w1 = rng.standard_normal((64, 96)).astype(np.float32) * 0.1
    w2 = rng.standard_normal((96, 32)).astype(np.float32) * 0.1
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="fc1"), helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    graph = helper.make_graph(nodes, "mm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10, 32])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def quantize(*args):
    return subprocess.run([sys.executable, "-m", "tdtools.quantize", *args], capture_output=True, text=True)


def same_as_alone(model, calibration, held_out, x, work):
    """(whether the model that --held-out writes from two percentile candidates, whose ranges come
    from one shared collection, is the model that --percentile writes by itself at the percentile
    chosen; a detail)."""
    chosen = os.path.join(work, "chosen.onnx")
    run = quantize("static", model, chosen, "--calibration", calibration, "--held-out", held_out, "--candidates", "percentile:99,percentile:99.99")
    kept = re.search(r"ranges percentile ([0-9.]+)", run.stderr)
    if run.returncode or not kept:
        return False, run.stderr.strip()[-300:]
    alone = os.path.join(work, "alone.onnx")
    run = quantize("static", model, alone, "--calibration", calibration, "--percentile", kept.group(1))
    if run.returncode:
        return False, run.stderr.strip()[-300:]
    return np.array_equal(session(alone).run(None, {"x": x})[0], session(chosen).run(None, {"x": x})[0]), f"percentile {kept.group(1)} chosen"


def pages(count, dims=(8, 12, 12)):
    """Inputs that are flat over most positions, as a page's background is: one value per channel
    (the same on every page), with a few random patches of "text"."""
    background = np.linspace(-1.0, 2.0, dims[0]).astype(np.float32)[:, None, None]
    x = np.broadcast_to(background, (count, *dims)).copy()
    text = rng.random((count, 1, *dims[1:])) < 0.15
    return np.where(text, rng.standard_normal((count, *dims)).astype(np.float32) * 2, x).astype(np.float32)


def conv_means(path, feeds, names):
    """{name: the mean over feeds and positions of each channel of that tensor} (graph outputs added)."""
    model = onnx.load(path)
    model.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in names if t not in {o.name for o in model.graph.output})
    s = session(model.SerializeToString())
    values = [s.run(names, {"x": feeds[k:k + 1]}) for k in range(len(feeds))]
    return {t: np.mean([v[j].astype(np.float64).mean(axis=(0, 2, 3)) for v in values], axis=0) for j, t in enumerate(names)}


def check_bias_correction(conv, work):
    calibration, held_path = os.path.join(work, "pages.calibration.npz"), os.path.join(work, "pages.held-out.npz")
    x, held = pages(16), pages(4)
    np.savez(calibration, x=x)
    np.savez(held_path, x=held)
    plain, corrected = os.path.join(work, "pages.int8.onnx"), os.path.join(work, "pages.corrected.int8.onnx")
    runs = [quantize("static", conv, target, "--calibration", calibration, "--percentile", "99.9", *extra)
            for target, extra in ((plain, ()), (corrected, ("--bias-correction",)))]
    if any(run.returncode for run in runs):
        check(False, "static --bias-correction on pages", runs[-1].stderr.strip()[-300:])
        return
    check("2 of 2 Conv biases corrected" in runs[1].stderr, "static --bias-correction corrects both Convs' biases",
          runs[1].stderr.strip().splitlines()[0])
    model = onnx.load(corrected)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    check(all(len(n.input) == 3 and n.input[2] for n in convs), "static --bias-correction: the bias-less Conv gets a bias")
    # Each Conv's output, under the names the QDQ model gives them, against the float model's.
    names = [n.output[0] for n in convs]
    units = {}
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in convs:
        units[n.output[0]] = inits[producer[n.input[2]].input[1]].astype(np.float64)
    reference = conv_means(conv, x, ["a", "y"])
    after, before = conv_means(corrected, x, names), conv_means(plain, x, names)
    residual = [np.abs(after[t] - reference[f]) / units[t] for t, f in zip(names, ("a", "y"))]
    off = max(float(np.max(np.abs(before[t] - reference[f]) / units[t])) for t, f in zip(names, ("a", "y")))
    worst = max(float(np.max(r)) for r in residual)
    check(worst <= 0.5 + 1e-3 and worst < off, "static --bias-correction: each Conv output channel's mean on the calibration inputs is "
          "the float model's to within half a bias unit", f"{worst:.3f} units after, {off:.1f} before")
    chosen = os.path.join(work, "pages.chosen.int8.onnx")
    run = quantize("static", conv, chosen, "--calibration", calibration, "--held-out", held_path, "--candidates", "percentile:99,percentile:99.99",
                   "--bias-correction")
    scored = {line.split(": output error")[0].removeprefix("quantize: "): float(line.split("output error ")[1].split()[0])
              for line in run.stderr.splitlines() if "held-out samples" in line and "output error" in line and "wrote" not in line}
    if run.returncode == 0 and len(scored) == 4 and "percentile 99.99, bias-corrected" in scored:
        from tdtools.sensitivity import damage, outputs
        feeds = [{"x": held[k:k + 1]} for k in range(len(held))]
        measured = damage(outputs(session(conv), feeds), outputs(session(chosen), feeds))
        check(abs(measured - min(scored.values())) <= 1e-3 * min(scored.values()) + 1e-9,
              "static --held-out --bias-correction: each recipe tried as it is and corrected, the closest written", f"{scored}; written {measured:.4g}")
    else:
        check(False, "static --held-out --bias-correction scores 2 recipes twice", run.stderr.strip()[-300:])


def relative_error(a_path, b_path, x):
    a = session(a_path).run(None, {"x": x})[0]
    b = session(b_path).run(None, {"x": x})[0]
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    conv, mm = os.path.join(work, "conv.onnx"), os.path.join(work, "mm.onnx")
    conv_model(conv)
    matmul_model(mm)
    calibration = os.path.join(work, "conv.calibration.npz")
    np.savez(calibration, x=rng.standard_normal((16, 8, 12, 12)).astype(np.float32))
    held_out = rng.standard_normal((1, 8, 12, 12)).astype(np.float32)
    # The low-rank model first: the INT8 step runs on compress's output as on the original.
    compressed = os.path.join(work, "conv.compressed.onnx")
    run = subprocess.run([tool, "compress", conv, "--output", compressed, "--rank", "4", "--min-parameters", "0", "--quiet"],
                         capture_output=True, text=True)
    check(run.returncode == 0, "compress the convolutional model", run.stderr.strip())
    for source in (conv, compressed):
        name = os.path.basename(source)
        target = source.replace(".onnx", ".int8.onnx")
        run = quantize("static", source, target, "--calibration", calibration)
        check(run.returncode == 0, f"static {name}", run.stderr.strip().splitlines()[-1] if run.returncode else "")
        if run.returncode:
            continue
        model = onnx.load(target)
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        ops = {n.op_type for n in model.graph.node}
        per_channel = any(n.op_type == "DequantizeLinear" and any(a.name == "axis" for a in n.attribute) for n in model.graph.node)
        check(opset >= 13 and {"QuantizeLinear", "DequantizeLinear"} <= ops and per_channel,
              f"static {name}: opset {opset}, QDQ nodes, per-channel weights")
        error = relative_error(source, target, held_out)
        check(error < 0.08, f"static {name}: output within 8% on held-out inputs", f"{error:.4f}")
    # --held-out: the recipe chosen among the candidates by the output error on held-out samples.
    from tdtools.sensitivity import damage, outputs
    held_path = os.path.join(work, "conv.held-out.npz")
    held = rng.standard_normal((4, 8, 12, 12)).astype(np.float32) * 1.5
    np.savez(held_path, x=held)
    chosen = os.path.join(work, "conv.chosen.int8.onnx")
    run = quantize("static", conv, chosen, "--calibration", calibration, "--held-out", held_path, "--candidates", "percentile:99,minmax,percentile:99.99")
    scored = [line for line in run.stderr.splitlines() if "held-out samples" in line and "output error" in line and "wrote" not in line]
    if run.returncode == 0 and len(scored) == 3:
        errors = [float(line.split("output error ")[1].split()[0]) for line in scored]
        feeds = [{"x": held[k:k + 1]} for k in range(len(held))]
        measured = damage(outputs(session(conv), feeds), outputs(session(chosen), feeds))
        kept = run.stderr.strip().splitlines()[-1]
        check(abs(measured - min(errors)) <= 1e-3 * min(errors) + 1e-9 and f"output error {min(errors):.4g}" in kept,
              "static --held-out writes the candidate with the smallest held-out output error",
              f"{', '.join(f'{e:.4g}' for e in errors)}; written {measured:.4g}; {kept}")
    else:
        check(False, "static --held-out scores each of 3 candidates", run.stderr.strip()[-300:])
    same, detail = same_as_alone(conv, calibration, held_path, held[:1], work)
    check(same, "static --held-out: a percentile candidate is the model --percentile writes alone", detail)
    # --per-tensor: each activation's percentile chosen on the held-out samples, starting from the
    # best uniform percentile; never worse than it, and the model written is the closest of all.
    refined = os.path.join(work, "conv.per-tensor.int8.onnx")
    run = quantize("static", compressed, refined, "--calibration", calibration, "--held-out", held_path, "--candidates",
                   "percentile:99,percentile:99.99,minmax", "--per-tensor")
    scored = {line.split(": output error")[0].removeprefix("quantize: "): float(line.split("output error ")[1].split()[0])
              for line in run.stderr.splitlines() if "held-out samples" in line and "output error" in line and "wrote" not in line}
    if run.returncode == 0 and len(scored) == 4 and "percentile per tensor" in scored:
        feeds = [{"x": held[k:k + 1]} for k in range(len(held))]
        measured = damage(outputs(session(compressed), feeds), outputs(session(refined), feeds))
        uniform = min(scored["percentile 99"], scored["percentile 99.99"])
        check(scored["percentile per tensor"] <= uniform and abs(measured - min(scored.values())) <= 1e-3 * min(scored.values()) + 1e-9,
              "static --per-tensor: no worse than the best uniform percentile, and the closest recipe is written",
              f"{scored}; written {measured:.4g}")
    else:
        check(False, "static --per-tensor scores 3 candidates and the per-tensor ranges", run.stderr.strip()[-300:])
    check_bias_correction(conv, work)
    for args, expected, label in (
            (("dynamic", mm, os.path.join(work, "p.onnx"), "--percentile", "99.99"), "computes at run time", "--percentile with dynamic"),
            (("dynamic", mm, os.path.join(work, "p.onnx"), "--bias-correction"), "dynamic has neither", "--bias-correction with dynamic"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--percentile", "101"), "lies outside", "--percentile 101"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--held-out", held_path, "--candidates", "percentile:x"),
             "is not a number", "--candidates percentile:x"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--held-out", held_path, "--candidates", "median"),
             "the methods are", "--candidates median"),
            (("static", conv, os.path.join(work, "p.onnx"), "--held-out", held_path), "needs --calibration", "--held-out without --calibration"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--held-out", held_path, "--method", "minmax"),
             "goes without --held-out", "--method with --held-out"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--candidates", "minmax"),
             "are tried on --held-out", "--candidates without --held-out"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--per-tensor"),
             "chooses ranges on --held-out", "--per-tensor without --held-out"),
            (("static", conv, os.path.join(work, "p.onnx"), "--calibration", calibration, "--held-out", held_path, "--candidates",
              "percentile:99,minmax", "--per-tensor"), "fewer than two", "--per-tensor with one percentile candidate")):
        run = quantize(*args)
        check(run.returncode != 0 and expected in run.stderr and not os.path.exists(os.path.join(work, "p.onnx")),
              f"{label} is refused with one line", run.stderr.strip())
    # Feeds of several widths (a text line recogniser's lines): onnxruntime's histogram calibrators
    # stack every collected output into one array, which fails on them without the per-feed windows.
    wide = os.path.join(work, "conv.wide.onnx")
    conv_model(wide, dims=(1, 8, 12, "W"))
    feeds = os.path.join(work, "widths")
    os.makedirs(feeds, exist_ok=True)
    for k, width in enumerate((12, 20, 16, 28, 12, 24)):
        np.savez(os.path.join(feeds, f"{k:02d}.npz"), x=rng.standard_normal((1, 8, 12, width)).astype(np.float32))
    for args, label in ((("--percentile", "99.99"), "percentile"), (("--method", "entropy"), "entropy"),
                        (("--held-out", feeds, "--candidates", "percentile:99.9,minmax"), "--held-out")):
        target = os.path.join(work, f"conv.wide.{label.strip('-')}.int8.onnx")
        run = quantize("static", wide, target, "--calibration", feeds, *args)
        x = rng.standard_normal((1, 8, 12, 36)).astype(np.float32)
        error = relative_error(wide, target, x) if run.returncode == 0 else float("nan")
        check(run.returncode == 0 and error < 0.08, f"static {label} on feeds of several widths, output within 8% at another width",
              f"{error:.4f}" if run.returncode == 0 else run.stderr.strip()[-300:])
    same, detail = same_as_alone(wide, feeds, feeds, rng.standard_normal((1, 8, 12, 20)).astype(np.float32), work)
    check(same, "static --held-out on feeds of several widths: a percentile candidate is the model --percentile writes alone", detail)
    target = os.path.join(work, "mm.int8.onnx")
    run = quantize("dynamic", mm, target)
    check(run.returncode == 0, "dynamic mm.onnx", run.stderr.strip().splitlines()[-1] if run.returncode else "")
    if run.returncode == 0:
        ops = {n.op_type for n in onnx.load(target).graph.node}
        check(bool(ops & {"DynamicQuantizeLinear", "MatMulInteger"}), "dynamic mm.onnx: quantized MatMuls", ", ".join(sorted(ops)))
        error = relative_error(mm, target, rng.standard_normal((1, 10, 64)).astype(np.float32))
        check(error < 0.05, "dynamic mm.onnx: output within 5%", f"{error:.4f}")
    # --exclude: the named node stays in float (its weight is not dequantized from INT8), the other one is quantized.
    excluded = os.path.join(work, "mm.excluded.int8.onnx")
    run = quantize("dynamic", mm, excluded, "--exclude", "^fc2$")
    if run.returncode == 0:
        nodes = onnx.load(excluded).graph.node
        float_fc2 = any(n.op_type == "MatMul" and "w2" in n.input for n in nodes)
        quantized_fc1 = any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in nodes)
        check(float_fc2 and quantized_fc1 and "1 node(s) matching" in run.stderr, "dynamic --exclude ^fc2$: fc2 stays float, fc1 is quantized",
              run.stderr.strip().splitlines()[0])
    else:
        check(False, "dynamic --exclude ^fc2$", run.stderr.strip())
    run = quantize("dynamic", mm, os.path.join(work, "none.onnx"), "--exclude", "^nothing$")
    check(run.returncode != 0 and "matches no node" in run.stderr and not os.path.exists(os.path.join(work, "none.onnx")),
          "an --exclude that matches no node is refused", run.stderr.strip())
    run = quantize("dynamic", mm, os.path.join(work, "bad.onnx"), "--exclude", "(")
    check(run.returncode != 0 and "is not a regular expression" in run.stderr and not os.path.exists(os.path.join(work, "bad.onnx")),
          "a malformed --exclude is refused with one line", run.stderr.strip())
    # tdtools.profile: the kernel time by operator type of the float and the INT8 model.
    feeds = os.path.join(work, "mm.feeds.npz")
    np.savez(feeds, x=rng.standard_normal((2, 1, 10, 64)).astype(np.float32).reshape(2, 10, 64)[:, None][:, 0][:, None].reshape(2, 1, 10, 64)[:, 0])
    run = subprocess.run([sys.executable, "-m", "tdtools.profile", feeds, mm, target, "--runs", "3"], capture_output=True, text=True)
    check(run.returncode == 0 and "MatMul" in run.stdout and "kernels, summed" in run.stdout, "tdtools.profile lists kernel time by operator type",
          run.stderr.strip().splitlines()[-1] if run.returncode else "")
    run = quantize("static", conv, os.path.join(work, "nocal.onnx"))
    check(run.returncode != 0 and "needs --calibration" in run.stderr and not os.path.exists(os.path.join(work, "nocal.onnx")),
          "static without calibration inputs is refused", run.stderr.strip())
    run = quantize("dynamic", mm, mm)
    check(run.returncode != 0 and "is the input model" in run.stderr, "the input is never the output", run.stderr.strip())
    if failures:
        print(f"quantize: {len(failures)} check(s) failed: {', '.join(failures)}")
        sys.exit(1)
    print("quantize: every check passed")


if __name__ == "__main__":
    main()
