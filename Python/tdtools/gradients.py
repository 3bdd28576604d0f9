"""End-to-end output metrics of a model's Gemm and MatMul nodes, measured with onnxruntime-training
(`tdtools.calibrate` runs this module in the training environment, `Scripts/train-venv.sh`, and
stores the result as NAME.outputMetric in the statistics file):

    python -m tdtools.gradients MODEL.onnx FEEDS.npz NODES.json OUT.npz [--passes 2] [--seed 0] [--work DIR]

For a node whose output row is y (its last axis) and the model's outputs Y, the metric is

    G = E[g gᵀ],  g = ∂(Σ_Y vᵀ Y / ‖Y‖) / ∂y,  v ~ N(0, I) drawn anew for every feed and pass,

the mean over every row of the node's output in every feed (each output Y scaled by its feed's
RMS row norm, so that outputs of another scale count alike). E_v[g gᵀ] = Jᵀ J for the Jacobian J
of the scaled outputs with respect to one row: a change Δ of the row moves the outputs by
E‖J Δ‖² = Δᵀ G Δ, to first order (the Gauss-Newton matrix of the outputs; the output factor of
K-FAC, Martens and Grosse 2015). Rows are taken one at a time, as K-FAC does: the terms between
rows (tokens, positions) are left out. The compressor's SVD of the node then minimises
E[(ΔW x)ᵀ G (ΔW x)] over the calibration inputs x instead of ‖ΔW x‖²: the output error as the
network's outputs see it, through the norms, attention and nonlinearities after the node.

How: every named node's output gets a zero parameter added to it (a probe of the output's full
shape), onnxruntime-training builds the gradient graph of the loss Σ_Y ⟨v, Y⟩/s_Y with the probes as
the only trainable values (`onnxruntime.training.artifacts.generate_artifacts`), and the probes'
gradients are the g of every row. FEEDS.npz holds the feeds as `K/NAME` for feed K and graph
input NAME, every feed of the same shapes (the probes have one shape). NODES.json is a JSON list of
node names; a name that is not a Gemm or MatMul of the main graph with a float32 output, or whose
output has more than MAX_OUTPUTS features (its metric would not fit in memory), is left out and
said. OUT.npz holds one float64 [m, m] array per measured node, and `__rows__/NAME`, the rows it
was averaged over.

The copy of the model that the gradient graph is built from differs from the model where
onnxruntime-training would not compute the model's own gradient: an inference-mode
BatchNormalization is written as its affine map (the training graph would normalise with each
feed's own batch statistics), Dropout as Identity; and where onnxruntime-training 1.19.2 needs it:
a LayerNormalization declares its optional Mean and InvStdDev outputs (its gradient reads them),
initializers are not listed as graph inputs, graph outputs have shapes, and its optimizer module,
which imports torch, is stubbed before the import. A node whose output an If, Loop or Scan body
reads is left out (the probe would not reach the body).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import types

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAX_OUTPUTS = 8192
PASSES = 2


def load_feeds(path):
    """The feeds of FEEDS.npz, in order: [{input: array}]."""
    archive = np.load(path)
    feeds = {}
    for key in archive.files:
        index, _, name = key.partition("/")
        feeds.setdefault(int(index), {})[name] = archive[key]
    return [feeds[k] for k in sorted(feeds)]


def label(node, k):
    """A node's name as tdtools.calibrate and tensor-compress give it (`OP_k` when it has none)."""
    return node.name or f"{node.op_type}_{k}"


def subgraph_reads(graph):
    """The values that the subgraphs (If branches, Loop and Scan bodies) of `graph`'s nodes read,
    at any depth."""
    read = set()
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else
                        list(attribute.graphs) if attribute.type == onnx.AttributeProto.GRAPHS else []):
                for inner in sub.node:
                    read.update(inner.input)
                read |= subgraph_reads(sub)
    return read


