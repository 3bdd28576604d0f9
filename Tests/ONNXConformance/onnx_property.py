"""End-to-end property test of `tensor-compress simplify` and `compress`: random small ONNX graphs.

    PYTHONPATH=Python python Tests/ONNXConformance/onnx_property.py TOOL [--count N] [--seed S] [--keep DIR] [--only I ...] [--verbose]

Every graph is drawn from its own generator seeded by (S, index), so a run is deterministic and
one graph can be rerun alone with --only. The graphs combine:
- Conv (1-D or 2-D) with random kernel, stride, dilation, groups (depthwise too), explicit or
  absent pads, auto_pad (SAME_UPPER, SAME_LOWER, VALID), kernel_shape given or not, with, without
  or with an empty bias; chains of up to three, with Relu or a hard-swish (or a near miss) between,
  residual Adds, forks into two convolutions, weights shared by two convolutions;
- chains of Mul/Add/Sub/Div by constants before and after convolutions: scalars (rank 0 and 1),
  [C,1,1], [1,C,1,1], and ones that must not fold (per position, along the last axis, [2,C,1,1]
  that broadcasts the batch, [1,K,1,1] that broadcasts one channel to K, [1,C,1,1] that gives a
  [C,H,W] input its batch axis); the constant first or second (c − x too); zero and unit scales;
  intermediate values that are graph outputs too;
- Gemm (transA, transB, alpha, beta, C of every broadcastable shape) and MatMul by a constant
  (weight second or first, inputs of rank 1 to 4), alone or after a Flatten of convolutions.
Constants are initializers, Constant nodes (value, value_float, value_floats) or initializers
behind an Identity; opset 17, 13 or 11; sometimes a dynamic batch dimension (compress then gets
--input-shape, which it documents as required).

Each graph is made valid first (onnx shape inference in strict mode, onnx.checker with
full_check, an onnxruntime run with finite outputs); a graph that is not is drawn again. Then it
goes through `TOOL simplify`, `TOOL compress --rank-selection energy:1 --allow-growth` (with
--min-parameters 0 on most graphs, so that the small layers are really replaced) and, on every
third graph, `TOOL compress --simplify`. Every output must exit 0, pass
onnx.checker.check_model(full_check=True), load in onnxruntime and give the original's outputs
(same names and shapes) within 1e-4 of the largest magnitude of each reference output on the same
random input. simplify's JSON counts must match the node counts. A refusal (exit 1 with one line
`tensor-compress: error: ...`) is a failure too, since every graph is valid. Prints every failure
with its index, seed and graph, then `onnx property: P passed, F failed` (exit status 1 when F > 0).
--keep DIR writes each failing graph (and the tool's output, when there is one) to DIR.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tdtools.session import session as tdtools_session

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_conformance import finished  # noqa: E402  (shape inference fills the output shapes)

TOLERANCE = 1e-4
F32 = np.float32


class Builder:
    """A graph under construction: nodes, initializers, and a readable description."""

    def __init__(self, rng, opset):
        self.rng, self.opset = rng, opset
        self.nodes, self.inits, self.desc = [], [], []
        self.count, self.weights = 0, []   # names made; (name, shape) of the conv weights so far

    def fresh(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, array, prefix, storage=None):
        """A constant value: an initializer, or (sometimes) a Constant node (value, or value_float(s)
        for a scalar or a vector), or an initializer behind an Identity."""
        name = self.fresh(prefix)
        array = np.asarray(array, dtype=F32)
        if storage is None:
            r = self.rng.random()
            storage = "node" if r < 0.2 else "identity" if r < 0.27 else "init"
            if storage == "node" and array.ndim <= 1 and self.opset >= 12 and self.rng.random() < 0.4:
                storage = "value_float" if array.ndim == 0 else "value_floats"
        tensor = numpy_helper.from_array(array, name)
        if storage == "node":
            self.nodes.append(helper.make_node("Constant", [], [name], name=name + "_const", value=tensor))
        elif storage == "value_float":
            self.nodes.append(helper.make_node("Constant", [], [name], name=name + "_const", value_float=float(array)))
        elif storage == "value_floats":
            self.nodes.append(helper.make_node("Constant", [], [name], name=name + "_const", value_floats=[float(v) for v in array]))
        elif storage == "identity":
            tensor.name = name + "_raw"
            self.inits.append(tensor)
            self.nodes.append(helper.make_node("Identity", [tensor.name], [name], name=name + "_identity"))
        else:
            self.inits.append(tensor)
        return name, storage

    def node(self, op, inputs, **attrs):
        out = self.fresh(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def rnd(rng, *shape):
    return rng.standard_normal(shape).astype(F32)


# ----------------------------------------------------------------------------------------------
# Elementwise scale/shift chains

def affine(b, x, shape, channels_to=None, add_batch=False):
    """One Mul/Add/Sub/Div of x (shape `shape`, channels on axis 1) by a constant. With
    `channels_to`, a constant [1, K, 1, ...] that broadcasts x's single channel to K channels;
    with `add_batch`, x has no batch axis ([C, H, W]) and a [1, C, 1, 1] constant adds it."""
    rng, rank = b.rng, len(shape)
    c = shape[0] if add_batch else shape[1]
    op = rng.choice(["Mul", "Add", "Sub", "Div"], p=[0.35, 0.3, 0.15, 0.2])
    new_shape = list(shape)
    if channels_to is not None:
        form, cshape = "broadcast-1-to-C", [1, channels_to] + [1] * (rank - 2)
        new_shape[1] = channels_to
    elif add_batch:
        form, cshape = "adds-batch-axis", [1, c] + [1] * (rank - 1)
        new_shape = [1] + new_shape
    else:
        forms = ["scalar0d", "scalar1", "C11", "1C11", "spatial", "full", "batch"]
        form = rng.choice(forms, p=[0.15, 0.15, 0.25, 0.28, 0.07, 0.06, 0.04])
        if form == "batch" and shape[0] > 2:
            form = "1C11"
        cshape = {"scalar0d": [], "scalar1": [1], "C11": [c] + [1] * (rank - 2), "1C11": [1, c] + [1] * (rank - 2),
                  "spatial": [1] * (rank - 1) + [shape[-1]], "full": [1] + list(shape[1:]),
                  "batch": [2, c] + [1] * (rank - 2)}[form]
        if form == "batch":
            new_shape[0] = 2
    if op == "Div":
        value = (rng.uniform(0.5, 2.0, cshape) * rng.choice([-1, 1], cshape)).astype(F32)
    elif op == "Mul":
        value = np.array(rng.uniform(0.3, 2.0, cshape) * rng.choice([-1, 1], cshape), dtype=F32)
        if rng.random() < 0.1 and value.size > 1:
            value.flat[rng.integers(value.size)] = 0.0   # a zero scale in one channel
        elif rng.random() < 0.1:
            value[...] = 1.0
    else:
        value = rnd(rng, *cshape)
    name, storage = b.constant(value, "k")
    first = op in ("Mul", "Add") and rng.random() < 0.3 or op == "Sub" and rng.random() < 0.1
    out = b.node(op, [name, x] if first else [x, name])
    b.desc.append(f"{op}({'c,x' if first else 'x,c'}; c{cshape} {form} {storage})")
    return out, new_shape


def affine_chain(b, x, shape, length, outputs):
    for _ in range(length):
        x, shape = affine(b, x, shape)
        tap(b, x, shape, outputs, 0.04)
    return x, shape


def tap(b, x, shape, outputs, p):
    """Sometimes makes the value x a graph output too (then it has a reader outside the chain)."""
    if b.rng.random() < p:
        outputs.append((x, shape))
        b.desc.append(f"[{x} is a graph output]")


def hard_swish(b, x):
    """x·clip(x + 3, 0, 6)/6 in one of its exporters' forms (or, sometimes, a near miss: clip to 5)."""
    rng = b.rng
    high = 6.0 if rng.random() < 0.85 else 5.0
    three, zero, top = (b.constant(np.array(v, dtype=F32), "h", storage="node" if rng.random() < 0.5 else "init")[0] for v in (3.0, 0.0, high))
    h = b.node("Clip", [b.node("Add", [x, three]), zero, top])
    sixth = rng.random() < 0.3
    k = b.constant(np.array(1 / 6 if sixth else 6.0, dtype=F32), "h")[0]
    scale = (lambda v: b.node("Mul", [v, k])) if sixth else (lambda v: b.node("Div", [v, k]))
    y = scale(b.node("Mul", [x, h])) if rng.random() < 0.6 else b.node("Mul", [x, scale(h)])
    b.desc.append(f"HardSwish(clip 0..{high:g}, {'·1/6' if sixth else '/6'})")
    return y


