"""Input statistics of every compressible node of an ONNX model, from onnxruntime runs: the
statistics file of `tensor-compress compress --statistics`.

    bash Scripts/calibrate.sh MODEL.onnx INPUTS STATS.safetensors [--batch N] [--batch-axis NAME=AXIS ...] [--patch-limit 4096]
                              [--sensitivity-samples 128] [--sensitivity-flops 0.5] [--sensitivity-check 0.67] [--no-sensitivity]
                              [--ctc-output NAME [--ctc-blank 0] [--ctc-floor 0.1] [--ctc-node NAME ...]]
    python -m tdtools.calibrate TOOL MODEL.onnx INPUTS STATS.safetensors [...]     (with Python/ on PYTHONPATH)

INPUTS is one of:
- an .npz with one array per graph input, the first axis the samples (each sample without the
  batch axis, which the script adds back where the model declares it), plus arrays named
  `constants/NAME` for inputs fed unchanged to every run (a scalar sample rate, a fixed mask);
- a directory of .npz files, each one complete feed of every graph input exactly as the model
  takes it (any batch axis, recurrent state included): for models whose inputs do not split into
  samples. Feeds are run in file-name order, one run each.

The batch axis of an input is the one given with --batch-axis NAME=AXIS, or by default: axis 0
when the model declares it symbolic (`batch`, `N`, …) or a fixed 1 (then every
run holds one sample), else the first symbolic axis (a recurrent state [layers, batch, hidden]),
else the first axis declared 1 (one sample per run).
Nodes inside subgraphs, at any depth: an If whose condition is the same in every feed is replaced
by its branch for the calibration runs (level after level); the input of a node left inside a body
is handed out through every construct that holds it (expose_subgraphs): a Loop or Scan gives
every iteration's (each iteration counted as a batch of its own), an If that switches the
branch taken's and nothing from the other, so that a branch's nodes get the statistics of the
runs that take it. A Scan whose body holds such a node below an If, a Loop or another Scan runs as
the equivalent Loop in the calibration runs (onnxruntime keeps a Scan's state of one shape, and
what is handed out through it grows): its scan inputs sliced with Gather (reversed ones from the
end), its state carried, its scan outputs stacked, reversed and moved to their axes under their
own names, so the model's outputs are unchanged. A value in a Loop's body that changes shape
from one iteration to the next (a decoder's growing sequence) cannot be a scan output: when
onnxruntime refuses the first run for that, the statistics are collected again from the start with
every Loop body's values handed out as carried pairs (said on standard error). Nodes that no run
reaches get none, nor do those
below an If, a Loop or a Scan inside the body of a Scan that is not rewritten: a Scan-8 (opset 8:
batch axis, sequence_lens), one with a scan output on a non-zero axis whose rank its body does
not declare, or one with a reversed scan output before opset 10; nor those below an If that is
not inlined in a model of opset below 11 (If-1 asks its branches for outputs of one shape); all
are said on standard error, and compress names them.
--batch (default 8) caps the samples per run. The model is run in
batches with every compressible node's input (as `tensor-compress inspect` lists them) exposed as
an extra output; for each node the script accumulates, in float64, the number of input vectors,
their mean and their second moment E[x xᵀ]:

- Gemm/MatMul: each row of features is one vector. When the model has an input named
  attention_mask and the node's input is (batch, sequence, features), masked positions (mask 0)
  are left out.
- Conv: each im2col patch of a group, ordered (channel, kernel row, kernel column) with the
  node's stride, padding, dilation and groups (a 3-D one's (channel, depth, row, column)); above
  --patch-limit entries per patch the per-channel second moment of the input pixels is kept
  instead (documented fallback).
- ConvTranspose: the patches of its equivalent convolution: stride 1 on the input upsampled by
  its strides (zeros between samples), padded as inspect lists.

- With --ctc-output NAME (a CTC recognizer's output, [batch, time, classes] or [time, batch,
  classes], probabilities or logits): the rows of every Gemm/MatMul input whose first two axes
  are the output's (the time steps the classifier reads) are weighted by 1 − p_blank + floor,
  p_blank the original model's probability of the blank class (--ctc-blank, default 0) at that
  time step and floor --ctc-floor (default 0.1); --ctc-node restricts it to the nodes named. The
  mean and second moment become weighted averages (NAME.count stays the number of rows), so the
  whitened factors serve the time steps that the decoding reads rather than the blanks between
  glyphs, which are half of a line's steps at its own width. On PP-OCRv4's recognizer at
  `--budget macs:0.67` this takes the CER on the evaluation lines from 1.10% to 0.72% (floors
  0.05 and 0.2: 0.76% and 0.67%; 0: 1.67%; Documentation/Performance.md). The weighted nodes are
  said on standard error and in the file's __metadata__["weighting"]; an output or a node that
  cannot be aligned is refused.

Only running sums of one batch are held at a time, never all activations. The output has the
tensors NAME.count [1], NAME.mean [g, d] and NAME.gram [g, d, d] (float64) for every node NAME
(tdtools.statistics; Documentation/StatisticsFormat.md).

Then, unless --no-sensitivity, every node's end-to-end sensitivity (tdtools.sensitivity: the node
alone compressed at --sensitivity-flops of its cost, the whole model run on the first
--sensitivity-samples samples, damage over normalised error) is measured, and checked: the model
is compressed at --budget macs:F (--sensitivity-check, 0.67) with the sensitivities as the greedy
allocation's weights and without, and both run on those samples. When the weighted allocation
damages the outputs less, the sensitivities are stored as NAME.sensitivity and `compress
--statistics` weights the greedy allocation with them unless --layer-weights is given; when not
(the network does not follow the additive model Σ w e² that the allocation assumes: PP-OCRv4's
recognizer), they are left out, and calibrate says so with both damages (also in the file's
__metadata__["sensitivity"]). It costs one single-layer `compress` and one onnxruntime run over
those samples per node, and two budget compressions and runs for the check
(Documentation/Performance.md has the timings).

Last, unless --no-output-metrics, each Gemm and MatMul node's end-to-end output metric
(tdtools.gradients: E[g gᵀ] for the gradient g at the node's output of a random projection of the
network's outputs, K-FAC's output factor) is measured with onnxruntime-training, which runs in its
own environment: --training-python names its Python (through calibrate.sh, the one that
Scripts/train-venv.sh creates on first use, when the model has such nodes). They are checked like the sensitivities: the model compressed at
--budget macs:F (--output-metric-check, 0.67) with them and without (`--no-output-metrics`), both
run on the sensitivity samples; they are stored as NAME.outputMetric only when they damage the
outputs less, and `compress --statistics` then fits those layers' factors in them. On
all-MiniLM-L6-v2 at macs:0.67 they take the mean cosine on text of another domain from 0.891 to
0.924. They are measured on the feeds of the shapes that hold the most samples (up to
--output-metric-samples of them), --output-metric-passes times each with a new projection.

The model runs with onnxruntime's default intra-op threads (one per core): calibration is not
timed, and the values do not depend on the thread count (PP-OCRv4's recognizer gives the same
statistics bit for bit with one thread and with two).
"""
import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple, Optional

import numpy as np
import onnx

from . import sensitivity, statistics
from .session import session
from .tool import ToolError, compressible_nodes