def probed(model, shapes, values):
    """A copy of `model` for the gradient graph, and {node: probe name}: a zero parameter added to
    the output of each node labelled in `shapes` (its output shape on the feeds), the consumers
    reading the sum; inference-mode BatchNormalization written as its affine map (onnxruntime-
    training would normalise with each batch's own statistics) and Dropout as Identity; a
    LayerNormalization's optional outputs declared (its gradient reads them); initializers no
    longer listed as graph inputs; graph outputs with the shapes of `values` (the first feed's)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    initializers = {i.name: i for i in m.graph.initializer}
    # Values of Constant nodes count as constants too (exporters write BatchNormalization's so).
    constants = dict(initializers)
    for node in m.graph.node:
        if node.op_type == "Constant" and node.output and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    kept_inputs = [i for i in m.graph.input if i.name not in initializers]
    del m.graph.input[:]
    m.graph.input.extend(kept_inputs)
    renamed, probes, result = {}, {}, []
    used = {v for n in m.graph.node for v in list(n.input) + list(n.output)}

    def fresh(base):
        name, k = base, 0
        while name in used:
            k += 1
            name = f"{base}:{k}"
        used.add(name)
        return name

    for k, node in enumerate(m.graph.node):
        name = label(node, k)
        if node.op_type == "BatchNormalization" and len([o for o in node.output if o]) == 1:
            # y = (x − mean) / √(var + ε) · scale + B  =  x · a + b, per channel (axis 1).
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            if not all(i in constants for i in node.input[1:5]) or node.input[0] not in values:
                raise ValueError(f"BatchNormalization '{name}': its statistics are not constants, so the gradient graph "
                                 "would normalise with each batch's own")
            scale, bias, mean, var = (numpy_helper.to_array(constants[i]).astype(np.float64) for i in node.input[1:5])
            a = scale / np.sqrt(var + eps)
            shape = [len(a)] + [1] * (values[node.input[0]].ndim - 2)
            names = [fresh(name + ":a"), fresh(name + ":b")]
            m.graph.initializer.extend([numpy_helper.from_array(a.reshape(shape).astype(np.float32), names[0]),
                                        numpy_helper.from_array((bias - mean * a).reshape(shape).astype(np.float32), names[1])])
            scaled = fresh(name + ":scaled")
            result += [helper.make_node("Mul", [node.input[0], names[0]], [scaled], name=fresh(name + ":mul")),
                       helper.make_node("Add", [scaled, names[1]], [node.output[0]], name=fresh(name + ":add"))]
            continue
        if node.op_type == "Dropout":
            result.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=name))
            if len(node.output) > 1 and node.output[1]:
                raise ValueError(f"Dropout '{name}': its mask output is read")
            continue
        if node.op_type == "LayerNormalization":
            outputs = list(node.output) + [""] * (3 - len(node.output))
            outputs = [o or fresh(f"{name}:{part}") for o, part in zip(outputs, ("y", "mean", "inv_std_dev"))]
            del node.output[:]
            node.output.extend(outputs)
        result.append(node)
        if name in shapes:
            y = node.output[0]
            probe = fresh("probe:" + name)
            probes[name] = probe
            renamed[y] = fresh(y + ":probed")
            m.graph.initializer.append(numpy_helper.from_array(np.zeros(shapes[name], np.float32), probe))
            result.append(helper.make_node("Add", [y, probe], [renamed[y]], name=fresh(name + ":probe")))
    adds = {renamed[v] for v in renamed}
    for node in result:
        if node.output and node.output[0] in adds:
            continue
        for k, value in enumerate(node.input):
            if value in renamed:
                node.input[k] = renamed[value]
    for output in m.graph.output:
        if output.name in values and not output.type.tensor_type.HasField("shape"):
            output.type.tensor_type.shape.dim.extend([onnx.TensorShapeProto.Dimension(dim_value=d) for d in values[output.name].shape])
        if output.name in renamed:
            # A probed value that is also a graph output: the output reads the probed sum.
            out = fresh(output.name + ":out")
            result.append(helper.make_node("Identity", [renamed[output.name]], [out], name=out))
            output.name = out
    del m.graph.node[:]
    m.graph.node.extend(result)
    return m, probes


def artifacts_for(model, probes, outputs, directory):
    """onnxruntime-training's artifacts with the probes trainable and the loss Σ_Y ReduceSum(Y · v_Y)
    over `outputs` ((graph output name in `model`, shape) pairs)."""
    sys.modules.setdefault("onnxruntime.training.optim", types.ModuleType("onnxruntime.training.optim"))
    from onnxruntime.training import artifacts, onnxblock
    from onnxruntime.training.onnxblock import blocks

    class Projection(onnxblock.Block):
        """Σ over the outputs Y of Σ(Y · v_Y), the v_Y fed per feed."""

        def __init__(self):
            super().__init__()
            self.terms = [(blocks.Mul(), blocks.ReduceSum(keepdims=False)) for _ in outputs]
            self.adds = [blocks.Add() for _ in outputs[1:]]

        def build(self, *ys):
            for name, shape in outputs:
                self.base.graph.input.append(helper.make_tensor_value_info("v:" + name, TensorProto.FLOAT, list(shape)))
            parts = [reduce(mul(y, "v:" + name)) for (mul, reduce), y, (name, _) in zip(self.terms, ys, outputs)]
            total = parts[0]
            for add, part in zip(self.adds, parts[1:]):
                total = add(total, part)
            return total

    trainable = list(probes.values())
    frozen = [i.name for i in model.graph.initializer if i.name not in set(trainable)]
    # The gradient builder logs every graph transformer on the process's stderr: into a log file.
    path = os.path.join(directory, "generate_artifacts.log")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "w") as log:
            os.dup2(log.fileno(), 2)
            artifacts.generate_artifacts(model, requires_grad=trainable, frozen_params=frozen, loss=Projection(),
                                         artifact_directory=directory, loss_input_names=[name for name, _ in outputs])
    except Exception as error:
        os.dup2(saved, 2)
        lines = [l for l in open(path).read().splitlines() if "[W:" in l or "[E:" in l or "rror" in l]
        raise ValueError(f"onnxruntime-training could not build the gradient graph: {str(error).strip()[:300]}"
                         + (f" ({lines[-1].strip()[:200]})" if lines else "")) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def measure(model, feeds, names, passes=PASSES, seed=0, work=None, log=print):
    """({node: G}, {node: rows}) for the nodes labelled `names` in `model` (an onnx.ModelProto;
    unnamed nodes as `OP_k`) on `feeds` (a list of onnxruntime feeds of one set of shapes)."""
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    signature = lambda feed: sorted((k, v.shape, v.dtype.str) for k, v in feed.items())
    if any(signature(f) != signature(feeds[0]) for f in feeds[1:]):
        raise ValueError("the feeds must all have the shapes of the first (the probes have one shape)")
    nodes = {label(n, k): n for k, n in enumerate(model.graph.node)}
    graph_outputs = [o.name for o in model.graph.output if o.type.tensor_type.elem_type == TensorProto.FLOAT]
    if not graph_outputs:
        raise ValueError("the model has no float32 output to take gradients of")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
        elem_types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    except Exception:       # shapes unknown: the run below finds a non-float output
        elem_types = {}
    inner = subgraph_reads(model.graph)
    kept, left = [], []
    for name in names:
        node = nodes.get(name)
        if node is None or node.op_type not in ("Gemm", "MatMul"):
            left.append(f"{name} (not a Gemm or MatMul of the main graph)")
        elif elem_types.get(node.output[0], TensorProto.FLOAT) != TensorProto.FLOAT:
            left.append(f"{name} (its output is not float32)")
        elif node.output[0] in inner:
            left.append(f"{name} (an If, Loop or Scan body reads its output)")
        else:
            kept.append(name)
    # The shapes on the first feed (onnxruntime inference): each node's output, each
    # BatchNormalization's input, the graph outputs.
    m = onnx.ModelProto()
    m.CopyFrom(model)
    wanted = {nodes[name].output[0] for name in kept} | {n.input[0] for n in model.graph.node if n.op_type == "BatchNormalization"}
    present = {o.name for o in m.graph.output}
    for value in sorted(wanted - present):
        m.graph.output.append(helper.make_tensor_value_info(value, elem_types.get(value, TensorProto.FLOAT), None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    s = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds[0])))
    shapes = {}
    for name in kept:
        y = values[nodes[name].output[0]]
        if y.dtype != np.float32 or y.ndim < 1 or y.shape[-1] > MAX_OUTPUTS:
            left.append(f"{name} (output {y.dtype} {list(y.shape)}: float32 with at most {MAX_OUTPUTS} features needed)")
        else:
            shapes[name] = y.shape
    if left:
        log(f"gradients: {len(left)} nodes get no output metric: {'; '.join(left[:5])}" + (f" and {len(left) - 5} more" if len(left) > 5 else ""))
    if not shapes:
        return {}, {}
    probe_model, probes = probed(model, shapes, values)
    # The loss's outputs, by their names in the probed model (a probed graph output reads the sum).
    renamed = dict(zip([o.name for o in model.graph.output], [o.name for o in probe_model.graph.output]))
    outputs = [(renamed[o], values[o].shape) for o in graph_outputs]
    directory = work or tempfile.mkdtemp(prefix="gradients-")
    try:
        clock = time.monotonic()
        artifacts_for(probe_model, probes, outputs, directory)
        sys.modules.setdefault("onnxruntime.training.optim", types.ModuleType("onnxruntime.training.optim"))
        from onnxruntime.training.api import CheckpointState, Module
        state = CheckpointState.load_checkpoint(os.path.join(directory, "checkpoint"))
        module = Module(os.path.join(directory, "training_model.onnx"), state, session_options=options)
        module.train()
        inputs = module.input_names()
        metrics = {name: np.zeros((shape[-1], shape[-1])) for name, shape in shapes.items()}
        rng = np.random.default_rng(seed)
        for _ in range(passes):
            for feed in feeds:
                reference = s.run(graph_outputs, feed)
                given = dict(feed)
                for (o, shape), y in zip(outputs, reference):
                    y = y.astype(np.float64)
                    count = max(y.size // max(shape[-1], 1), 1) if y.ndim else 1
                    scale = np.sqrt(count / max(float(np.sum(y * y)), 1e-30))
                    given["v:" + o] = (rng.standard_normal(shape) * scale).astype(np.float32)
                module.lazy_reset_grad()
                module(*[given[k] for k in inputs])
                for name, probe in probes.items():
                    g = state.parameters[probe].grad.reshape(-1, shapes[name][-1]).astype(np.float64)
                    if not np.all(np.isfinite(g)):
                        raise ValueError(f"a non-finite gradient at the output of {name}")
                    metrics[name] += g.T @ g
        log(f"gradients: output metrics of {len(metrics)} nodes from {len(feeds)} feeds × {passes} passes "
            f"({time.monotonic() - clock:.0f} s)")
    finally:
        if work is None:
            shutil.rmtree(directory, ignore_errors=True)
    rows = {name: int(np.prod(shapes[name][:-1])) * len(feeds) * passes for name in metrics}
    return {name: g / max(rows[name], 1) for name, g in metrics.items()}, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("feeds")
    parser.add_argument("nodes")
    parser.add_argument("output")
    parser.add_argument("--passes", type=int, default=PASSES, help=f"passes over the feeds, each with new v (default {PASSES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="keep the training artifacts in this folder (default: a temporary one)")
    args = parser.parse_args()
    if args.passes < 1:
        sys.exit(f"gradients: --passes {args.passes} must be at least 1")
    feeds = load_feeds(args.feeds)
    if not feeds:
        sys.exit(f"gradients: {args.feeds} holds no feeds")
    with open(args.nodes) as f:
        names = json.load(f)
    if args.work:
        os.makedirs(args.work, exist_ok=True)
    try:
        metrics, rows = measure(onnx.load(args.model), feeds, names, args.passes, args.seed, args.work,
                                log=lambda line: print(line, file=sys.stderr))
    except Exception as error:
        sys.exit(f"gradients: {str(error).strip() or type(error).__name__}")
    temporary = args.output + ".part.npz"
    np.savez(temporary, **metrics, **{"__rows__/" + name: np.array([r]) for name, r in rows.items()})
    os.replace(temporary, args.output)
    print(f"gradients: wrote {args.output}: output metrics of {len(metrics)} nodes", file=sys.stderr)


if __name__ == "__main__":
    main()