# ----------------------------------------------------------------------------------------------
# Convolutions

def conv_out(size, k, s, d, pads, auto):
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return -(-size // s)
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


def conv_attributes(rng, shape, weight_shape=None):
    """Random Conv attributes, weight shape and output shape for input `shape` (for a given
    weight shape, when it is shared), or None."""
    c, spatial = shape[1], shape[2:]
    nd = len(spatial)
    if weight_shape is not None:
        out_channels, groups = weight_shape[0], c // weight_shape[1]
    else:
        divisors = [g for g in range(1, c + 1) if c % g == 0]
        r = rng.random()
        groups = 1 if r < 0.55 or c == 1 else c if r < 0.75 else int(rng.choice(divisors))
        out_channels = groups * int(rng.integers(1, max(2, 12 // groups) + 1)) if groups > 1 else int(rng.integers(1, 11))
        if groups == c and rng.random() < 0.5:
            out_channels = c   # plain depthwise
    kernel = [int(rng.choice([1, 1, 2, 3, 3, 4])) for _ in range(nd)] if weight_shape is None else list(weight_shape[2:])
    strides = [int(rng.choice([1, 1, 1, 2, 3])) for _ in range(nd)]
    dilations = [int(rng.choice([1, 1, 1, 2])) for _ in range(nd)]
    auto = str(rng.choice(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto.startswith("SAME"):
        dilations = [1] * nd   # onnxruntime runs no dilated SAME_* convolution
    attrs = {}
    pads = [0] * (2 * nd)
    if auto == "NOTSET":
        if rng.random() < 0.75:
            pads = [int(rng.integers(0, kernel[i % nd] + (1 if rng.random() < 0.2 else 0))) for i in range(2 * nd)]
            attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto
    if any(s != 1 for s in strides) or rng.random() < 0.3:
        attrs["strides"] = strides
    if any(d != 1 for d in dilations) or rng.random() < 0.2:
        attrs["dilations"] = dilations
    if groups != 1 or rng.random() < 0.2:
        attrs["group"] = groups
    if rng.random() < 0.3:
        attrs["kernel_shape"] = kernel
    out_spatial = [conv_out(spatial[i], kernel[i], strides[i], dilations[i], (pads[i], pads[i + nd]), auto) for i in range(nd)]
    if any(o < 1 for o in out_spatial):
        return None
    return attrs, [out_channels, c // groups] + kernel, [shape[0], out_channels] + out_spatial


def conv(b, x, shape, weight=None, attributes=None):
    """A Conv of x; returns (output, shape, (weight name, attributes)) or None when none fits."""
    rng = b.rng
    for _ in range(20):
        drawn = attributes or conv_attributes(rng, shape)
        if drawn is not None:
            break
    else:
        return None
    attrs, w_shape, out_shape = drawn
    earlier = [n for n, shp in b.weights if shp == w_shape]
    if weight is None and earlier and rng.random() < 0.5:
        weight = earlier[0]   # the weight of an earlier convolution, read by this one too
    if weight is None:
        w_name, storage = b.constant(rnd(rng, *w_shape) / np.sqrt(np.prod(w_shape[1:])), "W")
    else:
        w_name, storage = weight, "shared"
    b.weights.append((w_name, w_shape))
    inputs = [x, w_name]
    bias = rng.random() < 0.6
    if bias:
        inputs.append(b.constant(rnd(rng, w_shape[0]), "B")[0])
    elif rng.random() < 0.1:
        inputs.append("")   # an empty optional bias input
    out = b.node("Conv", inputs, **attrs)
    text = ",".join(f"{k}={v}" for k, v in attrs.items())
    b.desc.append(f"Conv(W{w_shape} {storage}{' bias' if bias else ''}{' ' + text if text else ''})")
    return out, out_shape, (w_name, drawn)


def conv_stack(b):
    rng = b.rng
    nd = 1 if rng.random() < 0.12 else 2
    channels = 1 if rng.random() < 0.15 else int(rng.integers(1, 9))
    shape = [int(rng.integers(1, 3)), channels] + [int(rng.integers(5, 15)) for _ in range(nd)]
    x = "x"
    outputs = []
    if rng.random() < 0.05:
        # The input has no batch axis; the first constant, [1, C, 1, 1], adds it.
        inputs = [("x", shape[1:], None)]
        b.desc.append(f"x{shape[1:]}")
        x, shape = affine(b, x, shape[1:], add_batch=True)
    else:
        inputs = [("x", shape, 0)]
        b.desc.append(f"x{shape}")
    for i in range(int(rng.choice([1, 1, 2, 2, 3]))):
        block_input, block_shape = x, shape
        if rng.random() < 0.55:
            if shape[1] == 1 and rng.random() < 0.5:
                # x has one channel; a [1, K, 1, 1] constant makes K of them for the conv.
                x, shape = affine(b, x, shape, channels_to=int(rng.integers(2, 7)))
                x, shape = affine_chain(b, x, shape, int(rng.integers(0, 2)), outputs)
            else:
                x, shape = affine_chain(b, x, shape, int(rng.choice([1, 1, 2, 3])), outputs)
        r = rng.random()
        if r < 0.12:
            # A fork: two convolutions read the same value (sharing the weight half the time).
            first = conv(b, x, shape)
            if first is None:
                return None
            y1, s1, (w_name, drawn) = first
            shared = rng.random() < 0.5
            b.desc.append("fork" + (" (shared weight)" if shared else ""))
            if shared:
                other = conv_attributes(rng, shape, weight_shape=drawn[1])
                second = conv(b, x, shape, weight=w_name, attributes=other if other is not None and rng.random() < 0.6 else drawn)
            else:
                second = conv(b, x, shape)
            if second is None:
                return None
            y2, s2, _ = second
            if s1 == s2 and rng.random() < 0.5:
                x, shape = b.node("Add", [y1, y2]), s1
                b.desc.append("Add(fork outputs)")
            else:
                outputs.append((y1, s1))
                x, shape = y2, s2
        else:
            made = conv(b, x, shape)
            if made is None:
                return None
            x, shape, _ = made
        tap(b, x, shape, outputs, 0.05)
        if rng.random() < 0.5:
            x, shape = affine_chain(b, x, shape, int(rng.choice([1, 1, 2, 3])), outputs)
        if shape == block_shape and rng.random() < 0.5:
            # A residual connection: the block's input has a second reader.
            x = b.node("Add", [block_input, x])
            b.desc.append("Add(residual)")
        r = rng.random()
        if r < 0.4:
            x = b.node("Relu", [x])
            b.desc.append("Relu")
        elif r < 0.52:
            x = hard_swish(b, x)
    if rng.random() < 0.15:
        x = b.node("Flatten", [x], axis=1)
        shape = [shape[0], int(np.prod(shape[1:]))]
        b.desc.append("Flatten")
        x, shape, _ = gemm(b, x, shape)
    outputs.append((x, shape))
    return inputs, outputs


# ----------------------------------------------------------------------------------------------
# Gemm and MatMul

def gemm(b, x, shape):
    """Gemm of x ([M, K], or [K, M] read with transA) by a constant B, with optional C."""
    rng = b.rng
    trans_a = shape is None and rng.random() < 0.3
    if shape is None:
        m, k = int(rng.integers(1, 7)), int(rng.integers(2, 20))
        shape = [k, m] if trans_a else [m, k]
    m, k = (shape[1], shape[0]) if trans_a else shape
    n = int(rng.integers(1, 20))
    trans_b = rng.random() < 0.5
    weight = rnd(rng, *( [n, k] if trans_b else [k, n])) / np.sqrt(k)
    w_name, storage = b.constant(weight, "G")
    attrs = {}
    if trans_a:
        attrs["transA"] = 1
    if trans_b or rng.random() < 0.2:
        attrs["transB"] = int(trans_b)
    if rng.random() < 0.4:
        attrs["alpha"] = float(rng.choice([0.5, 1.5, -2.0, 0.25]))
    c_form = str(rng.choice(["none", "N", "1N", "MN", "scalar", "M1"]))
    inputs = [x, w_name]
    if c_form != "none":
        c_shape = {"N": [n], "1N": [1, n], "MN": [m, n], "scalar": [1], "M1": [m, 1]}[c_form]
        inputs.append(b.constant(rnd(rng, *c_shape), "C")[0])
        if rng.random() < 0.4:
            attrs["beta"] = float(rng.choice([0.5, 2.0, -1.0, 0.0]))
    out = b.node("Gemm", inputs, **attrs)
    b.desc.append(f"Gemm(B{list(weight.shape)} {storage} C={c_form} " + ",".join(f"{k}={v}" for k, v in attrs.items()) + ")")
    return out, [m, n], shape


def matmul(b, x, shape):
    """MatMul of x by a constant: x·W with W [K, N], or (sometimes) W·x with W [M, K]."""
    rng = b.rng
    if rng.random() < 0.15 and len(shape) >= 2:
        k = shape[-2]
        m = int(rng.integers(1, 12))
        w_name, storage = b.constant(rnd(rng, m, k) / np.sqrt(k), "M")
        b.desc.append(f"MatMul(W[{m},{k}] {storage}, x)")
        return b.node("MatMul", [w_name, x]), shape[:-2] + [m, shape[-1]]
    k, n = shape[-1], int(rng.integers(1, 20))
    w_name, storage = b.constant(rnd(rng, k, n) / np.sqrt(k), "M")
    b.desc.append(f"MatMul(x, W[{k},{n}] {storage})")
    return b.node("MatMul", [x, w_name]), shape[:-1] + [n]


def linear_stack(b):
    rng = b.rng
    if rng.random() < 0.45:
        out, shape, x_shape = gemm(b, "x", None)
        batch_axis = None if any(a.name == "transA" for a in b.nodes[-1].attribute) else 0   # [K, M] has no batch axis
    else:
        rank = int(rng.choice([1, 2, 2, 3, 4]))
        batch = [int(rng.integers(1, 4)) for _ in range(rank - 2)]
        rows = [int(rng.integers(1, 8))] if rank >= 2 else []
        x_shape = batch + rows + [int(rng.integers(1, 20))]
        batch_axis = 0 if rank >= 2 else None
        out, shape = matmul(b, "x", x_shape)
    b.desc.insert(0, f"x{x_shape}")
    if rng.random() < 0.3:
        c, _ = b.constant(rnd(rng, shape[-1]), "a")
        out = b.node("Add", [out, c])
        b.desc.append(f"Add(c[{shape[-1]}])")
    if rng.random() < 0.4:
        out = b.node("Relu", [out])
        b.desc.append("Relu")
        if rng.random() < 0.6:
            out, shape = matmul(b, out, shape) if len(shape) != 2 or rng.random() < 0.5 else gemm(b, out, shape)[:2]
    return [("x", x_shape, batch_axis)], [(out, shape)]


# ----------------------------------------------------------------------------------------------

def generate(rng):
    """A random model and its description, or None (then another is drawn)."""
    opset = 17 if rng.random() < 0.8 else int(rng.choice([11, 13]))
    b = Builder(rng, opset)
    made = conv_stack(b) if rng.random() < 0.7 else linear_stack(b)
    if made is None:
        return None
    inputs, outputs = made
    # Sometimes the batch axis (the first axis, when it is one) is dynamic: "N".
    dynamic = rng.random() < 0.1
    declared = [[("N" if dynamic and k == axis else d) for k, d in enumerate(shape)] for _, shape, axis in inputs]
    if dynamic and any("N" in d for d in declared):
        b.desc.append("[dynamic batch N]")
    seen, outs = set(), []
    for name, _ in outputs:
        if name not in seen:
            seen.add(name)
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    graph = helper.make_graph(b.nodes, "property",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for (n, _, _), d in zip(inputs, declared)], outs,
                              initializer=b.inits)
    model = finished(graph, opset)
    return model, " → ".join(b.desc) + f" (opset {opset})", {n: shape for n, shape, _ in inputs}


def session(model_or_path):
    return tdtools_session(model_or_path, log_level=4)   # the failures are reported here, not logged


def feeds_for(shapes, rng):
    return {name: rng.standard_normal(shape).astype(F32) for name, shape in shapes.items()}


def valid_case(rng):
    """Draws graphs until one is valid: (model, description, feeds, reference outputs, draws)."""
    for draws in range(1, 50):
        try:
            made = generate(rng)
            if made is None:
                continue
            model, desc, shapes = made
            onnx.checker.check_model(model, full_check=True)
            feeds = feeds_for(shapes, rng)
            reference = session(model).run(None, feeds)
            if all(np.isfinite(r).all() and r.size > 0 for r in reference):
                return model, desc, feeds, reference, draws
        except Exception:
            continue
    raise RuntimeError("no valid graph in 50 draws")


def run_tool(tool, args):
    done = subprocess.run([tool] + args, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def check_output(tool_args, tool, out, model, feeds, reference, kind, stats):
    """None when the tool's output is right, else (failure class, detail). Counts the rewrites in `stats`."""
    rc, stdout, stderr = run_tool(tool, tool_args)
    if rc != 0:
        lines = [l for l in stderr.splitlines() if l.strip()]
        if rc == 1 and len(lines) == 1 and lines[0].startswith("tensor-compress: error: "):
            detail = lines[0][len("tensor-compress: error: "):]
            written = " (and it wrote the output)" if os.path.exists(out) else ""
            return f"{kind}: refused a valid graph{written}", detail
        return f"{kind}: exit {rc} (crash or malformed error)", stderr.strip()[-2000:]
    try:
        document = json.loads(stdout)
    except ValueError:
        return f"{kind}: --json output is not JSON", stdout[-500:]
    folds = document if kind == "simplify" else document.get("simplification")
    for key in ("foldedIntoPrecedingConvolution", "foldedIntoFollowingConvolutions", "hardSwishes"):
        if folds:
            stats[f"{kind} {key}"] += folds.get(key, 0)
    if kind != "simplify":
        stats[f"{kind} replacedLayers"] += document.get("totals", {}).get("replacedLayers", 0)
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as error:
        return f"{kind}: onnx.checker rejects the output", str(error).strip().splitlines()[0][:500]
    written = onnx.load(out)
    if kind == "simplify":
        counts = (document.get("nodesBefore"), document.get("nodesAfter"))
        if counts != (len(model.graph.node), len(written.graph.node)):
            return f"{kind}: JSON node counts wrong", f"JSON {counts}, graphs {(len(model.graph.node), len(written.graph.node))}"
    try:
        outputs = session(out).run(None, feeds)
    except Exception as error:
        return f"{kind}: onnxruntime cannot run the output", str(error).strip().splitlines()[0][:500]
    expected_names = [o.name for o in model.graph.output]
    got_names = [o.name for o in written.graph.output]
    if expected_names != got_names:
        return f"{kind}: graph outputs renamed", f"{expected_names} → {got_names}"
    worst = 0.0
    for name, a, c in zip(expected_names, reference, outputs):
        if a.shape != c.shape:
            return f"{kind}: output shape differs", f"{name}: {a.shape} → {c.shape}"
        if not np.isfinite(c).all():
            return f"{kind}: output not finite", name
        worst = max(worst, float(np.abs(a - c).max() / max(np.abs(a).max(), 1e-30)))
    if worst > TOLERANCE:
        return f"{kind}: outputs differ", f"max |a−b|/max|a| = {worst:.2e}"
    return None


def check_case(tool, work, index, seed, keep, stats):
    rng = np.random.default_rng([seed, index])
    model, desc, feeds, reference, draws = valid_case(rng)
    path = os.path.join(work, f"g{index}.onnx")
    onnx.save_model(model, path)
    # --allow-no-change: a graph whose layers are all below --min-parameters must come back unchanged.
    full = ["--rank-selection", "energy:1", "--allow-growth", "--allow-no-change", "--jobs", "1", "--quiet", "--json"]
    full += ["--min-parameters", "0"] if index % 5 != 4 else []
    dynamic = [i for i in model.graph.input if any(d.dim_param for d in i.type.tensor_type.shape.dim)]
    for i in dynamic:   # compress needs the shape of an input with dynamic dimensions (documented)
        full += ["--input-shape", f"{i.name}=" + ",".join(str(d) for d in feeds[i.name].shape)]
    commands = [("simplify", ["simplify", path, "--output", os.path.join(work, f"g{index}.simplified.onnx"), "--json"]),
                ("compress", ["compress", path, "--output", os.path.join(work, f"g{index}.compressed.onnx")] + full)]
    if index % 3 == 0:
        commands.append(("compress --simplify", ["compress", path, "--output", os.path.join(work, f"g{index}.both.onnx"), "--simplify"] + full))
    failures = []
    for kind, args in commands:
        out = args[args.index("--output") + 1]
        try:
            result = check_output(args, tool, out, model, feeds, reference, kind, stats)
        except subprocess.TimeoutExpired:
            result = (f"{kind}: timed out", "")
        except Exception as error:   # e.g. an output onnx cannot parse
            result = (f"{kind}: output unreadable", f"{type(error).__name__}: {str(error).strip()[:300]}")
        if result is not None:
            failures.append((kind, args, result))
            if keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copy(path, os.path.join(keep, f"g{index}.onnx"))
                if os.path.exists(out):
                    shutil.copy(out, os.path.join(keep, os.path.basename(out)))
    for _, args in commands:
        out = args[args.index("--output") + 1]
        if os.path.exists(out):
            os.remove(out)
    if not failures:
        os.remove(path)
    return desc, draws, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tool")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="directory for the failing graphs and the tool's outputs")
    parser.add_argument("--only", type=int, nargs="+", help="run only these graph indices")
    parser.add_argument("--verbose", action="store_true", help="print every graph")
    args = parser.parse_args()
    tool = os.path.abspath(args.tool)
    indices = args.only if args.only else range(args.count)
    start = time.time()
    passed, failed, redraws = 0, 0, 0
    classes, stats = Counter(), Counter()
    with tempfile.TemporaryDirectory(prefix="onnx-property.") as work:
        for index in indices:
            desc, draws, failures = check_case(tool, work, index, args.seed, args.keep, stats)
            redraws += draws - 1
            if failures:
                failed += 1
                print(f"FAIL graph {index} (--seed {args.seed} --only {index}): {desc}")
                for kind, command, (cls, detail) in failures:
                    classes[cls] += 1
                    print(f"    {cls}: {detail}")
                    shown = " ".join(command).replace(work + os.sep, os.path.abspath(args.keep) + os.sep if args.keep else "")
                    print(f"    command: {tool} {shown}" + ("" if args.keep else "   (rerun with --keep DIR to keep the files)"))
            else:
                passed += 1
                if args.verbose:
                    print(f"ok   graph {index}: {desc}")
    print("rewrites seen: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())))
    if classes:
        print("failure classes:")
        for cls, n in classes.most_common():
            print(f"    {n:5d}  {cls}")
    print(f"onnx property: {passed} passed, {failed} failed (seed {args.seed}, {redraws} invalid graphs redrawn, "
          f"{time.time() - start:.0f} s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