# The weight of a time step that the original reads as certainly blank (--ctc-floor).
CTC_FLOOR = 0.1
OUTPUT_METRIC_SAMPLES = 1024


class Accumulator:
    """Count, weighted sum and weighted sum of outer products per group, in float64, and the total
    weight of the rows added (left 0 where every weight is 1 and the count divides: convolutions)."""

    def __init__(self, groups, d):
        self.count = 0
        self.total = 0.0
        self.sums = np.zeros((groups, d))
        self.outer = np.zeros((groups, d, d))

    def add(self, g, rows, weights=None):
        rows = np.asarray(rows, dtype=np.float64)
        if not np.all(np.isfinite(rows)):
            sys.exit("calibrate: a non-finite activation")
        weighted = rows if weights is None else rows * weights[:, None]
        self.sums[g] += weighted.sum(axis=0)
        self.outer[g] += weighted.T @ rows

    def statistics(self):
        n = self.total if self.total > 0 else max(self.count, 1)
        return statistics.LayerStatistics(float(self.count), self.sums / n, self.outer / n)


def ctc_weights(output, blank, floor):
    """Each time step's weight 1 − p_blank + floor from a CTC output [batch, time, classes] or [time,
    batch, classes], in its own first two axes (probabilities when every row is non-negative and
    sums to 1 within 1e-3, else logits, softmaxed here)."""
    y = np.asarray(output, dtype=np.float64)
    if y.ndim != 3 or not 0 <= blank < y.shape[2]:
        sys.exit(f"calibrate: --ctc-output: an output of shape {list(y.shape)} is not [batch, time, classes] (or [time, batch, classes]) "
                 f"with the blank class {blank}")
    if not (np.all(y >= 0) and np.allclose(y.sum(axis=2), 1, atol=1e-3)):
        y = np.exp(y - y.max(axis=2, keepdims=True))
        y /= y.sum(axis=2, keepdims=True)
    return 1 - y[:, :, blank] + floor


