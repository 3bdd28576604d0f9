"""INT8 quantization of an ONNX model by onnxruntime.quantization, after (or instead of) low-rank
compression: no quantizer of our own.

The model is first prepared by onnxruntime's own `quant_pre_process` (shape inference and its graph
optimisations: constants folded into initializers, batch normalisations fused), which the
quantizer asks for; then one of two recipes:
- ``dynamic``: weights INT8 per channel, activations quantized at run time
  (``quantize_dynamic``); for MatMul-heavy models (transformers such as MiniLM).
- ``static``: QDQ format, weights INT8 per channel, activations UINT8 with ranges calibrated on
  the model's calibration inputs (``quantize_static``; Percentile ranges by default, which kept
  PP-OCR closer to the original than MinMax: recogniser CER 1.21% against 1.48%, detector
  text-map Dice 0.872 against 0.832 alone, 0.927 against 0.878 after low-rank); for
  convolutional models. Per-channel
  QDQ needs opset 13, so a model of an older opset is converted first (``onnx.version_converter``).

Which activation ranges suit a network is not known in advance: on the PP-OCR detector the
percentile alone moves the text map's agreement with the original from 0.82 to 0.98 (Dice), and
not monotonically. With ``--held-out INPUTS`` (samples of the calibration domain that the ranges
are not computed from) the static recipe is chosen, not assumed: each candidate (``--candidates``,
default Percentile 99.9, 99.95, 99.99, 99.999 and MinMax) is quantized, every one is run on the
held-out samples beside the float model, and the one whose outputs are closest (mean over outputs
and samples of ‖y − ŷ‖²/‖y‖²) is written; the table of candidates is printed. The percentile
candidates share one collection of onnxruntime's Percentile calibrator (its histograms do not
depend on the percentile), each written from an onnxruntime calibration cache of its ranges.
With ``--per-tensor`` besides, no single percentile is imposed on the whole network: starting from
the best percentile candidate, the percentile of each activation is chosen among the percentile
candidates by the same held-out error (`refine`: blocks of activations in graph order, ever
smaller, a change kept when it lowers the error by more than 2%); a few hundred quantized models
are tried (about 4 min for the PP-OCR detector, 10 for the recognizer on 64 lines), and the result
competes with the uniform candidates. It fits the held-out samples, which does not always carry
over to other data: on the PP-OCR detector's low-rank model (`macs:0.9`) it takes the held-out error from
0.067 to 0.039 and the text map's Dice on the evaluation pages from 0.961 to 0.974, but on the
recognizer's it takes the error from 0.027 to 0.016 and the CER from 0.52% to 0.88%, so it is not
the main job's default (Documentation/Performance.md). Without ``--held-out`` the ranges are
Percentile at ``--percentile`` (default onnxruntime's 99.999), or ``--method``.

With ``--bias-correction`` the static model is then corrected against its calibration inputs
(`correct_biases`, an empirical bias correction): layer after layer, each quantized Conv's bias is
moved so that the means of its output channels are the float model's; with ``--held-out`` every
candidate recipe is tried as it is and corrected, and all compete. Where an activation is flat over
most of an input (a page's background), its rounding is a per-channel offset that the next layers
carry and that moves erratically with the range: on the PP-OCR detector's low-rank model (`macs:0.9`) the held-out errors of
Percentile 99.9 … 99.999 go from 0.084, 0.067, 0.227, 0.080, 0.366, 0.144 to 0.066, 0.048, 0.047,
0.026, 0.026, 0.042 corrected, and the text map's Dice on the evaluation pages from 0.961 to 0.980
(Documentation/Performance.md, "Bias correction"). It costs one onnxruntime run over at most
``BIAS_FEEDS`` calibration feeds per level of Convs (about 30 s a candidate on that detector).

Calibration feeds of several shapes (a directory of .npz feeds: text lines of several widths) are
collected one feed at a time, since onnxruntime's histogram calibrators stack every collected
output into one array and fail on several shapes.

Only the operators named by ``--ops`` are quantized (default Conv and MatMul; ``all`` leaves the
choice to the quantizer), and not the nodes whose name matches ``--exclude``; the others stay in
float.

    python -m tdtools.quantize dynamic model.onnx model.int8.onnx
    python -m tdtools.quantize static det.onnx det.int8.onnx --calibration det.calibration.npz --count 16
    python -m tdtools.quantize static common.onnx common.int8.onnx --calibration feeds/    (a directory of .npz feeds)
    python -m tdtools.quantize static det.onnx det.int8.onnx --calibration det.calibration.npz --held-out det.held-out.npz
    python -m tdtools.quantize static det.onnx det.int8.onnx --calibration det.calibration.npz --held-out det.held-out.npz --per-tensor
    python -m tdtools.quantize static det.onnx det.int8.onnx --calibration det.calibration.npz --held-out det.held-out.npz --bias-correction
"""
import argparse
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process