def patches(x, kernel, stride, pads, dilation, rows_per_chunk):
    """im2col patches of x (C, *spatial: 2 or 3 axes) as chunks of (positions, C·∏kernel), index
    (c, kernel offsets), chunked over the output's first spatial axis; pads: each axis's beginning
    and end, (top, bottom, left, right) in 2-D."""
    c, *size = x.shape
    n = len(size)
    padded = np.pad(x, [(0, 0)] + [(pads[2 * a], pads[2 * a + 1]) for a in range(n)])
    out = [(size[a] + pads[2 * a] + pads[2 * a + 1] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1 for a in range(n)]
    for r0 in range(0, out[0], rows_per_chunk):
        r1 = min(out[0], r0 + rows_per_chunk)
        block = np.empty((c, *kernel, r1 - r0, *out[1:]), dtype=x.dtype)
        for offsets in itertools.product(*(range(k) for k in kernel)):
            first = offsets[0] * dilation[0]
            index = [slice(None), slice(r0 * stride[0] + first, (r1 - 1) * stride[0] + first + 1, stride[0])]
            index += [slice(offsets[a] * dilation[a], (out[a] - 1) * stride[a] + offsets[a] * dilation[a] + 1, stride[a]) for a in range(1, n)]
            block[(slice(None), *offsets)] = padded[tuple(index)]
        yield block.reshape(c * math.prod(kernel), -1).T


def upsampled(x, strides):
    """x (N, C, *spatial) with strides − 1 zeros between its samples along each spatial axis: the input
    that a ConvTranspose's equivalent convolution reads."""
    if all(s == 1 for s in strides):
        return x
    result = np.zeros(x.shape[:2] + tuple((d - 1) * s + 1 for d, s in zip(x.shape[2:], strides)), dtype=x.dtype)
    result[(slice(None), slice(None), *(slice(None, None, s) for s in strides))] = x
    return result


def declared(model):
    """The graph inputs (not initializers) with their declared dimensions (int, or None when symbolic)."""
    initializers = {t.name for t in model.graph.initializer}
    result = {}
    for i in model.graph.input:
        if i.name in initializers:
            continue
        dims = i.type.tensor_type.shape.dim if i.type.tensor_type.HasField("shape") else []
        result[i.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return result


def input_plan(model, args):
    """(a generator of (feeds, samples in them), --input-shape arguments for inspect, sample count)."""
    inputs = declared(model)
    if os.path.isdir(args.inputs):
        files = sorted(os.path.join(args.inputs, f) for f in os.listdir(args.inputs) if f.endswith(".npz"))
        if not files:
            sys.exit(f"calibrate: {args.inputs} holds no .npz feeds")
        first = np.load(files[0])
        missing = [n for n in inputs if n not in first.files]
        if missing:
            sys.exit(f"calibrate: {files[0]} lacks the graph inputs {missing}")

        def feeds():
            for f in files:
                archive = np.load(f)
                yield {n: archive[n] for n in inputs}, 1
        return feeds, [f"{n}={','.join(str(d) for d in first[n].shape)}" for n in inputs], len(files)
    archive = np.load(args.inputs)
    axes = {}
    for item in args.batch_axis:
        name, _, axis = item.partition("=")
        if name not in inputs or not axis.lstrip("-").isdigit():
            sys.exit(f"calibrate: --batch-axis {item}: expected NAME=AXIS for a graph input ({', '.join(inputs)})")
        axes[name] = int(axis)
    constants = {n: archive["constants/" + n] for n in inputs if "constants/" + n in archive.files}
    sampled = [n for n in inputs if n not in constants]
    missing = [n for n in sampled if n not in archive.files]
    if missing:
        sys.exit(f"calibrate: {args.inputs} lacks the graph inputs {missing} (an input fed unchanged is stored as constants/NAME)")
    if not sampled:
        sys.exit("calibrate: every input is a constant; give at least one input with a sample axis")
    samples = archive[sampled[0]].shape[0]
    if any(archive[n].shape[0] != samples for n in sampled):
        sys.exit("calibrate: every sampled array needs the same number of samples (first axis)")
    batch = args.batch
    for n in sampled:
        dims = inputs[n]
        if n not in axes:
            # Axis 0 when it is symbolic or a fixed 1 (one sample per run); else the first symbolic axis
            # (a recurrent state [layers, batch, hidden]); else the first axis declared 1.
            symbolic = [k for k, d in enumerate(dims) if d is None]
            ones = [k for k, d in enumerate(dims) if d == 1]
            if dims and dims[0] is None:
                axes[n] = 0
            elif dims and dims[0] == 1:
                axes[n], batch = 0, 1
            elif symbolic:
                axes[n] = symbolic[0]
            elif ones:
                axes[n], batch = ones[0], 1
            else:
                sys.exit(f"calibrate: input {n} of declared shape {dims} has no batch axis; store it as constants/{n} or give --batch-axis")
        elif dims and axes[n] < len(dims) and dims[axes[n]] is not None:
            batch = min(batch, dims[axes[n]])
        if dims and archive[n].ndim != len(dims):
            sys.exit(f"calibrate: input {n}: samples of shape {archive[n].shape[1:]} and the batch axis {axes[n]} do not make its declared rank {len(dims)}")
    batch = max(1, min(batch, samples))

    def feeds():
        for start in range(0, samples, batch):
            count = min(batch, samples - start)
            feed = {n: np.moveaxis(archive[n][start:start + count], 0, axes[n]) for n in sampled}
            feed.update(constants)
            yield feed, count

    def shape(n):
        if n in constants:
            return list(constants[n].shape)
        per = list(archive[n].shape[1:])
        per.insert(axes[n], batch)
        return per
    return feeds, [f"{n}={','.join(str(d) for d in shape(n))}" for n in inputs], samples


def inline_branches(model, feeds_of, depth=8):
    """Replaces each main-graph If whose condition is the same in every feed by the branch taken
    (a sample-rate switch, for example), so that onnxruntime can expose its nodes' inputs; an If
    that a taken branch holds is then a main-graph If too, and is tried in the next pass (up to
    `depth` levels). Returns the branch nodes by the names inspect gives them
    (IF/then_branch/NODE, IF/then_branch/INNER_IF/else_branch/NODE, …) and the names of the
    main graph's nodes afterwards, in order."""
    labels = [n.name or f"{n.op_type}_{k}" for k, n in enumerate(model.graph.node)]
    inlined, switching = {}, set()
    for _ in range(depth):
        ifs = [k for k, n in enumerate(model.graph.node) if n.op_type == "If" and n.domain in ("", "ai.onnx") and labels[k] not in switching]
        if not ifs:
            break
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        existing = {o.name for o in probe.graph.output}
        for k in ifs:
            condition = model.graph.node[k].input[0]
            if condition not in existing:
                probe.graph.output.append(onnx.helper.make_tensor_value_info(condition, onnx.TensorProto.BOOL, None))
                existing.add(condition)
        probed = session(probe, threads=0)
        names = [o.name for o in probed.get_outputs()]
        taken = {}
        for feeds, _ in feeds_of():
            values = dict(zip(names, probed.run(None, feeds)))
            for k in ifs:
                taken.setdefault(k, set()).add(bool(np.asarray(values[model.graph.node[k].input[0]]).reshape(-1)[0]))
        nodes, kept_labels = [], []
        for k, n in enumerate(model.graph.node):
            branches = taken.get(k)
            if branches is None or len(branches) != 1:
                if branches:
                    switching.add(labels[k])
                    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
                    print(f"calibrate: {labels[k]} takes both branches on these inputs"
                          + ("; each branch's nodes get the statistics of the feeds that take it" if version >= 11 else ""), file=sys.stderr)
                nodes.append(n)
                kept_labels.append(labels[k])
                continue
            attribute = "then_branch" if branches.pop() else "else_branch"
            body = next(a.g for a in n.attribute if a.name == attribute)
            prefix = labels[k] + "/" + attribute + "/"
            for j, inner in enumerate(body.node):
                label = prefix + (inner.name or f"{inner.op_type}_{j}")
                inlined[label] = inner
                nodes.append(inner)
                kept_labels.append(label)
            model.graph.initializer.extend(body.initializer)
            for b, o in zip(body.output, n.output):
                nodes.append(onnx.helper.make_node("Identity", [b.name], [o]))
                kept_labels.append("")
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        labels = kept_labels
    return inlined, labels


class Exposed(NamedTuple):
    """Where a node's input shows up among the outputs of the calibration runs. Without `shapes`:
    the value `value` itself, with `axes` stacking axes in front (one per enclosing Loop or Scan
    whose iterations were stacked as a scan output). With `shapes` (a value below an If, or
    below a Loop or Scan inside a Loop or Scan): `value` is the flat float concatenation of any
    number of instances of the node's input (none, for a run that did not take the branch), each
    with `axes` stacking axes in front, and `shapes` their shapes, each as [rank, d0, d1, …]."""
    value: str
    axes: int = 0
    shapes: Optional[str] = None


def expose_subgraphs(model, wanted, labels, carry=False):
    """Makes the data inputs of the nodes in `wanted` (names as inspect gives them:
    LOOP/body/NODE, IF/else_branch/LOOP/body/NODE, …) inside If, Loop and Scan bodies, at any
    depth, main-graph values. Each is threaded out through the constructs that hold it, innermost
    first:

    - a Loop's or Scan's body gives it as an extra body output (through an Identity), which the
      operator stacks over the iterations as an extra scan output (one stacking axis more);
    - an If's branches give it as two extra outputs of both branches: the branch that holds the
      node its values flattened and cast to float and its shape as [rank, d0, …], the other
      branch an empty float and an empty int64 tensor, so that runs that take the other branch
      add no rows;
    - a Loop above such a pair (or above a value stacked already, whose shape may change from one
      iteration to the next) concatenates it over the iterations as two extra loop-carried values
      starting empty: onnxruntime requires a scan output to keep one shape over the iterations,
      and a Loop's carried value may grow;
    - a Scan above such a pair is first rewritten as the equivalent Loop (as_loop: a Scan's state
      may not grow), which then carries the pair; its outputs keep their names and values.

    A value that a Loop's or Scan's body reads from outside it is taken as it is (once per run, not
    once per iteration). `labels` are the main graph's node names as inspect gives them (after
    inline_branches). Returns {name: Exposed} for the nodes it reached: not those below an If, a
    Loop or a Scan inside the body of a Scan that as_loop cannot rewrite (scan_layout's reasons: a
    Scan-8, a scan output on a non-zero axis of undeclared rank, a reversed one before opset 10;
    said on standard error), nor those below an If of a model whose opset is below 11 (If-1 asks
    its branches for outputs of one shape, which the pair's empty side is not; said on standard
    error), nor those in other operators' subgraphs.

    With `carry`, every value a Loop's body hands out goes as a carried pair (and a Scan that
    as_loop can rewrite runs as a Loop), not as a scan output: for bodies whose values change
    shape from one iteration to the next, which a scan output may not."""
    standard = ("", "ai.onnx")
    version = next((o.version for o in model.opset_import if o.domain in standard), 1)
    counter = itertools.count()

    def fresh(value):
        return f"{value.split('/calibration')[0]}/calibration{next(counter)}"

    def constant(name, array):
        return onnx.helper.make_node("Constant", [], [name], value=onnx.numpy_helper.from_array(array, name + "/value"))

    def info(name, element):
        return onnx.helper.make_tensor_value_info(name, element, None)

    def names_of(graph, prefix):
        return [prefix + (n.name or f"{n.op_type}_{j}") for j, n in enumerate(graph.node)]

    def inserted(field, index, items):
        """Inserts `items` into the repeated field `field` at `index` (protobuf lists have no insert)."""
        kept = list(field)
        if kept and not isinstance(kept[0], str):
            copies = []
            for item in kept:
                copy = type(item)()
                copy.CopyFrom(item)
                copies.append(copy)
            kept = copies
        del field[:]
        field.extend(kept[:index] + list(items) + kept[index:])

    def flattened(graph, exposed):
        """(data, shapes) names in `graph` for `exposed`: a pair already, or the value flattened."""
        if exposed.shapes is not None:
            return exposed.value, exposed.shapes
        stem = fresh(exposed.value)
        graph.node.extend([
            constant(stem + "/minus_one", np.array([-1], dtype=np.int64)),
            onnx.helper.make_node("Reshape", [exposed.value, stem + "/minus_one"], [stem + "/flat"]),
            onnx.helper.make_node("Cast", [stem + "/flat"], [stem + "/data"], to=onnx.TensorProto.FLOAT),
            onnx.helper.make_node("Shape", [exposed.value], [stem + "/shape"]),
            onnx.helper.make_node("Shape", [stem + "/shape"], [stem + "/rank"]),
            onnx.helper.make_node("Concat", [stem + "/rank", stem + "/shape"], [stem + "/shapes"], axis=0)])
        return stem + "/data", stem + "/shapes"

    def visit(graph, names, front, descend=True):
        """The wanted nodes of `graph` (its nodes named `names`) and, when `descend`, of its nodes'
        subgraphs, each as an Exposed whose names `graph` can read; nodes that must come before the
        rest of `graph` (the empty initial values of carried pairs) are added to `front`."""
        found, around = {}, {}
        for j, label in enumerate(names):
            node = graph.node[j]
            if label in wanted and node.input:
                found[label] = Exposed(node.input[0])
            if (not descend or node.op_type not in ("If", "Loop", "Scan") or node.domain not in standard
                    or not any(w.startswith(label + "/") for w in wanted)):
                continue
            bodies = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
            if node.op_type == "If":
                found.update(through_if(node, label, bodies))
            else:
                around[j] = ([], [])
                found.update(through_loop(node, label, bodies["body"], front, *around[j]))
        if any(before or after for before, after in around.values()):
            nodes = []
            for j, node in enumerate(graph.node):
                copy = onnx.NodeProto()
                copy.CopyFrom(node)
                before, after = around.get(j, ([], []))
                nodes.extend(before + [copy] + after)
            del graph.node[:]
            graph.node.extend(nodes)
        return found

    def scan_layout(node, body):
        """A Scan's (scan input count, state count, scan output count, input axes, input directions,
        output axes, output directions, ranks of the stacked outputs (None where the body does not
        declare one), and why as_loop cannot rewrite it, or None)."""
        attributes = {a.name: a for a in node.attribute}
        scans = attributes["num_scan_inputs"].i
        states = len(node.input) - scans
        outputs = len(body.output) - states

        def listed(name, count):
            return list(attributes[name].ints) if name in attributes else [0] * count
        output_axes, output_directions = listed("scan_output_axes", outputs), listed("scan_output_directions", outputs)
        ranks = []
        for k in range(outputs):
            kind = body.output[states + k].type.tensor_type
            ranks.append(len(kind.shape.dim) + 1 if kind.HasField("shape") else None)
        reason = None
        if version < 9:
            reason = "a Scan-8 (batch axis, sequence_lens)"
        elif any(output_directions) and version < 10:
            reason = f"a Scan-{version} with a reversed scan output (no Slice with steps before opset 10)"
        else:
            unknown = [k for k in range(outputs) if output_axes[k] != 0 and ranks[k] is None]
            if unknown:
                reason = f"scan output {unknown[0]} on axis {output_axes[unknown[0]]}, of a rank its body does not declare"
        return (scans, states, outputs, listed("scan_input_axes", scans), listed("scan_input_directions", scans),
                output_axes, output_directions, ranks, reason)

    def as_loop(node, body, before, after):
        """Rewrites the Scan `node` (one that scan_layout gives no reason against: opset 9 or later)
        and its `body` in place as the equivalent Loop, whose loop-carried values may grow: the trip
        count is the scan inputs' length; each scan input is sliced per iteration with a Gather on
        its axis (index M − 1 − i when reversed); the state variables are carried; each scan output
        is stacked on axis 0 by the Loop, then reversed (a Slice of step −1) and moved to its axis
        (a Transpose) when its direction and axis say so. The outputs keep their names; the nodes
        that must come just before and after the Loop are added to `before` and `after`."""
        scans, states, outputs, input_axes, input_directions, output_axes, output_directions, ranks, reason = scan_layout(node, body)
        if reason is not None:
            raise RuntimeError(f"as_loop on the Scan {node.name!r}, which it cannot rewrite: {reason}")
        stem = fresh(node.output[0])
        before.extend([onnx.helper.make_node("Shape", [node.input[states]], [stem + "/shape"]),
                       constant(stem + "/axis", np.array(input_axes[0], dtype=np.int64)),
                       onnx.helper.make_node("Gather", [stem + "/shape", stem + "/axis"], [stem + "/count"], axis=0),
                       constant(stem + "/go", np.array(True))])
        slices = []
        if any(input_directions):
            before.extend([constant(stem + "/one", np.array(1, dtype=np.int64)),
                           onnx.helper.make_node("Sub", [stem + "/count", stem + "/one"], [stem + "/last"])])
            slices.append(onnx.helper.make_node("Sub", [stem + "/last", stem + "/iteration"], [stem + "/reversed"]))
        for k in range(scans):
            index = stem + ("/reversed" if input_directions[k] else "/iteration")
            slices.append(onnx.helper.make_node("Gather", [node.input[states + k], index], [body.input[states + k].name], axis=input_axes[k]))
        slices.append(onnx.helper.make_node("Identity", [stem + "/cond"], [stem + "/cond/out"]))
        inserted(body.node, 0, slices)
        carried = []
        for i in list(body.input)[:states]:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(i)
            carried.append(copy)
        del body.input[:]
        body.input.extend([onnx.helper.make_tensor_value_info(stem + "/iteration", onnx.TensorProto.INT64, []),
                           onnx.helper.make_tensor_value_info(stem + "/cond", onnx.TensorProto.BOOL, [])] + carried)
        inserted(body.output, 0, [onnx.helper.make_tensor_value_info(stem + "/cond/out", onnx.TensorProto.BOOL, [])])
        results = list(node.output)
        for k in range(outputs):
            if output_axes[k] == 0 and not output_directions[k]:
                continue
            name = results[states + k]
            stacked = f"{stem}/output{k}"
            results[states + k] = stacked
            if output_directions[k]:
                after.extend([constant(stacked + "/starts", np.array([-1], dtype=np.int64)),
                              constant(stacked + "/ends", np.array([np.iinfo(np.int64).min], dtype=np.int64)),
                              constant(stacked + "/axes", np.array([0], dtype=np.int64)),
                              constant(stacked + "/steps", np.array([-1], dtype=np.int64)),
                              onnx.helper.make_node("Slice", [stacked, stacked + "/starts", stacked + "/ends", stacked + "/axes", stacked + "/steps"],
                                                    [stacked + "/reversed" if output_axes[k] != 0 else name])])
                stacked += "/reversed"
            if output_axes[k] != 0:
                rank = ranks[k]
                axis = output_axes[k] % rank
                after.append(onnx.helper.make_node("Transpose", [stacked], [name], perm=list(range(1, axis + 1)) + [0] + list(range(axis + 1, rank))))
        initial = list(node.input)[:states]
        del node.input[:]
        node.input.extend([stem + "/count", stem + "/go"] + initial)
        del node.output[:]
        node.output.extend(results)
        node.op_type = "Loop"
        # The body attribute stays where it is (`body` is a reference into it); the others go.
        for a in [a for a in node.attribute if a.name != "body"]:
            node.attribute.remove(a)

    def inner(body, prefix, descend=True):
        front = []
        found = visit(body, names_of(body, prefix), front, descend)
        inserted(body.node, 0, front)
        return found

    def through_if(node, label, bodies):
        if version < 11:
            print(f"calibrate: {label} is an If of opset {version} (below 11), whose branches must give outputs of one shape: "
                  "the nodes below it get no statistics", file=sys.stderr)
            return {}
        found = {branch: inner(bodies[branch], f"{label}/{branch}/") for branch in ("then_branch", "else_branch")}
        result, done = {}, {}
        for branch, other in (("then_branch", "else_branch"), ("else_branch", "then_branch")):
            for name, exposed in found[branch].items():
                if (branch, exposed) not in done:
                    data, shapes = flattened(bodies[branch], exposed)
                    stem = fresh(exposed.value)
                    bodies[branch].node.extend([onnx.helper.make_node("Identity", [data], [stem + "/data"]),
                                                onnx.helper.make_node("Identity", [shapes], [stem + "/shapes"])])
                    bodies[other].node.extend([constant(stem + "/data", np.zeros(0, dtype=np.float32)),
                                               constant(stem + "/shapes", np.zeros(0, dtype=np.int64))])
                    for body in (bodies[branch], bodies[other]):
                        body.output.extend([info(stem + "/data", onnx.TensorProto.FLOAT), info(stem + "/shapes", onnx.TensorProto.INT64)])
                    node.output.extend([stem + "/data/taken", stem + "/shapes/taken"])
                    done[branch, exposed] = Exposed(stem + "/data/taken", exposed.axes, stem + "/shapes/taken")
                result[name] = done[branch, exposed]
        return result

    def through_loop(node, label, body, front, before, after):
        """The wanted nodes of a Loop's or Scan's body, as Exposed values of the graph that holds
        `node`. A Scan whose body needs a growing pair becomes a Loop (as_loop), whose nodes that
        must come just before or after it in that graph are added to `before` and `after`; one that
        as_loop cannot rewrite (scan_layout says why, on standard error) has only the nodes of its
        body itself reached, not those of the constructs inside it."""
        prefix = f"{label}/body/"
        reason = scan_layout(node, body)[-1] if node.op_type == "Scan" else None
        if reason is not None and any(w.startswith(prefix) and "/" in w[len(prefix):] for w in wanted):
            print(f"calibrate: {label} is {reason}: it cannot run as a Loop, so the nodes below an If, a Loop or a Scan in its "
                  "body get no statistics", file=sys.stderr)
        found = inner(body, prefix, descend=reason is None)
        inside = {i.name for i in body.input} | {o for m in body.node for o in m.output} | {t.name for t in body.initializer}
        if node.op_type == "Scan" and (any(not (e.shapes is None and (e.value not in inside or e.axes == 0)) for e in found.values())
                                       or (carry and reason is None and any(e.value in inside or e.shapes is not None for e in found.values()))):
            # onnxruntime keeps a Scan's state of one shape over the iterations, where the pair must grow.
            as_loop(node, body, before, after)
            inside = {i.name for i in body.input} | {o for m in body.node for o in m.output} | {t.name for t in body.initializer}
        result, done = {}, {}
        for name, exposed in found.items():
            if exposed.shapes is None and exposed.value not in inside:
                result[name] = exposed
                continue
            if exposed not in done:
                if exposed.shapes is None and exposed.axes == 0 and not (carry and node.op_type == "Loop"):
                    # Through an Identity: a body output must be a value the body computes.
                    carried = fresh(exposed.value)
                    body.node.append(onnx.helper.make_node("Identity", [exposed.value], [carried]))
                    body.output.append(info(carried, onnx.TensorProto.FLOAT))
                    node.output.append(carried + "/stacked")
                    for a in node.attribute:
                        if a.name in ("scan_output_axes", "scan_output_directions"):
                            a.ints.append(0)
                    done[exposed] = Exposed(carried + "/stacked", 1)
                else:
                    data, shapes = flattened(body, exposed)
                    stem = fresh(exposed.value)
                    front.extend([constant(stem + "/data/initial", np.zeros(0, dtype=np.float32)),
                                  constant(stem + "/shapes/initial", np.zeros(0, dtype=np.int64))])
                    body.node.extend([onnx.helper.make_node("Concat", [stem + "/data/before", data], [stem + "/data/after"], axis=0),
                                      onnx.helper.make_node("Concat", [stem + "/shapes/before", shapes], [stem + "/shapes/after"], axis=0)])
                    # inputs (M, cond, carried…), body inputs (iteration, cond, carried…), body outputs
                    # (cond, carried…, scan outputs…), outputs (carried…, scan outputs…)
                    carried = len(body.input) - 2
                    inserted(node.input, 2 + carried, [stem + "/data/initial", stem + "/shapes/initial"])
                    inserted(body.input, 2 + carried,
                             [info(stem + "/data/before", onnx.TensorProto.FLOAT), info(stem + "/shapes/before", onnx.TensorProto.INT64)])
                    inserted(body.output, 1 + carried,
                             [info(stem + "/data/after", onnx.TensorProto.FLOAT), info(stem + "/shapes/after", onnx.TensorProto.INT64)])
                    inserted(node.output, carried, [stem + "/data/carried", stem + "/shapes/carried"])
                    done[exposed] = Exposed(stem + "/data/carried", exposed.axes, stem + "/shapes/carried")
            result[name] = done[exposed]
        return result

    front = []
    found = visit(model.graph, labels, front)
    inserted(model.graph.node, 0, front)
    return {name: exposed for name, exposed in found.items() if name in wanted}


def exposing_model(model, names, feeds_of, carry=False):
    """Makes `model` (changed in place) the model of the calibration runs: the data input of every
    node of `names` (as inspect names them) that it can reach becomes an extra graph output, the
    model's own outputs unchanged. Returns {name: Exposed} for those nodes.

    Nodes inside If/Loop/Scan bodies (named PATH/node) are compressed too. onnxruntime cannot
    expose a subgraph's values as model outputs, but an If that takes the same branch on every
    feed (`feeds_of()` gives them as (feeds, samples) pairs) is the branch itself: it is inlined
    for the calibration runs (onnxruntime then optimises it as the rest of the graph). The inputs of
    the nodes left inside bodies, at any depth, are threaded out through the constructs that hold
    them (expose_subgraphs; `carry` as there)."""
    by_name = {(n.name or f"{n.op_type}_{k}"): n for k, n in enumerate(model.graph.node)}
    labels = [n.name or f"{n.op_type}_{k}" for k, n in enumerate(model.graph.node)]
    if any(n not in by_name for n in names):
        inlined, labels = inline_branches(model, feeds_of)
        by_name.update(inlined)
    value_of = {name: Exposed(node.input[0]) for name, node in by_name.items() if node.input}
    if any(n not in by_name for n in names):
        value_of.update(expose_subgraphs(model, {n for n in names if n not in by_name}, labels, carry))
    value_of = {n: value_of[n] for n in names if n in value_of}
    existing = {o.name for o in model.graph.output}
    for e in value_of.values():
        for value, element in ((e.value, onnx.TensorProto.FLOAT), (e.shapes, onnx.TensorProto.INT64)):
            if value is not None and value not in existing:
                model.graph.output.append(onnx.helper.make_tensor_value_info(value, element, None))
                existing.add(value)
    return value_of


def instances(values, exposed):
    """The node inputs that one run's outputs `values` hold for `exposed`, each with its stacking
    axes merged into its first (batch) axis, empty ones left out."""
    if exposed.shapes is None:
        parts = [values[exposed.value]]
    else:
        data, shapes = values[exposed.value], values[exposed.shapes]
        parts, i, offset = [], 0, 0
        while i < len(shapes):
            rank = int(shapes[i])
            dims = tuple(int(d) for d in shapes[i + 1:i + 1 + rank])
            size = math.prod(dims)
            parts.append(data[offset:offset + size].reshape(dims))
            i, offset = i + 1 + rank, offset + size
    for x in parts:
        if exposed.axes and x.ndim > exposed.axes + 1:
            x = x.reshape((-1,) + x.shape[exposed.axes + 1:])
        if x.size:
            yield x


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tool")
    parser.add_argument("model")
    parser.add_argument("inputs")
    parser.add_argument("output")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch-limit", type=int, default=4096)
    parser.add_argument("--batch-axis", action="append", default=[], metavar="NAME=AXIS",
                        help="the axis of input NAME that holds the samples (default: its first symbolic dimension)")
    parser.add_argument("--sensitivity-samples", type=int, default=sensitivity.SAMPLES,
                        help=f"samples of each sensitivity run (default {sensitivity.SAMPLES}; the first ones, whole feeds)")
    parser.add_argument("--sensitivity-flops", type=float, default=sensitivity.FLOPS,
                        help=f"each node's FLOP fraction in its single-layer compression (default {sensitivity.FLOPS})")
    parser.add_argument("--sensitivity-check", type=float, default=sensitivity.CHECK_BUDGET, metavar="F",
                        help=f"keep the sensitivities only when the allocation they weight at --budget macs:F damages the sensitivity "
                             f"samples' outputs less than the unweighted one (default {sensitivity.CHECK_BUDGET}; 0: keep them unchecked)")
    parser.add_argument("--no-sensitivity", action="store_true", help="no end-to-end sensitivities in the file")
    parser.add_argument("--no-output-metrics", action="store_true", help="no end-to-end output metrics in the file")
    parser.add_argument("--training-python", metavar="PATH",
                        help="the Python of an environment with onnxruntime-training, for the output metrics (default through calibrate.sh: Scripts/train-venv.sh's)")
    parser.add_argument("--output-metric-samples", type=int, default=OUTPUT_METRIC_SAMPLES,
                        help=f"samples the output metrics are measured on (default {OUTPUT_METRIC_SAMPLES}; the first ones, whole feeds)")
    parser.add_argument("--output-metric-passes", type=int, default=2, help="passes over those samples, each with a new projection (default 2)")
    parser.add_argument("--output-metric-check", type=float, default=sensitivity.CHECK_BUDGET, metavar="F",
                        help=f"keep the output metrics only when the model compressed at --budget macs:F with them damages the sensitivity "
                             f"samples' outputs less than without (default {sensitivity.CHECK_BUDGET}; 0: keep them unchecked)")
    parser.add_argument("--ctc-output", metavar="NAME",
                        help="a CTC output [batch, time, classes] (or time first): the rows of every Gemm/MatMul input whose first two "
                             "axes are its own are weighted by 1 - p_blank + --ctc-floor under the original model")
    parser.add_argument("--ctc-blank", type=int, default=0, metavar="K", help="the blank class of --ctc-output (default 0)")
    parser.add_argument("--ctc-floor", type=float, default=CTC_FLOOR, metavar="F",
                        help=f"the weight of a time step the original reads as certainly blank (default {CTC_FLOOR})")
    parser.add_argument("--ctc-node", action="append", default=[], metavar="NAME",
                        help="weight only these nodes' rows (default: every aligned Gemm/MatMul)")
    args = parser.parse_args()
    if not math.isfinite(args.ctc_floor) or args.ctc_floor < 0:
        sys.exit(f"calibrate: --ctc-floor {args.ctc_floor} must be finite and non-negative")
    if (args.ctc_node or args.ctc_blank or args.ctc_floor != CTC_FLOOR) and not args.ctc_output:
        sys.exit("calibrate: --ctc-blank, --ctc-floor and --ctc-node need --ctc-output")
    if args.output_metric_samples < 1 or args.output_metric_passes < 1 or not 0 <= args.output_metric_check < 1:
        sys.exit(f"calibrate: --output-metric-samples {args.output_metric_samples} and --output-metric-passes {args.output_metric_passes} "
                 f"must be at least 1, --output-metric-check {args.output_metric_check} in [0, 1)")
    if args.training_python and not (os.path.isfile(args.training_python) and os.access(args.training_python, os.X_OK)):
        sys.exit(f"calibrate: --training-python {args.training_python} is not an executable file")
    if args.sensitivity_samples < 1 or not 0 < args.sensitivity_flops < 1 or not 0 <= args.sensitivity_check < 1:
        sys.exit(f"calibrate: --sensitivity-samples {args.sensitivity_samples} must be at least 1, --sensitivity-flops "
                 f"{args.sensitivity_flops} in (0, 1) and --sensitivity-check {args.sensitivity_check} in [0, 1)")
    started = time.monotonic()
    model = onnx.load(args.model)
    feeds_of, shapes, samples = input_plan(model, args)
    try:
        nodes = compressible_nodes(args.tool, args.model, shapes)
    except ToolError as error:
        sys.exit(f"calibrate: {error}")
    def collect(model, carry):
        """The nodes that the calibration runs reach and their accumulated statistics (`carry`: the
        values in Loop bodies handed out as carried pairs, see expose_subgraphs)."""
        value_of = exposing_model(model, [n["name"] for n in candidates], feeds_of, carry)
        nested = [n["name"] for n in candidates if n["name"] not in value_of]
        if nested:
            print(f"calibrate: {len(nested)} compressible nodes inside subgraphs get no statistics: {', '.join(nested[:5])}"
                  + (f" and {len(nested) - 5} more" if len(nested) > 5 else ""), file=sys.stderr)
        nodes = [n for n in candidates if n["name"] in value_of]
        exposed = {}
        for n in nodes:
            exposed.setdefault(value_of[n["name"]], []).append(n)
        # Errors come back as exceptions (one below is retried): onnxruntime's own log of them is left out.
        exposing = session(model, threads=0, log_level=4)
        names = [o.name for o in exposing.get_outputs()]
        accumulators = {}
        weighted.clear()
        done = 0
        for feeds, count in feeds_of():
            values = dict(zip(names, exposing.run(None, feeds)))
            mask = feeds["attention_mask"].astype(bool) if "attention_mask" in feeds and feeds["attention_mask"].ndim == 2 else None
            steps = ctc_weights(values[args.ctc_output], args.ctc_blank, args.ctc_floor) if args.ctc_output else None
            for e, consumers in exposed.items():
                # A Loop's or Scan's iterations are each a batch of their own; a run that did not take a
                # node's branch gives none.
                for x, n in ((x, n) for x in instances(values, e) for n in consumers):
                    if n["op"] in ("Conv", "ConvTranspose"):
                        # A 1-D convolution is analysed as 2-D of height 1 (inspect lists kernel [1, k]); a
                        # ConvTranspose as its equivalent convolution: stride 1 on the input upsampled by
                        # its strides, with the padding inspect lists.
                        xs = x[:, :, None, :] if x.ndim == 3 else x
                        stride = n["stride"]
                        if n["op"] == "ConvTranspose":
                            xs, stride = upsampled(xs, stride), [1] * len(stride)
                        groups = n["groups"]
                        cin = xs.shape[1]
                        cg = cin // groups
                        kernel, dilation, padding = n["kernel"], n["dilation"], n["padding"]
                        d = cg * math.prod(kernel)
                        per_channel = d > args.patch_limit
                        acc = accumulators.setdefault(n["name"], Accumulator(groups, cg if per_channel else d))
                        positions = math.prod((xs.shape[2 + a] + padding[2 * a] + padding[2 * a + 1] - dilation[a] * (kernel[a] - 1) - 1)
                                              // stride[a] + 1 for a in range(len(kernel)))
                        for sample in xs:
                            for g in range(groups):
                                part = sample[g * cg:(g + 1) * cg]
                                if per_channel:
                                    acc.add(g, part.reshape(cg, -1).T)
                                    continue
                                for chunk in patches(part, kernel, stride, padding, dilation, max(1, 16384 // max(1, math.prod(xs.shape[3:])))):
                                    acc.add(g, chunk)
                            acc.count += math.prod(sample.shape[1:]) if per_channel else positions
                    else:
                        d = x.shape[-1]
                        acc = accumulators.setdefault(n["name"], Accumulator(1, d))
                        top = e == Exposed(e.value) and x.ndim == 3
                        keep = mask if mask is not None and top and x.shape[:2] == mask.shape else None
                        rows = x[keep] if keep is not None else x.reshape(-1, d)
                        # The time steps of a CTC output's rows, weighted by what the decoding reads of them.
                        w = None
                        if steps is not None and top and x.shape[:2] == steps.shape and (not args.ctc_node or n["name"] in args.ctc_node):
                            w = steps[keep] if keep is not None else steps.reshape(-1)
                            weighted.add(n["name"])
                        acc.add(0, rows, w)
                        acc.count += rows.shape[0]
                        acc.total += rows.shape[0] if w is None else float(w.sum())
            # Progress at each quarter of the samples, not each batch (hundreds of batches for a stream).
            if 4 * (done + count) // samples > 4 * done // samples and done + count < samples:
                print(f"calibrate: {done + count}/{samples} samples", file=sys.stderr)
            done += count
        return nodes, accumulators

    if args.ctc_output:
        outputs = [o.name for o in model.graph.output]
        if args.ctc_output not in outputs:
            sys.exit(f"calibrate: --ctc-output {args.ctc_output} is not one of the model's outputs ({', '.join(outputs)})")
    weighted = set()
    candidates = nodes
    try:
        nodes, accumulators = collect(model, carry=False)
    except Exception as error:   # onnxruntime's Fail
        if "Inconsistent shape in loop output" not in str(error):
            raise
        # A Loop body's value that changes shape from one iteration to the next cannot be a scan
        # output: hand every Loop body's values out as carried pairs instead, from the start.
        print("calibrate: a value inside a Loop's body changes shape from one iteration to the next; collecting again with the "
              "bodies' values carried over the iterations", file=sys.stderr)
        nodes, accumulators = collect(onnx.load(args.model), carry=True)
    layers = {name: acc.statistics() for name, acc in accumulators.items()}
    unused = [n["name"] for n in nodes if n["name"] not in accumulators]
    if unused:
        print(f"calibrate: {len(unused)} compressible nodes run on none of these inputs (branches not taken, loops run no times) and get no "
              f"statistics: {', '.join(unused[:5])}" + (f" and {len(unused) - 5} more" if len(unused) > 5 else ""), file=sys.stderr)
    weighting = None
    if args.ctc_output:
        if not weighted:
            sys.exit(f"calibrate: --ctc-output {args.ctc_output}: no Gemm/MatMul input"
                     + (f" among the nodes {', '.join(args.ctc_node)}" if args.ctc_node else "") + " has its first two axes (batch and time)")
        missing = sorted(set(args.ctc_node) - weighted)
        if missing:
            sys.exit(f"calibrate: --ctc-node {', '.join(missing)}: not a Gemm/MatMul whose input is aligned with the time steps of {args.ctc_output}")
        weighting = (f"the rows of {', '.join(sorted(weighted))} weighted by 1 - p_blank + {args.ctc_floor:g} "
                     f"(p_blank: class {args.ctc_blank} of {args.ctc_output} under the original model)")
        print(f"calibrate: {weighting}", file=sys.stderr)
    seconds = time.monotonic() - started
    sensitivity_note, left_out = None, None
    if args.no_sensitivity:
        print("calibrate: no sensitivities (--no-sensitivity)", file=sys.stderr)
    else:
        try:
            measured, stored, verdict = measure_sensitivities(args, feeds_of, shapes, layers, [n["name"] for n in nodes if n["name"] in layers])
            left_out = None if stored is not None else "they failed the check"
        except Exception as error:   # the statistics are computed: keep them, say why the sensitivities are not there
            for s in layers.values():
                s.sensitivity = None
            measured, verdict = args.sensitivity_samples, f"measuring or checking them failed: {str(error).strip() or type(error).__name__}"
            left_out = "measuring or checking them failed"
            print(f"calibrate: warning: the statistics are written without sensitivities: {verdict}", file=sys.stderr)
        sensitivity_note = sensitivity.description(args.sensitivity_flops, measured) + "; " + verdict + ("" if left_out is None else "; left out")
    after_sensitivities = time.monotonic()
    try:
        metric_note = output_metrics(args, feeds_of, shapes, layers, [n["name"] for n in nodes if n["name"] in layers and n["op"] in ("Gemm", "MatMul")])
    except Exception as error:   # the statistics are computed: keep them, say why the output metrics are not there
        for s in layers.values():
            s.output_metric = None
        reason = str(error).strip() or type(error).__name__
        print(f"calibrate: warning: the statistics are written without output metrics: {reason}", file=sys.stderr)
        metric_note = f"none: measuring or checking them failed: {reason}"
    statistics.write(args.output, layers, sensitivity_note, weighting=weighting, output_metric=metric_note)
    weights = sorted(s.sensitivity for s in layers.values() if s.sensitivity is not None)
    metrics = sum(s.output_metric is not None for s in layers.values())
    print(f"calibrate: wrote {args.output}: statistics of {len(accumulators)} nodes from {samples} samples ({seconds:.0f} s), "
          + ("no sensitivities (--no-sensitivity)" if args.no_sensitivity else
             (f"end-to-end sensitivities of {len(weights)}" if left_out is None else f"no sensitivities ({left_out})")
             + f" ({after_sensitivities - started - seconds:.0f} s measuring and checking them"
             + (f"; from {weights[0]:.3g} to {weights[-1]:.3g}, median {weights[len(weights) // 2]:.3g})" if weights else ")"))
          + f", {'output metrics of ' + str(metrics) if metrics else 'no output metrics'} ({time.monotonic() - after_sensitivities:.0f} s)")


def output_metrics(args, feeds_of, shapes, layers, names):
    """Sets the end-to-end output metric of the Gemm and MatMul nodes `names` in `layers`
    (tdtools.gradients in the training environment) when they pass the check
    (--output-metric-check). Returns the file's description of them, or of why there are none."""
    if args.no_output_metrics:
        return "none (--no-output-metrics)"
    if not names:
        print("calibrate: no Gemm or MatMul node has statistics: no output metrics", file=sys.stderr)
        return "none: no Gemm or MatMul node has statistics"
    python = args.training_python
    if not python and os.environ.get("TDTOOLS_TRAINING_ENV"):
        # calibrate.sh's script that creates the training environment on first use and prints its Python.
        made = subprocess.run(["bash", os.environ["TDTOOLS_TRAINING_ENV"]], stdout=subprocess.PIPE, text=True)
        python = made.stdout.strip() if made.returncode == 0 else None
        if not python:
            print(f"calibrate: warning: no output metrics: creating the training environment failed ({os.environ['TDTOOLS_TRAINING_ENV']})", file=sys.stderr)
            return "none: the training environment could not be created"
    if not python:
        print("calibrate: warning: no output metrics: they need onnxruntime-training (--training-python; calibrate.sh provides it)", file=sys.stderr)
        return "none: no --training-python"
    # The gradient graph has one set of input shapes: the feeds of the shapes that hold the most
    # samples (a recognizer's lines of many widths, a last batch of fewer samples).
    groups, total = {}, 0
    for feed, n in feeds_of():
        signature = tuple(sorted((k, v.shape, v.dtype.str) for k, v in feed.items()))
        group = groups.setdefault(signature, ([], [0]))
        if group[1][0] < args.output_metric_samples:
            group[0].append(feed)
            group[1][0] += n
        total += n
    feeds, (count,) = max(groups.values(), key=lambda g: g[1][0])
    other = f"; {total - count} other samples left out (of {len(groups) - 1} other shapes, or past --output-metric-samples)" if total > count else ""
    print(f"calibrate: measuring the end-to-end output metrics of {len(names)} Gemm/MatMul nodes on {count} samples "
          f"({len(feeds)} feeds of one shape{other}; {args.output_metric_passes} passes; onnxruntime-training; --no-output-metrics to skip)", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as work:
        feeds_path, nodes_path, out = (os.path.join(work, f) for f in ("feeds.npz", "nodes.json", "metrics.npz"))
        np.savez(feeds_path, **{f"{k}/{name}": value for k, feed in enumerate(feeds) for name, value in feed.items()})
        with open(nodes_path, "w") as f:
            json.dump(names, f)
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                                               os.environ.get("PYTHONPATH")])))
        done = subprocess.run([python, "-m", "tdtools.gradients", args.model, feeds_path, nodes_path, out,
                               "--passes", str(args.output_metric_passes), "--work", os.path.join(work, "artifacts")],
                              capture_output=True, text=True, env=environment)
        for line in done.stderr.strip().splitlines():
            if line.startswith("gradients:") and not line.startswith("gradients: wrote"):
                print("calibrate: " + line[len("gradients: "):], file=sys.stderr)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"no message, exit status {done.returncode}"])[-1]
            print(f"calibrate: warning: the statistics are written without output metrics: {reason}", file=sys.stderr)
            return f"none: measuring them failed: {reason}"
        archive = np.load(out)
        measured = {name: archive[name] for name in archive.files if not name.startswith("__rows__/") and name in layers}
        if not measured:
            print("calibrate: no node's output metric could be measured (the reasons are above)", file=sys.stderr)
            return "none: no node could be measured"
        description = (f"E[g gᵀ] at each node's output, g the gradient of a random projection of the outputs, on {count} samples "
                       f"× {args.output_metric_passes} passes (onnxruntime-training)")
        if args.output_metric_check > 0:
            b = args.output_metric_check
            path = os.path.join(work, "statistics.safetensors")
            for name, metric in measured.items():
                layers[name].output_metric = metric
            statistics.write(path, layers)
            check_feeds, check_count = sensitivity.first_samples(feeds_of, args.sensitivity_samples)
            try:
                with_metrics, without = sensitivity.damages(args.tool, args.model, path, check_feeds, shapes, b, [[], ["--no-output-metrics"]])
            except Exception as error:
                with_metrics = without = None
                reason = str(error).strip() or type(error).__name__
            for name in measured:
                layers[name].output_metric = None
            if with_metrics is None:
                print(f"calibrate: warning: the statistics are written without output metrics: checking them failed: {reason}", file=sys.stderr)
                return f"none: checking them failed: {reason}"
            verdict = (f"at macs:{b} the model compressed with them damages the outputs of {check_count} samples by {with_metrics:.4g} "
                       f"against {without:.4g} without")
            if not with_metrics < without:
                print(f"calibrate: output metrics left out of the file: {verdict} (--output-metric-check 0 keeps them)", file=sys.stderr)
                return f"none: {description}; {verdict}; left out"
            print(f"calibrate: output metrics kept: {verdict}", file=sys.stderr)
            description += "; " + verdict
    for name, metric in measured.items():
        layers[name].output_metric = metric
    return description


def measure_sensitivities(args, feeds_of, shapes, layers, names):
    """Sets each layer's sensitivity in `layers` (tdtools.sensitivity, with the statistics written
    to a temporary file) when they pass the check (--sensitivity-check). Returns the number of
    samples they were measured on, the number of layers given one (None when left out), and the
    check's verdict."""
    feeds, count = sensitivity.first_samples(feeds_of, args.sensitivity_samples)
    print(f"calibrate: measuring the end-to-end sensitivity of {len(names)} nodes on {count} samples "
          "(one single-layer compress and one onnxruntime run each; --no-sensitivity to skip)", file=sys.stderr)
    skipped = []

    def log(k, total, name, e2, d, weight, why):
        if weight is None:
            skipped.append(f"{name} ({why})")
        if 4 * (k + 1) // total > 4 * k // total and k + 1 < total:
            print(f"calibrate: sensitivities {k + 1}/{total}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as work:
        path = os.path.join(work, "statistics.safetensors")
        statistics.write(path, layers)
        weights = sensitivity.measure(args.tool, args.model, path, feeds, names, shapes, args.sensitivity_flops, log)
        if skipped:
            print(f"calibrate: {len(skipped)} {'node gets' if len(skipped) == 1 else 'nodes get'} no sensitivity (weight 1 in the allocation): {'; '.join(skipped[:5])}"
                  + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""), file=sys.stderr)
        verdict = f"measured on {count} samples"
        if weights and args.sensitivity_check > 0:
            b = args.sensitivity_check
            weighted, unweighted = sensitivity.check(args.tool, args.model, path, weights, feeds, shapes, b)
            verdict = (f"at macs:{b} the allocation weighted by them damages the outputs of the {count} samples by {weighted:.4g} "
                       f"against {unweighted:.4g} unweighted")
            if not weighted < unweighted:
                print(f"calibrate: sensitivities left out of the file: {verdict}; the allocation's additive model Σ w e² does not "
                      "hold well enough for this network (--sensitivity-check 0 keeps them; tdtools.sensitivity writes them as --layer-weights JSON)", file=sys.stderr)
                return count, None, verdict
            print(f"calibrate: sensitivities kept: {verdict}", file=sys.stderr)
    for name, weight in weights.items():
        layers[name].sensitivity = weight
    return count, len(weights), verdict


if __name__ == "__main__":
    main()