class NpzReader(CalibrationDataReader):
    """Feeds from an .npz in the calibration inputs' format (`tdtools.calibrate`): an array per
    model input, one sample at a time along its first axis, and `constants/NAME` arrays fed as
    they are in every feed; or from a directory of .npz files, each one complete feed (the other
    format of `tdtools.calibrate`, for inputs whose shapes differ from sample to sample), in
    file-name order."""

    def __init__(self, path, input_names, count=None):
        if os.path.isdir(path):
            files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".npz"))
            if not files:
                raise SystemExit(f"quantize: {path} holds no .npz feeds")
            feeds = [np.load(f) for f in files[:count]]
            missing = [name for name in input_names if name not in feeds[0].files]
            if missing:
                raise SystemExit(f"quantize: {files[0]} has no array for input(s) {', '.join(missing)} (it holds {', '.join(feeds[0].files)})")
            self.feeds = [{name: feed[name] for name in input_names} for feed in feeds]
            self.count = len(self.feeds)
            self.position = 0
            self.end = self.count
            # Feeds of several shapes (lines of several widths): onnxruntime's histogram calibrators
            # stack every collected output into one array, which fails on them, unless the
            # data is collected one feed at a time (see static).
            self.varying = len({tuple((name, feed[name].shape) for name in input_names) for feed in self.feeds}) > 1
            return
        self.feeds = None
        data = np.load(path)
        missing = [name for name in input_names if name not in data.files and f"constants/{name}" not in data.files]
        if missing:
            raise SystemExit(f"quantize: {path} has no array for input(s) {', '.join(missing)} (it holds {', '.join(data.files)})")
        self.arrays = {name: data[name] for name in input_names if name in data.files}
        self.constants = {name: data[f"constants/{name}"] for name in input_names if name not in data.files}
        total = min((len(a) for a in self.arrays.values()), default=1)
        self.count = total if count is None else min(count, total)
        self.position = 0
        self.end = self.count
        self.varying = False

    def __len__(self):
        return self.count

    def set_range(self, start_index, end_index):
        """The feeds [start_index, end_index) only (onnxruntime's quantize_static calls it with
        its CalibStridedMinMax option, to collect the data in windows)."""
        self.position, self.end = start_index, min(end_index, self.count)

    def get_next(self):
        if self.position >= self.end:
            return None
        if self.feeds is not None:
            self.position += 1
            return self.feeds[self.position - 1]
        feed = {name: a[self.position:self.position + 1] for name, a in self.arrays.items()}
        feed.update(self.constants)
        self.position += 1
        return feed

    def rewind(self):
        self.position, self.end = 0, self.count


def opset_of(model):
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


METHODS = {"percentile": CalibrationMethod.Percentile, "minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy}
NEEDS_CALIBRATION = "quantize: static quantization needs --calibration INPUTS.npz or a directory of .npz feeds (the model's calibration inputs)"
# The static recipes that --held-out chooses among: (method, percentile).
CANDIDATES = "percentile:99.9,percentile:99.95,percentile:99.99,percentile:99.999,minmax"


def candidates_of(text):
    """[(method, percentile or None)] from `percentile:P,minmax,entropy,…`; SystemExit when malformed."""
    result = []
    for item in text.split(","):
        method, _, value = item.strip().partition(":")
        if method not in METHODS:
            raise SystemExit(f"quantize: --candidates names {method!r}; the methods are {', '.join(sorted(METHODS))}")
        if value and method != "percentile":
            raise SystemExit(f"quantize: --candidates {item!r}: only percentile takes a value")
        try:
            percentile = float(value) if value else None
        except ValueError:
            raise SystemExit(f"quantize: --candidates {item!r}: {value!r} is not a number")
        if percentile is not None and not 50 < percentile <= 100:
            raise SystemExit(f"quantize: --candidates {item!r}: a percentile lies in (50, 100]")
        result.append((method, percentile))
    return result


def feeds_of(path, input_names):
    """Every feed of an inputs file or directory (the format of --calibration), as a list."""
    reader, feeds = NpzReader(path, input_names), []
    while (feed := reader.get_next()) is not None:
        feeds.append(feed)
    return feeds


def choose(source, target, calibration, held_out, candidates, count=None, ops=("Conv", "MatMul"), preprocess=True, exclude=None, log=print,
           per_tensor=False, bias_correction=False):
    """Writes ``target``: ``source`` quantized static by the candidate recipe whose outputs on the
    held-out inputs are closest to the float model's (mean ‖y − ŷ‖²/‖y‖², tdtools.sensitivity's
    damage); returns [(recipe as printed, damage)] in the order tried and the index kept. The
    model is prepared once, and the percentile candidates' ranges come from one collection. With
    ``bias_correction``, each candidate is also tried after `correct_biases` on the calibration
    inputs (both compete). With ``per_tensor``, the percentile of each activation is then chosen too
    (`refine`), and that recipe, last in the list, competes with the others."""
    from .sensitivity import damage, outputs
    from .session import session
    reference_session = session(source)
    feeds = feeds_of(held_out, [i.name for i in reference_session.get_inputs()])
    if not feeds:
        raise SystemExit(f"quantize: --held-out {held_out} holds no samples")
    reference = outputs(reference_session, feeds)

    def score(path):
        d = damage(reference, outputs(session(path), feeds))
        return d if np.isfinite(d) else float("inf")
    candidates = [(m, 99.999 if m == "percentile" and p is None else p) for m, p in candidates]
    tried, uniform = [], []   # uniform: (percentile, damage) of the uncorrected percentile candidates

    def keep(label, path, d=None):
        d = score(path) if d is None else d
        os.replace(path, os.path.join(work, f"candidate{len(tried)}.onnx"))
        tried.append((label, d))
        log(f"quantize: {label}: output error {d:.4g} on the {len(feeds)} held-out samples")
        return d
    with tempfile.TemporaryDirectory() as work:
        prepared, excluded, inputs = prepare(source, work, "static", preprocess, exclude)
        reader = NpzReader(calibration, inputs, count)
        calibration_feeds = feeds_of(calibration, inputs)[:count] if bias_correction else None
        percentiles = sorted({p for m, p in candidates if m == "percentile"})
        ranges = percentile_ranges(prepared, reader, ops, percentiles, work) if percentiles else {}
        path = os.path.join(work, "trial.onnx")
        for method, percentile in candidates:
            if method == "percentile":
                static(prepared, path, None, ops, excluded, method, ranges=ranges[percentile])
            else:
                reader.rewind()
                static(prepared, path, reader, ops, excluded, method)
            if bias_correction:
                shutil.copyfile(path, path + ".corrected")
            d = keep(recipe(method, percentile), path)
            if method == "percentile":
                uniform.append((percentile, d))
            if bias_correction:
                os.replace(path + ".corrected", path)
                correct_biases(prepared, path, calibration_feeds, log)
                keep(recipe(method, percentile) + ", bias-corrected", path)
        if per_tensor:
            start, error = min(uniform, key=lambda u: u[1])
            keep(recipe("per-tensor", None), path, refine(prepared, path, ops, excluded, ranges, start, error, score, work, log))
        best = min(range(len(tried)), key=lambda k: tried[k][1])
        if tried[best][1] == float("inf"):
            raise SystemExit("quantize: every candidate recipe gave non-finite outputs on the held-out samples; nothing written")
        shutil.copyfile(os.path.join(work, f"candidate{best}.onnx"), target)
    return tried, best


def recipe(method, percentile):
    """A candidate recipe as the printed table names it (`percentile 99.99`, `minmax`, `percentile per tensor`)."""
    if method == "per-tensor":
        return "percentile per tensor"
    return f"{method} {percentile:g}" if percentile is not None else method


# The relative drop of the held-out error for which `refine` keeps a change: smaller ones are within
# what the choice of held-out samples moves.
KEEP_BELOW = 0.98


def refine(prepared, target, ops, excluded, ranges, start, error, score, work, log=print):
    """The percentile of each activation range chosen on held-out samples: writes ``target`` (the
    prepared model quantized static with the ranges found) and returns its error ``score(path)``.

    Starts from every range at the percentile ``start`` (whose error is ``error``), then, over the
    activations in graph order, in blocks of an eighth, a sixteenth and a thirty-second of them,
    tries each other percentile of ``ranges`` ({percentile: onnxruntime calibration cache}) for
    the whole block and keeps the one that lowers the error by more than 2%. Ranges come from
    onnxruntime's calibrator and the model from its quantizer; only which percentile each
    activation takes is chosen here. Why: on the PP-OCR detector the held-out error moves
    erratically with single activations' ranges (the first convolution's output alone, at 99.97
    instead of 99.95 with every other range kept: 0.161 against 0.067), so no one percentile suits
    every activation (Documentation/Performance.md)."""
    tables = {}
    for p, cache in ranges.items():
        with open(cache) as file:
            tables[p] = json.load(file)
    present = set(tables[start]["data"])
    graph = onnx.load(prepared, load_external_data=False).graph
    order = [i.name for i in graph.input] + [o for node in graph.node for o in node.output]
    names = [t for t in dict.fromkeys(order) if t in present] + sorted(present - set(order))
    choice = dict.fromkeys(names, start)
    path = os.path.join(work, "refine.onnx")

    def quantized(choice, path):
        cache = dict(tables[start])
        cache["data"] = {t: tables[choice[t]]["data"][t] for t in names}
        with open(os.path.join(work, "refine.json"), "w") as file:
            json.dump(cache, file)
        static(prepared, path, None, ops, excluded, ranges=os.path.join(work, "refine.json"))
        d = score(path)
        return d if np.isfinite(d) else float("inf")

    evaluations = 0
    for parts in (8, 16, 32):
        size = max(1, len(names) // parts)
        kept = 0
        for begin in range(0, len(names), size):
            block = names[begin:begin + size]
            for p in sorted(tables):
                if all(choice[t] == p for t in block):
                    continue
                trial = dict(choice, **dict.fromkeys(block, p))
                d = quantized(trial, path)
                evaluations += 1
                if d < error * KEEP_BELOW:
                    choice, error, kept = trial, d, kept + 1
        log(f"quantize: per tensor, blocks of {size} of the {len(names)} activations: {kept} change(s) kept, output error {error:.4g}")
    counts = ", ".join(f"{sum(1 for t in names if choice[t] == p)} at {p:g}" for p in sorted(tables))
    log(f"quantize: per tensor: {counts} ({evaluations} models tried)")
    return quantized(choice, target)


# The calibration feeds that `correct_biases` measures the means on, at most: on the PP-OCR
# recognizer 32 of 256 lines give a held-out error of 0.0212 against 0.0203 with all, in 30 s
# against 7 min (Documentation/Performance.md).
BIAS_FEEDS = 32


def correct_biases(float_path, quantized_path, feeds, log=print):
    """Empirical bias correction of a static QDQ model, in place: for each quantized Conv, in the
    order of the graph, the bias is moved so that the mean of each output channel over ``feeds``
    equals the float model's (``float_path``: the prepared model the quantizer read, whose tensor
    names the QDQ model keeps), measured on the quantized model with every Conv before it already
    corrected (Nagel et al. 2019, "Data-free quantization", section 4.2's empirical variant;
    Finkelstein et al. 2019), on the first ``BIAS_FEEDS`` feeds. Returns the number of Conv
    biases corrected.

    Why: where an activation is flat over most of an input (a page's background, one value per
    channel), its rounding is a per-channel offset over most positions, which the next layer
    carries on and which moves erratically with the activation's range; on the PP-OCR detector it
    alone set the INT8 error (Documentation/Performance.md). The offset shows in the means, so
    the next Conv's bias takes it back. Convs whose outputs are independent of each other are
    measured in one onnxruntime run (one run per level of the Convs' dependency graph), which
    gives the sequential result. A bias that is a DequantizeLinear of INT32 values (the
    quantizer's) is corrected in its own units (input scale × weight scale, so to within half of
    that); a Conv without a bias gets one in the same form; a float bias is corrected as it is."""
    from onnx import helper, numpy_helper

    from .session import session

    feeds = feeds[:BIAS_FEEDS]
    quantized = onnx.load(quantized_path)
    graph = quantized.graph
    inits = {t.name: t for t in graph.initializer}
    known = {o for n in onnx.load(float_path, load_external_data=False).graph.node for o in n.output}
    # The float model's name of a Conv output: its own, or, where the quantizer renamed it (a graph
    # output quantized in place: Conv → `y_QuantizeLinear_Input` → QuantizeLinear → DequantizeLinear
    # → `y`), the name the DequantizeLinear after it took over.
    consumers = {}
    for node in graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    twin = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        t = node.output[0]
        if t not in known and len(consumers.get(t, [])) == 1 and consumers[t][0].op_type == "QuantizeLinear":
            after = consumers.get(consumers[t][0].output[0], [])
            if len(after) == 1 and after[0].op_type == "DequantizeLinear" and after[0].output[0] in known:
                twin[t] = after[0].output[0]
        elif t in known:
            twin[t] = t

    def add_initializer(array, name):
        graph.initializer.append(numpy_helper.from_array(array, name))
        inits[name] = graph.initializer[-1]

    # A Conv without a bias gets a zero one first (an exact no-op): INT32 values dequantized with
    # the units the quantizer gives a bias (input scale × weight scale) where its input and weight
    # are dequantized, float otherwise.
    producer = {o: n for n in graph.node for o in n.output}

    def out_channels(node):
        w = node.input[1] if len(node.input) > 1 else ""
        if w in inits:
            return inits[w].dims[0]
        q = producer.get(w)
        return inits[q.input[0]].dims[0] if q is not None and q.op_type == "DequantizeLinear" and q.input[0] in inits else None
    nodes = []
    for node in graph.node:
        channels = out_channels(node) if node.op_type == "Conv" and node.output[0] in twin else None
        if channels is not None and not (len(node.input) > 2 and node.input[2]):
            base = f"{node.output[0]}_correction_bias"
            x, w = producer.get(node.input[0]), producer.get(node.input[1])
            if all(q is not None and q.op_type == "DequantizeLinear" and q.input[1] in inits for q in (x, w)):
                units = (numpy_helper.to_array(inits[x.input[1]]).astype(np.float64)
                         * numpy_helper.to_array(inits[w.input[1]]).astype(np.float64) * np.ones(channels))
                add_initializer(np.zeros(channels, np.int32), base + "_quantized")
                add_initializer(units.astype(np.float32), base + "_quantized_scale")
                add_initializer(np.zeros(channels, np.int32), base + "_quantized_zero_point")
                nodes.append(helper.make_node("DequantizeLinear", [base + "_quantized", base + "_quantized_scale",
                                                                  base + "_quantized_zero_point"], [base], name=base + "_DequantizeLinear", axis=0))
            else:
                add_initializer(np.zeros(channels, np.float32), base)
            del node.input[2:]
            node.input.extend([""] * (2 - len(node.input)) + [base])
        nodes.append(node)
    graph.ClearField("node")
    graph.node.extend(nodes)
    producer = {o: n for n in graph.node for o in n.output}

    def bias_of(node):
        """(initializer name, units of its values: None for a float bias) of ``node``'s bias; (None, None) when it is neither."""
        if len(node.input) < 3 or not node.input[2]:
            return None, None
        if node.input[2] in inits:
            return node.input[2], None
        dq = producer.get(node.input[2])
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits and dq.input[1] in inits:
            return dq.input[0], numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        return None, None

    # Level of each Conv: one more than the deepest Conv upstream of it (the nodes are in
    # topological order); the Convs of one level are measured in one run.
    convs = [n for n in graph.node if n.op_type == "Conv" and n.output[0] in twin and bias_of(n)[0] is not None]
    chosen = {n.output[0] for n in convs}
    upstream, level = {}, {}
    for node in graph.node:
        d = max([upstream.get(t, -1) for t in node.input if t] + [-1])
        if node.op_type == "Conv" and node.output[0] in chosen:
            d += 1
            level.setdefault(d, []).append(node)
        for o in node.output:
            upstream[o] = d

    def run(model, names):
        """{tensor: its mean over every axis but 1 (channels)} over the feeds, in float64."""
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        # Only the nodes these tensors depend on run (the early levels need a small part of the graph).
        needed, kept = set(names), []
        for node in reversed(copy.graph.node):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(t for t in node.input if t)
        kept.reverse()
        copy.graph.ClearField("node")
        copy.graph.node.extend(kept)
        copy.graph.ClearField("output")
        copy.graph.output.extend(helper.make_empty_tensor_value_info(t) for t in names)
        s = session(copy.SerializeToString(), threads=0)
        sums = {t: [0.0, 0] for t in names}
        for feed in feeds:
            for t, y in zip(names, s.run(names, feed)):
                y = np.asarray(y, dtype=np.float64)
                sums[t][0] = sums[t][0] + y.sum(axis=tuple(a for a in range(y.ndim) if a != 1))
                sums[t][1] += y.size // y.shape[1]
        means = {t: total / max(count, 1) for t, (total, count) in sums.items()}
        bad = [t for t, m in means.items() if not np.all(np.isfinite(m))]
        if bad:
            raise SystemExit(f"quantize: bias correction: the mean of {bad[0]} is not finite on the calibration inputs; nothing written")
        return means

    reference = run(onnx.load(float_path), [twin[n.output[0]] for n in convs])
    corrected = 0
    for d in sorted(level):
        means = run(quantized, [n.output[0] for n in level[d]])
        for node in level[d]:
            delta = means[node.output[0]] - reference[twin[node.output[0]]]
            name, units = bias_of(node)
            values = numpy_helper.to_array(inits[name])
            if units is None:
                values = (values.astype(np.float64) - delta).astype(values.dtype)
            else:
                step = np.round(delta / np.where(units > 0, units, 1.0))
                values = np.clip(values.astype(np.int64) - step.astype(np.int64), -2**31 + 1, 2**31 - 1).astype(values.dtype)
            inits[name].CopyFrom(numpy_helper.from_array(values, name))
            corrected += 1
    onnx.save(quantized, quantized_path)
    total = sum(1 for n in graph.node if n.op_type == "Conv")
    skipped = f"; {total - corrected} left as they are: their output has no counterpart in the float model or their bias is not an " \
              "initializer" if corrected < total else ""
    log(f"quantize: bias correction: {corrected} of {total} Conv biases corrected ({len(level)} onnxruntime runs over {len(feeds)} "
        f"calibration feeds{skipped})")
    return corrected


def prepare(source, work, mode="static", preprocess=True, exclude=None):
    """(the model to quantize, written in ``work``: ``source`` at opset 13 or above for static QDQ,
    after onnxruntime's pre-processing unless ``preprocess`` is False; the names of its nodes that
    match ``exclude``; its graph inputs that are fed, not weights)."""
    model = onnx.load(source)
    if mode == "static" and opset_of(model) < 13:
        # Per-channel QDQ (an axis on QuantizeLinear/DequantizeLinear) needs opset 13.
        model = onnx.version_converter.convert_version(model, 13)
        source = os.path.join(work, "opset13.onnx")
        onnx.save(model, source)
    if preprocess:
        prepared = os.path.join(work, "prepared.onnx")
        quant_pre_process(source, prepared, skip_symbolic_shape=True)
        source = prepared
    prepared = onnx.load(source, load_external_data=False)
    excluded = [n.name for n in prepared.graph.node if exclude and re.search(exclude, n.name)]
    if exclude and not excluded:
        raise SystemExit(f"quantize: --exclude {exclude!r} matches no node of the main graph (after the pre-processing, which "
                         "renames the nodes it fuses); nothing written")
    if exclude:
        print(f"quantize: {len(excluded)} node(s) matching {exclude!r} stay in float", file=sys.stderr)
    # Inputs that are initializers (IR < 4 lists them among the inputs) are weights, not feeds.
    weights = {t.name for t in prepared.graph.initializer}
    return source, excluded, [i.name for i in prepared.graph.input if i.name not in weights]


def static(prepared, target, reader, ops, excluded, method="percentile", percentile=None, ranges=None):
    """onnxruntime's static QDQ of the prepared model, calibrated on ``reader``'s feeds, or on the
    activation ranges of the onnxruntime calibration cache ``ranges`` (then ``reader`` is None)."""
    extra = {"CalibPercentile": percentile} if method == "percentile" and percentile is not None else {}
    if reader is not None and reader.varying:
        # One feed a collection window: the histograms are merged window after window.
        extra["CalibStridedMinMax"] = 1
    quantize_static(prepared, target, reader, quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8, op_types_to_quantize=list(ops) if ops else None, calibrate_method=METHODS[method],
                    nodes_to_exclude=excluded, extra_options=extra, calibration_cache_path=ranges)


def percentile_ranges(prepared, reader, ops, percentiles, work):
    """{percentile: an onnxruntime calibration cache (JSON) of the activation ranges at that
    percentile}, all from one collection of onnxruntime's Percentile calibrator over the reader's
    feeds (its histograms do not depend on the percentile, which only reads them): what
    quantize_static would compute for each percentile, at the cost of one calibration run."""
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    types = list(ops) if ops else list(set(QLinearOpsRegistry) | set(QDQRegistry))   # quantize_static's default
    calibrator = create_calibrator(prepared, types, augmented_model_path=os.path.join(work, "augmented.onnx"),
                                   calibrate_method=CalibrationMethod.Percentile)
    reader.rewind()
    if reader.varying:
        for k in range(len(reader)):
            reader.set_range(k, k + 1)
            calibrator.collect_data(reader)
    else:
        calibrator.collect_data(reader)
    caches = {}
    for p in percentiles:
        # The percentile its collector reads when computing the ranges (onnxruntime 1.32.0, pinned in
        # Scripts/requirements-onnx.txt; the conformance check compares with --percentile alone).
        calibrator.collector.percentile = p
        caches[p] = os.path.join(work, f"ranges-{p:g}.json")
        save_tensors_data(calibrator.compute_data(), caches[p])
    reader.rewind()
    return caches


def quantize(mode, source, target, calibration=None, count=None, ops=("Conv", "MatMul"), preprocess=True, method="percentile", exclude=None,
             percentile=None, bias_correction=False, log=print):
    """Writes ``target``: ``source`` quantized by the recipe ``mode`` (``dynamic`` or ``static``);
    nodes whose name matches the regular expression ``exclude`` (after the pre-processing, which
    keeps the names of the nodes it does not fuse) stay in float; ``percentile`` (static, method
    percentile) is the activation ranges' percentile, onnxruntime's 99.999 when None;
    ``bias_correction`` (static) runs `correct_biases` on the calibration inputs before the model
    is written."""
    if mode == "static" and calibration is None:
        raise SystemExit(NEEDS_CALIBRATION)
    with tempfile.TemporaryDirectory() as work:
        prepared, excluded, inputs = prepare(source, work, mode, preprocess, exclude)
        if mode == "dynamic":
            # ops None: every operator type the quantizer knows (its own default).
            quantize_dynamic(prepared, target, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=list(ops) if ops else None,
                             nodes_to_exclude=excluded)
            return
        written = os.path.join(work, "quantized.onnx")
        static(prepared, written, NpzReader(calibration, inputs, count), ops, excluded, method, percentile)
        if bias_correction:
            correct_biases(prepared, written, feeds_of(calibration, inputs)[:count], log)
        shutil.copyfile(written, target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["dynamic", "static"])
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--calibration", help="the model's inputs (static): an .npz with one array per input, samples on the first axis, "
                                               "or a directory of .npz feeds, one complete feed each")
    parser.add_argument("--count", type=int, help="calibration samples to use (default all)")
    parser.add_argument("--ops", default="Conv,MatMul", help="operators to quantize (default Conv,MatMul; all: every type the quantizer knows)")
    parser.add_argument("--no-preprocess", action="store_true", help="skip onnxruntime's quant_pre_process")
    parser.add_argument("--method", choices=sorted(METHODS), help="static: how activation ranges are calibrated (default percentile)")
    parser.add_argument("--percentile", type=float, help="static, method percentile: the activation ranges' percentile (default 99.999)")
    parser.add_argument("--held-out", help="static: inputs of the calibration domain not in --calibration (same format); the recipe "
                                           "among --candidates whose outputs on them are closest to the float model's is written")
    parser.add_argument("--candidates", help=f"with --held-out: the recipes tried (default {CANDIDATES})")
    parser.add_argument("--per-tensor", action="store_true", help="with --held-out: also choose each activation's percentile among the "
                                                                    "percentile candidates (a few hundred quantized models tried)")
    parser.add_argument("--bias-correction", action="store_true", help="static: then move each quantized Conv's bias, layer after "
                        "layer, so that its output channels' means on the calibration inputs are the float model's; with --held-out, every "
                        "candidate is also tried corrected")
    parser.add_argument("--exclude", help="a regular expression: main-graph nodes whose name matches it stay in float (for example a "
                                          "network's last layers); matching none is an error")
    args = parser.parse_args(argv)
    if args.mode == "dynamic" and args.bias_correction:
        raise SystemExit("quantize: --bias-correction corrects static QDQ models against their calibration inputs; dynamic has neither")
    if args.mode == "dynamic" and (args.percentile is not None or args.held_out):
        raise SystemExit("quantize: --percentile and --held-out choose activation ranges, which dynamic quantization computes at run time")
    if args.percentile is not None and (args.method not in (None, "percentile") or args.held_out):
        raise SystemExit("quantize: --percentile goes with --method percentile and without --held-out (which chooses it)")
    if args.held_out and args.method is not None:
        raise SystemExit("quantize: --method goes without --held-out, which chooses among --candidates")
    if args.candidates is not None and not args.held_out:
        raise SystemExit("quantize: --candidates are tried on --held-out samples; give them, or --method/--percentile alone")
    if args.per_tensor and not args.held_out:
        raise SystemExit("quantize: --per-tensor chooses ranges on --held-out samples; give them")
    if args.percentile is not None and not 50 < args.percentile <= 100:
        raise SystemExit(f"quantize: --percentile {args.percentile:g} lies outside (50, 100]")
    if os.path.abspath(args.source) == os.path.abspath(args.target):
        raise SystemExit("quantize: the output is the input model; give another path")
    ops = None if args.ops == "all" else tuple(args.ops.split(","))
    try:
        re.compile(args.exclude or "")
    except re.error as error:
        raise SystemExit(f"quantize: --exclude {args.exclude!r} is not a regular expression ({error})")
    if args.held_out:
        if args.calibration is None:
            raise SystemExit(NEEDS_CALIBRATION)
        candidates = candidates_of(args.candidates or CANDIDATES)
        if args.per_tensor and len({p for m, p in candidates if m == "percentile"}) < 2:
            raise SystemExit("quantize: --per-tensor chooses among the percentile candidates; --candidates names fewer than two")
        tried, best = choose(args.source, args.target, args.calibration, args.held_out, candidates, args.count, ops,
                             not args.no_preprocess, args.exclude, log=lambda line: print(line, file=sys.stderr), per_tensor=args.per_tensor,
                             bias_correction=args.bias_correction)
        label, d = tried[best]
        print(f"quantize: wrote {args.target} (static, {args.ops}; ranges {label}, the closest of {len(tried)} "
              f"on the held-out samples: output error {d:.4g})", file=sys.stderr)
        return
    quantize(args.mode, args.source, args.target, args.calibration, args.count, ops, not args.no_preprocess, args.method or "percentile",
             args.exclude, args.percentile, args.bias_correction, log=lambda line: print(line, file=sys.stderr))
    print(f"quantize: wrote {args.target} ({args.mode}, {args.ops})", file=sys.stderr)


if __name__ == "__main__":
    main()
