"""ONNX conformance of `tensor-compress compress`: small graphs made with the onnx helper for every
Conv attribute combination, Gemm and MatMul, each compressed at full rank and run beside the
original in onnxruntime.

    PYTHONPATH=Python python Tests/ONNXConformance/onnx_conformance.py TOOL WORKDIR

For every case: the graph is written (weights as initializers, as Constant nodes, behind
Identity, or in external data), compressed with the case's options, checked with
onnx.checker.check_model(full_check=True), and both models are run on the same random input.
The case passes when every output matches within 1e-4 (relative to the largest magnitude) and
the expected nodes were replaced (or, for nodes that must be left alone, kept bit-identical).
A read-then-write with nothing to compress must give bit-identical outputs. The simplify cases
run `tensor-compress simplify` (and `compress --simplify`) on graphs with convolution epilogues,
affine blocks and hard-swish patterns, and check the rewrite counts and the outputs (within 1e-5
relative; bit-identical when nothing may be rewritten). The calibration cases run tdtools.calibrate
and compare the statistics with the inputs of each node computed by hand (within 1e-6): nodes
in Loop and Scan bodies, in a Loop in a Loop, in an If that switches between feeds (alone or
holding a Loop), in an If inside a Loop's body, and in an If and a Loop inside a Scan's body (the
Scan run as a Loop for calibration; one reads a scan input in reverse and stacks a scan output in
reverse on axis 1); the calibration run's model must give the model's own outputs bit for bit,
and compress must then use the statistics without a warning. An If inside the body of a Scan that calibration does not
rewrite (a Scan-8; a scan output on axis 1 of undeclared rank) must leave the rest calibrated.
Exit status 1 when any case fails.
"""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tdtools import statistics
from tdtools.session import session

OPSET = 17
rng = np.random.default_rng(7)


def low_tucker(t, s, kh, kw, r_out, r_in):
    core = rng.standard_normal((r_out, r_in, kh, kw))
    u_t, u_s = rng.standard_normal((t, r_out)), rng.standard_normal((s, r_in))
    return np.einsum("abpq,ta,sb->tspq", core, u_t, u_s).astype(np.float32)


def low_cp(t, s, kh, kw, rank):
    a, b, c, d = (rng.standard_normal((n, rank)) for n in (t, s, kh, kw))
    return np.einsum("tr,sr,pr,qr->tspq", a, b, c, d).astype(np.float32)


def low_cp_3d(t, s, kd, kh, kw, rank):
    a, b, c, d, e = (rng.standard_normal((n, rank)) for n in (t, s, kd, kh, kw))
    return np.einsum("tr,sr,ir,pr,qr->tsipq", a, b, c, d, e).astype(np.float32)


def finished(graph, opset=OPSET):
    """The model of `graph` with its output's shape filled in by onnx's shape inference."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="conformance")
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for output in model.graph.output:
        known = [v for v in list(inferred.graph.value_info) + list(inferred.graph.output) if v.name == output.name and v.type.tensor_type.HasField("shape")]
        if known:
            output.type.CopyFrom(known[0].type)
    return model


def conv_graph(name, x_shape, weight, bias=None, storage="initializer", **attrs):
    """One Conv (then Relu, so that the conv output is internal) on input x."""
    nodes, inits = [], []
    w_name = "W"
    if storage == "constant":
        nodes.append(helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(weight, "W_value")))
    elif storage == "identity":
        inits.append(numpy_helper.from_array(weight, "W_raw"))
        nodes.append(helper.make_node("Identity", ["W_raw"], ["W"]))
    else:
        inits.append(numpy_helper.from_array(weight, "W"))
    inputs = ["x", w_name]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias, "B"))
        inputs.append("B")
    nodes.append(helper.make_node("Conv", inputs, ["conv_out"], name="conv", **attrs))
    nodes.append(helper.make_node("Relu", ["conv_out"], ["y"], name="relu"))
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph)


def convt_graph(x_shape, weight, bias=None, **attrs):
    """One ConvTranspose (then Relu) on input x."""
    inits = [numpy_helper.from_array(weight, "W")] + ([numpy_helper.from_array(bias, "B")] if bias is not None else [])
    nodes = [helper.make_node("ConvTranspose", ["x", "W"] + (["B"] if bias is not None else []), ["t"], name="convt", **attrs),
             helper.make_node("Relu", ["t"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "convt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph)


def linear_graph(name, op, x_shape, weight, c=None, **attrs):
    inits = [numpy_helper.from_array(weight, "B")]
    inputs = ["x", "B"]
    if c is not None:
        inits.append(numpy_helper.from_array(c, "C"))
        inputs.append("C")
    nodes = [helper.make_node(op, inputs, ["y"], name=op.lower(), **attrs)]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph)


def recurrent_graph(op, x_shape, hidden, direction="forward", bias=True, layout=0, **attrs):
    """One LSTM, GRU or RNN node on input x (all its outputs are the graph's), with a constant
    initial state; its input projection W·x is what compress factors."""
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    directions = 2 if direction == "bidirectional" else 1
    features = x_shape[-1]
    batch = x_shape[1 - layout]
    inits = [numpy_helper.from_array(rng.standard_normal((directions, gates * hidden, features)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal((directions, gates * hidden, hidden)).astype(np.float32) * 0.5, "R")]
    inputs = ["x", "W", "R", "", "", ""]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal((directions, 2 * gates * hidden)).astype(np.float32), "B"))
        inputs[3] = "B"
    state = (batch, directions, hidden) if layout else (directions, batch, hidden)
    inits.append(numpy_helper.from_array(rng.standard_normal(state).astype(np.float32), "h0"))
    inputs[5] = "h0"
    outputs = ["y", "y_h"]
    if op == "LSTM":
        inits.append(numpy_helper.from_array(rng.standard_normal(state).astype(np.float32), "c0"))
        inputs.append("c0")
        outputs.append("y_c")
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, inputs, outputs, name=op.lower(), hidden_size=hidden, direction=direction, **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializer=inits)
    return finished(graph)


def shared_weight_graph():
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["a"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "W"], ["y"], name="second", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(w, "W")])
    return finished(graph)


def cases():
    full = ["--rank-selection", "energy:1", "--allow-growth", "--min-parameters", "0"]
    t2 = ["--conv", "tucker2"] + full
    b = lambda n: rng.standard_normal(n).astype(np.float32)
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    yield "tucker2-explicit-pads", conv_graph("c", [2, 6, 9, 11], k(8, 6, 3, 3), b(8), pads=[1, 1, 1, 1]), t2, 1
    yield "tucker2-asymmetric-pads", conv_graph("c", [1, 6, 9, 11], k(8, 6, 3, 3), None, pads=[0, 1, 2, 1]), t2, 1
    yield "tucker2-stride-2-1", conv_graph("c", [1, 6, 9, 11], k(8, 6, 3, 3), b(8), pads=[1, 1, 1, 1], strides=[2, 1]), t2, 1
    yield "tucker2-dilation-2", conv_graph("c", [1, 6, 12, 12], k(8, 6, 3, 3), b(8), pads=[2, 2, 2, 2], dilations=[2, 2]), t2, 1
    yield "tucker2-groups-2", conv_graph("c", [1, 8, 9, 9], k(8, 4, 3, 3), b(8), pads=[1, 1, 1, 1], group=2), t2, 1
    yield "tucker2-groups-4", conv_graph("c", [1, 8, 9, 9], k(12, 2, 3, 3), None, pads=[1, 1, 1, 1], group=4), t2, 1
    yield "tucker2-same-upper", conv_graph("c", [1, 6, 9, 10], k(8, 6, 3, 3), b(8), auto_pad="SAME_UPPER"), t2, 1
    yield "tucker2-same-upper-stride-2", conv_graph("c", [1, 6, 9, 10], k(8, 6, 4, 4), b(8), auto_pad="SAME_UPPER", strides=[2, 2]), t2, 1
    yield "tucker2-same-lower-stride-2", conv_graph("c", [1, 6, 11, 10], k(8, 6, 3, 2), b(8), auto_pad="SAME_LOWER", strides=[2, 2]), t2, 1
    yield "tucker2-same-lower-even", conv_graph("c", [1, 6, 9, 10], k(8, 6, 2, 4), None, auto_pad="SAME_LOWER"), t2, 1
    yield "tucker2-valid", conv_graph("c", [1, 6, 9, 10], k(8, 6, 3, 3), b(8), auto_pad="VALID"), t2, 1
    yield "tucker2-kernel-1x3", conv_graph("c", [1, 6, 9, 10], k(8, 6, 1, 3), b(8), pads=[0, 1, 0, 1]), t2, 1
    yield "tucker2-constant-weight", conv_graph("c", [1, 6, 9, 9], k(8, 6, 3, 3), b(8), storage="constant", pads=[1, 1, 1, 1]), t2, 1
    yield "tucker2-identity-weight", conv_graph("c", [1, 6, 9, 9], k(8, 6, 3, 3), b(8), storage="identity", pads=[1, 1, 1, 1]), t2, 1
    yield "tucker2-external-data", conv_graph("c", [1, 6, 9, 9], k(8, 6, 3, 3), b(8), pads=[1, 1, 1, 1]), t2 + ["@external"], 1
    cp = ["--conv", "cp", "--rank", "3", "--max-iterations", "2000", "--min-parameters", "0", "--allow-growth"]
    yield "cp-stride-2-1-pads", conv_graph("c", [1, 6, 11, 9], low_cp(8, 6, 3, 3, 3), b(8), pads=[1, 0, 2, 1], strides=[2, 1]), cp, 1
    yield "cp-dilation-2", conv_graph("c", [1, 6, 12, 12], low_cp(8, 6, 3, 3, 3), None, pads=[2, 2, 2, 2], dilations=[2, 2]), cp, 1
    yield "cp-same-upper-stride-2", conv_graph("c", [1, 6, 9, 10], low_cp(8, 6, 3, 3, 3), b(8), auto_pad="SAME_UPPER", strides=[2, 2]), cp, 1
    grouped = np.concatenate([low_cp(4, 4, 3, 3, 3), low_cp(4, 4, 3, 3, 3)])
    yield "cp-groups-2", conv_graph("c", [1, 8, 9, 9], grouped, b(8), pads=[1, 1, 1, 1], group=2), cp, 1
    yield "svd-pointwise", conv_graph("c", [2, 16, 7, 7], k(24, 16, 1, 1), b(24)), t2, 1
    yield "svd-pointwise-stride-2-pads", conv_graph("c", [1, 16, 7, 8], k(24, 16, 1, 1), b(24), strides=[2, 1], pads=[1, 0, 0, 1]), t2, 1
    yield "svd-pointwise-groups-4", conv_graph("c", [1, 16, 7, 7], k(24, 4, 1, 1), None, group=4), ["--conv", "cp"] + full, 1
    # Recurrent layers: the input projection W·x of every step as a MatMul before the node, which
    # reads the rank-k projection with W = V; R, B, the states and the attributes stay.
    yield "lstm-bidirectional", recurrent_graph("LSTM", [5, 2, 6], 4, direction="bidirectional"), full, 1
    yield "lstm-no-bias", recurrent_graph("LSTM", [5, 2, 6], 3, bias=False), full, 1   # (onnxruntime runs layout 0 only)
    yield "lstm-reverse-input-forget", recurrent_graph("LSTM", [4, 1, 5], 3, direction="reverse", input_forget=1), full, 1
    yield "gru-linear-before-reset", recurrent_graph("GRU", [5, 2, 7], 4, direction="bidirectional", linear_before_reset=1), full, 1
    yield "rnn-relu", recurrent_graph("RNN", [6, 3, 5], 4, activations=["Relu"]), full, 1
    tt = ["--conv", "tt", "--linear", "tt", "--allow-growth", "--min-parameters", "0"]
    yield "tt-conv", conv_graph("c", [1, 8, 7, 7], k(12, 8, 3, 3), b(12), pads=[1, 1, 1, 1], strides=[2, 1]), tt, 1
    yield "tt-conv-no-bias", conv_graph("c", [2, 8, 6, 6], k(8, 8, 3, 3), None, pads=[0, 1, 1, 0]), tt, 1
    # 1-D convolutions: decomposed as 2-D of height 1, written back as 1-D nodes.
    yield "conv1d-tucker2-pads-stride-dilation", conv_graph("c", [2, 6, 23], k(8, 6, 3), b(8), pads=[2, 1], strides=[2], dilations=[2]), t2, 1
    yield "conv1d-tucker2-groups-2", conv_graph("c", [1, 8, 17], k(12, 4, 5), b(12), pads=[2, 2], group=2), t2, 1
    yield "conv1d-tucker2-same-upper-stride-2", conv_graph("c", [1, 6, 18], k(8, 6, 4), b(8), auto_pad="SAME_UPPER", strides=[2]), t2, 1
    yield "conv1d-tucker2-valid", conv_graph("c", [1, 6, 15], k(8, 6, 3), None, auto_pad="VALID"), t2, 1
    yield "conv1d-cp", conv_graph("c", [1, 6, 19], np.einsum("tr,sr,qr->tsq", k(8, 3), k(6, 3), k(3, 3)).astype(np.float32), b(8),
                                  pads=[1, 1], strides=[2]), cp, 1
    yield "conv1d-svd-pointwise", conv_graph("c", [2, 16, 9], k(24, 16, 1), b(24)), t2, 1
    # Stride-1 ConvTranspose: compressed as the equivalent convolution (kernel flipped, channels transposed).
    yield "convtranspose-pads-1", convt_graph([1, 6, 9, 9], k(6, 8, 3, 3), b(8), pads=[1, 1, 1, 1]), t2, 1
    yield "convtranspose-no-pads-dilation-2", convt_graph([2, 6, 7, 8], k(6, 8, 3, 3), None, dilations=[2, 2], pads=[0, 1, 2, 0]), t2, 1
    yield "convtranspose-groups-2", convt_graph([1, 8, 9, 9], k(8, 6, 3, 3), b(12), pads=[1, 1, 1, 1], group=2), t2, 1
    yield "convtranspose-pointwise-svd", convt_graph([1, 16, 7, 7], k(16, 24, 1, 1), b(24)), t2, 1
    # Strided ConvTranspose: a ConvTranspose core (every attribute kept) between pointwise convolutions.
    yield "convtranspose-stride-2-output-padding", convt_graph([1, 6, 5, 5], k(6, 8, 3, 3), b(8), strides=[2, 2], pads=[1, 1, 1, 1],
                                                               output_padding=[1, 1]), t2, 1
    yield "convtranspose-stride-2-1-dilation-groups", convt_graph([2, 8, 5, 6], k(8, 6, 3, 2), b(12), strides=[2, 1], dilations=[1, 2],
                                                                  pads=[0, 1, 2, 0], group=2), t2, 1
    yield "convtranspose-stride-4-kernel-4-valid", convt_graph([1, 6, 4, 4], k(6, 8, 4, 4), None, strides=[4, 4], auto_pad="VALID"), t2, 1
    yield "convtranspose-stride-2-pointwise-svd", convt_graph([1, 16, 5, 5], k(16, 24, 1, 1), b(24), strides=[2, 2]), t2, 1
    yield "convtranspose-same-upper-kept", convt_graph([1, 6, 5, 5], k(6, 8, 3, 3), b(8), strides=[2, 2], auto_pad="SAME_UPPER"), t2, 0
    # 3-D convolutions: Tucker-2 through a 2-D stand-in, written back as 3-D nodes.
    yield "conv3d-tucker2-pads-stride-dilation", conv_graph("c", [2, 6, 7, 8, 9], k(8, 6, 3, 3, 3), b(8), pads=[1, 0, 1, 1, 2, 0],
                                                             strides=[2, 1, 2], dilations=[1, 2, 1]), t2, 1
    yield "conv3d-tucker2-groups-2-same-upper", conv_graph("c", [1, 8, 6, 7, 6], k(12, 4, 3, 1, 3), None, auto_pad="SAME_UPPER",
                                                           strides=[2, 2, 1], group=2), t2, 1
    yield "conv3d-svd-pointwise-stride-2", conv_graph("c", [1, 16, 5, 6, 7], k(24, 16, 1, 1, 1), b(24), strides=[2, 2, 2]), t2, 1
    # 3-D CP: pointwise, one depthwise Conv per axis (its stride, pads, dilation), pointwise.
    yield "conv3d-cp-pads-stride-dilation", conv_graph("c", [2, 6, 7, 8, 9], low_cp_3d(8, 6, 3, 3, 3, 3), b(8), pads=[1, 0, 1, 1, 2, 0],
                                                       strides=[2, 1, 2], dilations=[1, 2, 1]), cp, 1
    grouped3d = np.concatenate([low_cp_3d(4, 4, 3, 2, 3, 3), low_cp_3d(4, 4, 3, 2, 3, 3)])
    yield "conv3d-cp-groups-2-same-upper", conv_graph("c", [1, 8, 6, 7, 6], grouped3d, None, auto_pad="SAME_UPPER", strides=[2, 2, 1],
                                                      group=2), cp, 1
    yield "conv3d-cp-kernel-3x1x1", conv_graph("c", [1, 6, 6, 5, 5], low_cp_3d(8, 6, 3, 1, 1, 3), b(8), pads=[1, 0, 0, 1, 0, 0]), cp, 1
    yield "conv3d-cp-kernel-1x3x3-depth-stride-2", conv_graph("c", [1, 6, 7, 6, 6], low_cp_3d(8, 6, 1, 3, 3, 3), b(8), pads=[0, 1, 1, 0, 1, 1],
                                                              strides=[2, 1, 1]), cp, 1
    yield "conv3d-tt-kept", conv_graph("c", [1, 6, 5, 5, 5], k(8, 6, 3, 3, 3), b(8), pads=[1, 1, 1, 1, 1, 1]), tt, 0
    yield "depthwise-kept", conv_graph("c", [1, 8, 9, 9], k(8, 1, 3, 3), b(8), pads=[1, 1, 1, 1], group=8), t2, 0
    yield "shared-weight-kept", shared_weight_graph(), t2, 0
    lin = ["--linear", "svd"] + full
    yield "gemm-transB-1", linear_graph("g", "Gemm", [5, 12], k(10, 12), b(10), transB=1), lin, 1
    yield "gemm-transB-0-alpha-beta", linear_graph("g", "Gemm", [5, 12], k(12, 10), k(5, 10), alpha=0.5, beta=2.0), lin, 1
    yield "gemm-no-c", linear_graph("g", "Gemm", [5, 12], k(10, 12), None, transB=1, alpha=1.5), lin, 1
    yield "matmul-3d", linear_graph("m", "MatMul", [2, 7, 12], k(12, 10)), lin, 1
    yield "tt-matmul-3d", linear_graph("m", "MatMul", [2, 7, 12], k(12, 18)), tt, 1
    yield "tt-gemm-beta", linear_graph("g", "Gemm", [5, 12], k(18, 12), b(18), transB=1, beta=0.5), tt, 1
    yield "round-trip-nothing-compressed", conv_graph("c", [1, 6, 9, 9], k(8, 6, 3, 3), b(8), pads=[1, 1, 1, 1]), ["--conv", "none", "--linear", "none"], 0


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array, dtype=np.float32), name + "_value"))


def simplify_graph(opset=OPSET):
    """Conv → (scalar·, +per-channel) → hard-swish → (·, +) → 1×1 Conv → (per-channel ·, +) → Relu → (·, +) →
    padded depthwise Conv: every rewrite of `simplify` once, with the constant first in one Mul."""
    c = 8
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    inits = [numpy_helper.from_array(k(c, 4, 3, 3), "W1"), numpy_helper.from_array(k(c), "B1"),
             numpy_helper.from_array(k(c, c, 1, 1), "W2"), numpy_helper.from_array(k(c, 1, 3, 3), "W3"),
             numpy_helper.from_array(k(c), "B3")]
    n = helper.make_node
    clip = [n("Clip", ["h0", "zero", "six"], ["h1"])] if opset >= 11 else [n("Clip", ["h0"], ["h1"], min=0.0, max=6.0)]
    nodes = [const("s1", [1.7]), const("t1", k(1, c, 1, 1)), const("three", 3.0), const("zero", 0.0), const("six", 6.0),
             const("s2", [0.8]), const("t2", [-0.3]), const("s3", k(c, 1, 1)), const("t3", k(1, c, 1, 1)),
             const("s4", [1.25]), const("t4", [0.4]),
             n("Conv", ["x", "W1", "B1"], ["a0"], name="conv1", pads=[1, 1, 1, 1]),
             n("Mul", ["s1", "a0"], ["a1"]), n("Add", ["a1", "t1"], ["a2"]),
             n("Add", ["a2", "three"], ["h0"])] + clip + [
             n("Mul", ["a2", "h1"], ["h2"]), n("Div", ["h2", "six"], ["h3"]),
             n("Mul", ["h3", "s2"], ["b1"]), n("Add", ["b1", "t2"], ["b2"]),
             n("Conv", ["b2", "W2"], ["c0"], name="conv2"),
             n("Mul", ["c0", "s3"], ["c1"]), n("Add", ["c1", "t3"], ["c2"]), n("Relu", ["c2"], ["c3"]),
             n("Mul", ["c3", "s4"], ["d1"]), n("Add", ["d1", "t4"], ["d2"]),
             n("Conv", ["d2", "W3", "B3"], ["y"], name="conv3", pads=[1, 1, 1, 1], group=c)]
    graph = helper.make_graph(nodes, "simplify", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph, opset)


def blocked_graph():
    """Nothing may be rewritten: the conv output has two readers, an affine chain feeds a Relu, an
    intermediate value is a graph output."""
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n = helper.make_node
    nodes = [const("s", [2.0]), const("t", [0.5]),
             n("Conv", ["x", "W"], ["a"], name="conv", pads=[1, 1, 1, 1]),
             n("Mul", ["a", "s"], ["b"]), n("Relu", ["a"], ["r"]), n("Add", ["b", "r"], ["c"]),
             n("Add", ["c", "t"], ["d"]), n("Relu", ["d"], ["e"]),
             n("Mul", ["e", "s"], ["y2"]), n("Conv", ["y2", "W2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "blocked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(k(4, 4, 3, 3), "W"), numpy_helper.from_array(k(4, 4, 1, 1), "W2")])
    return finished(graph)


def batchnorm_graph():
    """Conv → BN → Relu → BN → 1×1 Conv → BN → Relu → BN → padded Conv, the BN parameters as Constant
    nodes: three BN fold (two into the convolution before, one into the one after); the last stays,
    since before a padded convolution only a scale folds and one BN alone is no gain."""
    c = 6
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n = helper.make_node
    nodes, inits = [], [numpy_helper.from_array(k(c, 3, 3, 3), "W1"), numpy_helper.from_array(k(c), "B1"),
                         numpy_helper.from_array(k(c, c, 1, 1), "W2"), numpy_helper.from_array(k(c, c, 3, 3), "W3")]
    for i in range(1, 5):
        nodes += [const(f"g{i}", k(c)), const(f"b{i}", k(c)), const(f"m{i}", k(c)), const(f"v{i}", np.abs(k(c)) + 0.5)]
    bn = lambda i, x, y: n("BatchNormalization", [x, f"g{i}", f"b{i}", f"m{i}", f"v{i}"], [y], epsilon=1e-3)
    nodes += [n("Conv", ["x", "W1", "B1"], ["a"], pads=[1, 1, 1, 1]), bn(1, "a", "a1"), n("Relu", ["a1"], ["a2"]), bn(2, "a2", "a3"),
              n("Conv", ["a3", "W2"], ["c"]), bn(3, "c", "c1"), n("Relu", ["c1"], ["c2"]), bn(4, "c2", "c3"),
              n("Conv", ["c3", "W3"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "batchnorm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph)


def gemm_batchnorm_graph(trans_b):
    """Flatten → Gemm (α 0.5, β 2, a per-column C) → BatchNormalization → Mul by a [1, M] constant
    → Relu → Gemm without C → BatchNormalization: four nodes fold into the two Gemms."""
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n = helper.make_node
    inits = [numpy_helper.from_array(k(16, 48) if trans_b else k(48, 16), "B1"), numpy_helper.from_array(k(16), "C1"),
             numpy_helper.from_array(k(1, 16), "s"), numpy_helper.from_array(k(16, 8), "B2")]
    for i, c in ((1, 16), (2, 8)):
        inits += [numpy_helper.from_array(k(c), f"g{i}"), numpy_helper.from_array(k(c), f"b{i}"), numpy_helper.from_array(k(c), f"m{i}"),
                  numpy_helper.from_array(np.abs(k(c)) + 0.5, f"v{i}")]
    bn = lambda i, x, y: n("BatchNormalization", [x, f"g{i}", f"b{i}", f"m{i}", f"v{i}"], [y], epsilon=1e-3)
    nodes = [n("Flatten", ["x"], ["f"]), n("Gemm", ["f", "B1", "C1"], ["a"], alpha=0.5, beta=2.0, transB=int(trans_b)), bn(1, "a", "a1"),
             n("Mul", ["a1", "s"], ["a2"]), n("Relu", ["a2"], ["a3"]), n("Gemm", ["a3", "B2"], ["c"]), bn(2, "c", "y")]
    graph = helper.make_graph(nodes, "gemm_batchnorm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return finished(graph)


def simplify_cases():
    """(name, model, command, expected counts, exact): expected = (after conv, before convs, hard-swishes, after Gemm)."""
    everything = (4, 3, 1, 0)
    yield "simplify-opset-17", simplify_graph(), ["simplify"], everything, False
    yield "simplify-opset-10-clip-attributes", simplify_graph(opset=10), ["simplify"], everything, False
    yield "simplify-blocked", blocked_graph(), ["simplify"], (0, 0, 0, 0), True
    yield "simplify-batchnorm", batchnorm_graph(), ["simplify"], (2, 1, 0, 0), False
    yield "simplify-gemm-batchnorm", gemm_batchnorm_graph(False), ["simplify"], (0, 0, 0, 3), False
    yield "simplify-gemm-transb-batchnorm", gemm_batchnorm_graph(True), ["simplify"], (0, 0, 0, 3), False
    full = ["compress", "--simplify", "--conv", "tucker2", "--rank-selection", "energy:1", "--allow-growth", "--min-parameters", "0"]
    yield "compress-simplify-full-rank", simplify_graph(), full, None, False


def run_simplify(tool, work, name, model, command, expected, exact):
    path, out = os.path.join(work, name + ".onnx"), os.path.join(work, name + ".out.onnx")
    onnx.save_model(model, path)
    done = subprocess.run([tool, command[0], path, "--output", out, "--json"] + (["--quiet", "--allow-no-change"] if command[0] == "compress" else []) + command[1:],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"{command[0]} failed: {done.stderr.strip()}"
    document = json.loads(done.stdout)
    r = document if command[0] == "simplify" else document["simplification"]
    counts = (r["foldedIntoPrecedingConvolution"], r["foldedIntoFollowingConvolutions"], r["hardSwishes"], r["foldedIntoPrecedingGemm"])
    if expected is not None and counts != expected:
        return f"rewrites {counts}, expected {expected}"
    onnx.checker.check_model(out, full_check=True)
    # Every Constant node becomes an initializer (onnxruntime's quantizer reads weights from initializers only).
    if any(node.op_type == "Constant" for node in onnx.load(out).graph.node):
        return "Constant nodes left in the simplified graph"
    a, b = session(path), session(out)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    x = rng.standard_normal(shape).astype(np.float32)
    worst = 0.0
    for ya, yb in zip(a.run(None, {"x": x}), b.run(None, {"x": x})):
        if ya.shape != yb.shape:
            return f"output shapes {ya.shape} and {yb.shape} differ"
        worst = max(worst, float(np.abs(ya - yb).max() / max(np.abs(ya).max(), 1e-30)))
    if exact and worst != 0.0 or worst > (1e-4 if command[0] == "compress" else 1e-5):
        return f"outputs differ: {worst:.2e}"
    return f"{counts} rewrites, nodes {r['nodesBefore']} → {r['nodesAfter']}, max |a−b|/max|a| = {worst:.2e}"


def run(tool, work, name, model, options):
    path = os.path.join(work, name + ".onnx")
    external = "@external" in options
    options = [o for o in options if o != "@external"]
    if external:
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=name + ".weights", size_threshold=0)
    else:
        onnx.save_model(model, path)
    out = os.path.join(work, name + ".compressed.onnx")
    shape = model.graph.input[0].type.tensor_type.shape
    x_shape = [d.dim_value for d in shape.dim]
    done = subprocess.run([tool, "compress", path, "--output", out, "--json", "--quiet", "--allow-no-change"] + options, capture_output=True, text=True)
    if done.returncode != 0:
        return f"compress failed: {done.stderr.strip()}", None
    report = json.loads(done.stdout)
    onnx.checker.check_model(out, full_check=True)
    a, b = session(path), session(out)
    x = rng.standard_normal(x_shape).astype(np.float32)
    error = 0.0
    for ya, yb in zip(a.run(None, {"x": x}), b.run(None, {"x": x})):   # every output (a recurrent node's states too)
        if ya.shape != yb.shape:
            return f"output shapes {ya.shape} and {yb.shape} differ", report
        error = max(error, float(np.abs(ya - yb).max() / max(np.abs(ya).max(), 1e-30)))
    return error, report


def subgraph_models():
    """An If whose branches hold convolutions (one reading the main graph's weight, one its own) and a
    Loop whose body applies a convolution three times: (name, model, feeds to try, layers to replace)."""
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n, v = helper.make_node, helper.make_tensor_value_info
    then_branch = helper.make_graph([n("Conv", ["x", "W"], ["t"], name="conv", pads=[1, 1, 1, 1])], "then", [], [v("t", TensorProto.FLOAT, [1, 8, 9, 9])])
    else_branch = helper.make_graph([n("Conv", ["x", "W_else", "B_else"], ["e0"], name="conv", pads=[2, 1, 0, 1]),
                                     n("Relu", ["e0"], ["e"])], "else", [], [v("e", TensorProto.FLOAT, [1, 8, 9, 9])],
                                    initializer=[numpy_helper.from_array(k(8, 6, 3, 3), "W_else"), numpy_helper.from_array(k(8), "B_else")])
    branches = helper.make_graph([n("If", ["cond"], ["y"], name="If_0", then_branch=then_branch, else_branch=else_branch)], "if",
                                 [v("x", TensorProto.FLOAT, [1, 6, 9, 9]), v("cond", TensorProto.BOOL, [])], [v("y", TensorProto.FLOAT, [1, 8, 9, 9])],
                                 initializer=[numpy_helper.from_array(k(8, 6, 3, 3), "W")])
    body = helper.make_graph([n("Conv", ["xc", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]), n("Tanh", ["c"], ["xo"]),
                              n("Identity", ["cond_in"], ["cond_out"])], "body",
                             [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), v("xc", TensorProto.FLOAT, [1, 6, 9, 9])],
                             [v("cond_out", TensorProto.BOOL, []), v("xo", TensorProto.FLOAT, [1, 6, 9, 9])])
    loop = helper.make_graph([n("Loop", ["M", "go", "x"], ["y"], name="Loop_0", body=body)], "loop",
                             [v("x", TensorProto.FLOAT, [1, 6, 9, 9])], [v("y", TensorProto.FLOAT, [1, 6, 9, 9])],
                             initializer=[numpy_helper.from_array(k(6, 6, 3, 3) * 0.3, "W"), numpy_helper.from_array(np.array(3, np.int64), "M"),
                                          numpy_helper.from_array(np.array(True), "go")])
    x = rng.standard_normal((1, 6, 9, 9)).astype(np.float32)
    model = lambda g: helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="conformance")
    yield "if-branches", model(branches), [{"x": x, "cond": np.array(True)}, {"x": x, "cond": np.array(False)}], 2
    yield "loop-body", model(loop), [{"x": x}], 1
    # An LSTM inside an If whose W is computed from a main-graph weight by moving data only, as
    # PyTorch exports reorder the gates (Slice → Concat → Unsqueeze): folded, compressed, and the
    # source removed once nothing reads it.
    hidden, features = 4, 6
    const = lambda name, values: n("Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.int64), name + "_value"))
    gates = [const("s0", [0]), const("e0", [hidden]), const("s1", [3 * hidden]), const("e1", [4 * hidden]),
             const("s2", [hidden]), const("e2", [3 * hidden]), const("ax", [0]), const("unsq", [0])]
    folded = gates + [n("Slice", ["W_src", "s0", "e0", "ax"], ["g0"]), n("Slice", ["W_src", "s1", "e1", "ax"], ["g1"]),
                      n("Slice", ["W_src", "s2", "e2", "ax"], ["g2"]), n("Concat", ["g0", "g1", "g2"], ["wc"], axis=0),
                      n("Unsqueeze", ["wc", "unsq"], ["W"]),
                      n("LSTM", ["seq", "W", "R"], ["hy"], name="lstm", hidden_size=hidden)]
    then_lstm = helper.make_graph(folded, "then", [], [v("hy", TensorProto.FLOAT, [5, 1, 1, hidden])])
    else_lstm = helper.make_graph([n("Identity", ["seq_out"], ["ey"])], "else", [], [v("ey", TensorProto.FLOAT, [5, 1, 1, hidden])])
    lstm_if = helper.make_graph([n("If", ["cond"], ["y"], name="If_0", then_branch=then_lstm, else_branch=else_lstm)], "if-lstm",
                                [v("seq", TensorProto.FLOAT, [5, 1, features]), v("cond", TensorProto.BOOL, [])], [v("y", TensorProto.FLOAT, [5, 1, 1, hidden])],
                                initializer=[numpy_helper.from_array(k(4 * hidden, features), "W_src"),
                                             numpy_helper.from_array(k(1, 4 * hidden, hidden) * 0.5, "R"),
                                             numpy_helper.from_array(k(5, 1, 1, hidden), "seq_out")])
    seq = rng.standard_normal((5, 1, features)).astype(np.float32)
    yield "if-lstm-folded-weight", model(lstm_if), [{"seq": seq, "cond": np.array(True)}], 1


def run_subgraph(tool, work, name, model, feeds, replaced):
    """Compresses at full rank and compares every feed's outputs; returns an error text or the worst deviation."""
    path, out = os.path.join(work, name + ".onnx"), os.path.join(work, name + ".compressed.onnx")
    onnx.save_model(model, path)
    done = subprocess.run([tool, "compress", path, "--output", out, "--json", "--quiet", "--conv", "tucker2", "--rank-selection", "energy:1",
                           "--allow-growth", "--min-parameters", "0"], capture_output=True, text=True)
    if done.returncode != 0:
        return f"compress failed: {done.stderr.strip()}"
    count = json.loads(done.stdout)["totals"]["replacedLayers"]
    if count != replaced:
        return f"{count} layers replaced, expected {replaced}"
    onnx.checker.check_model(out, full_check=True)
    if any(t.name == "W_src" for t in onnx.load(out).graph.initializer):
        return "the folded weight's source is still in the output"
    a, b = session(path), session(out)
    worst = 0.0
    for feed in feeds:
        ya, yb = a.run(None, feed)[0], b.run(None, feed)[0]
        if ya.shape != yb.shape:
            return f"output shapes {ya.shape} and {yb.shape} differ"
        worst = max(worst, float(np.abs(ya - yb).max() / max(np.abs(ya).max(), 1e-30)))
    return worst


def calibration_models():
    """A 1-D convolution model with a scalar input and a state whose batch axis is 1, and a 2-D one
    whose batch is fixed at 1: inputs that tdtools.calibrate must follow as the model declares them."""
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n = helper.make_node
    audio = helper.make_graph(
        [n("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1]), n("Mul", ["c", "sr"], ["y"], name="scale"),
         n("MatMul", ["state", "R"], ["h"], name="recurrent")], "audio",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 16]), helper.make_tensor_value_info("sr", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None), helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(k(6, 4, 3), "W"), numpy_helper.from_array(k(8, 8), "R")])
    fixed = helper.make_graph(
        [n("Conv", ["x", "W"], ["y"], name="conv", pads=[1, 1, 1, 1])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, "width"])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(k(5, 3, 3, 3), "W")])
    return helper.make_model(audio, opset_imports=[helper.make_opsetid("", OPSET)]), helper.make_model(fixed, opset_imports=[helper.make_opsetid("", OPSET)])


def nested_if_model():
    """A Conv inside an If inside an If, each taking one branch on every input (a graph-input flag,
    then a constant): calibration inlines both levels."""
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    n, v = helper.make_node, helper.make_tensor_value_info
    shape = ["batch", 5, 8, 10]
    inner_then = helper.make_graph([n("Identity", ["x"], ["a"])], "inner_then", [], [v("a", TensorProto.FLOAT, ["batch", 3, 8, 10])])
    inner_else = helper.make_graph([n("Conv", ["x", "W"], ["b"], name="conv", pads=[1, 1, 1, 1])], "inner_else", [], [v("b", TensorProto.FLOAT, shape)])
    outer_then = helper.make_graph([n("Constant", [], ["no"], value=numpy_helper.from_array(np.array(False), "no_value")),
                                    n("If", ["no"], ["t"], name="If_1", then_branch=inner_then, else_branch=inner_else)],
                                   "outer_then", [], [v("t", TensorProto.FLOAT, shape)])
    outer_else = helper.make_graph([n("Identity", ["zeros"], ["e"])], "outer_else", [], [v("e", TensorProto.FLOAT, shape)])
    graph = helper.make_graph([n("If", ["flag"], ["y"], name="If_0", then_branch=outer_then, else_branch=outer_else)], "nested",
                              [v("x", TensorProto.FLOAT, ["batch", 3, 8, 10]), v("flag", TensorProto.BOOL, [])], [v("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(k(5, 3, 3, 3), "W"), numpy_helper.from_array(np.zeros((1, 5, 8, 10), np.float32), "zeros")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def compress_with_statistics(tool, model, stats, shapes, rank, out, data_aware=()):
    """`tensor-compress compress` of `model` with the statistics at a fixed rank; an error text when it
    fails or warns (statistics missing for a node, for example), or when a layer named in
    `data_aware` is not replaced data-aware (on calibration patches or rows), else None."""
    arguments = [tool, "compress", model, "--output", out, "--statistics", stats, "--rank", str(rank), "--min-parameters", "0", "--quiet", "--json"]
    for shape in shapes:
        arguments += ["--input-shape", shape]
    done = subprocess.run(arguments, capture_output=True, text=True)
    if done.returncode != 0 or "warning" in done.stderr:
        return f"compress with the statistics: {done.stderr.strip()}"
    report = json.loads(done.stdout)
    if report["warnings"]:
        return f"compress with the statistics warns: {report['warnings']}"
    layers = {layer["name"]: layer for layer in report["layers"]}
    for name in sorted(data_aware):
        reasons = layers.get(name, {}).get("reasons", [])
        if layers.get(name, {}).get("status") != "replaced" or not any("calibration" in r for r in reasons):
            return f"compress did not replace {name} data-aware: {layers.get(name, 'not in the report')}"
    return None


def run_calibration(tool, work):
    """tdtools.calibrate on the models of calibration_models(): an .npz with a batch axis that is not the
    first and a constant, a fixed batch of 1, and a directory of feeds; each must give statistics
    of every compressible node that compress then uses. Returns the failures."""
    audio, fixed = calibration_models()
    samples = 5
    paths = {name: os.path.join(work, f"calibration-{name}.onnx") for name in ("audio", "fixed")}
    onnx.save_model(audio, paths["audio"])
    onnx.save_model(fixed, paths["fixed"])
    audio_inputs = os.path.join(work, "calibration-audio.npz")
    np.savez(audio_inputs, x=rng.standard_normal((samples, 4, 16)).astype(np.float32),
             state=rng.standard_normal((samples, 2, 8)).astype(np.float32), **{"constants/sr": np.array(16000.0, dtype=np.float32)})
    fixed_inputs = os.path.join(work, "calibration-fixed.npz")
    np.savez(fixed_inputs, x=rng.standard_normal((samples, 3, 8, 10)).astype(np.float32))
    feeds = os.path.join(work, "calibration-feeds")
    os.makedirs(feeds, exist_ok=True)
    for i in range(3):
        np.savez(os.path.join(feeds, f"{i:03d}.npz"), x=rng.standard_normal((2, 4, 16)).astype(np.float32),
                 sr=np.array(8000.0, dtype=np.float32), state=rng.standard_normal((2, 2, 8)).astype(np.float32))
    nested_path, nested_inputs = os.path.join(work, "calibration-nested.onnx"), os.path.join(work, "calibration-nested.npz")
    onnx.save_model(nested_if_model(), nested_path)
    np.savez(nested_inputs, x=rng.standard_normal((samples, 3, 8, 10)).astype(np.float32), **{"constants/flag": np.array(True)})
    failures = []
    for name, model, inputs, nodes, shapes in [
            ("an If inside an If", nested_path, nested_inputs, {"If_0/then_branch/If_1/else_branch/conv"}, ["x=1,3,8,10", "flag="]),
            ("npz, batch axis 1 and a constant", paths["audio"], audio_inputs, {"conv", "recurrent"}, ["x=1,4,16", "sr=", "state=2,1,8"]),
            ("fixed batch 1", paths["fixed"], fixed_inputs, {"conv"}, ["x=1,3,8,10"]),
            ("directory of feeds", paths["audio"], feeds, {"conv", "recurrent"}, ["x=2,4,16", "sr=", "state=2,2,8"])]:
        stats = os.path.join(work, "calibration.stats.safetensors")
        done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, model, inputs, stats, "--batch", "4"], capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"{name}: calibrate failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        found = set(statistics.read(stats))
        if found != nodes:
            failures.append(f"{name}: statistics of {sorted(found)}, expected {sorted(nodes)}")
            continue
        problem = compress_with_statistics(tool, model, stats, shapes, 2, os.path.join(work, "calibration.compressed.onnx"))
        if problem:
            failures.append(f"{name}: {problem}")
    return failures


def run_loop_statistics(tool, work):
    """tdtools.calibrate on nodes inside a Loop body (a Conv applied to the carried value, three
    iterations) and a Scan body (a MatMul on each step's slice): their statistics must equal the
    patches or rows of every iteration's input (computed here by running the loop 0, 1, 2 times and
    by slicing the sequence), and compress must use them without a warning. Returns the failures."""
    from tdtools.calibrate import patches
    n, v = helper.make_node, helper.make_tensor_value_info
    model = lambda g: helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="conformance")
    failures = []
    # Loop: x_{t+1} = tanh(conv(x_t)), M iterations.
    w = (rng.standard_normal((6, 6, 3, 3)) * 0.3).astype(np.float32)
    def loop(iterations):
        body = helper.make_graph([n("Conv", ["xc", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]), n("Tanh", ["c"], ["xo"]),
                                  n("Identity", ["cond_in"], ["cond_out"])], "body",
                                 [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), v("xc", TensorProto.FLOAT, [None, 6, 9, 9])],
                                 [v("cond_out", TensorProto.BOOL, []), v("xo", TensorProto.FLOAT, [None, 6, 9, 9])])
        graph = helper.make_graph([n("Loop", ["M", "go", "x"], ["y"], name="Loop_0", body=body)], "loop",
                                  [v("x", TensorProto.FLOAT, ["batch", 6, 9, 9])], [v("y", TensorProto.FLOAT, ["batch", 6, 9, 9])],
                                  initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.array(iterations, np.int64), "M"),
                                               numpy_helper.from_array(np.array(True), "go")])
        return model(graph)
    samples = 4
    x = rng.standard_normal((samples, 6, 9, 9)).astype(np.float32)
    paths = {}
    for iterations in range(4):
        paths[iterations] = os.path.join(work, f"loop-statistics-{iterations}.onnx")
        onnx.save_model(loop(iterations), paths[iterations])
    inputs = [session(paths[t]).run(None, {"x": x})[0] for t in range(3)]   # the Conv's input at iterations 0, 1, 2
    rows = np.concatenate([np.concatenate(list(patches(sample.astype(np.float64), [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1 << 20)))
                           for t in inputs for sample in t])
    # Scan: a running sum of each step's slice times W (one MatMul per step).
    ws = rng.standard_normal((5, 3)).astype(np.float32)
    # Two MatMuls read each step's slice: it is exposed once.
    body = helper.make_graph([n("MatMul", ["step", "Ws"], ["p0"], name="project"), n("MatMul", ["step", "Ws2"], ["p1"], name="project2"),
                              n("Add", ["p0", "p1"], ["p"]), n("Add", ["acc_in", "p"], ["acc_out"]),
                              n("Identity", ["p"], ["p_out"])], "scan_body",
                             [v("acc_in", TensorProto.FLOAT, [1, 3]), v("step", TensorProto.FLOAT, [1, 5])],
                             [v("acc_out", TensorProto.FLOAT, [1, 3]), v("p_out", TensorProto.FLOAT, [1, 3])])
    graph = helper.make_graph([n("Scan", ["zero", "seq"], ["total", "each"], name="Scan_0", body=body, num_scan_inputs=1,
                                 scan_output_axes=[0])], "scan",
                              [v("seq", TensorProto.FLOAT, ["steps", 1, 5])], [v("total", TensorProto.FLOAT, [1, 3]), v("each", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(ws, "Ws"), numpy_helper.from_array(np.zeros((1, 3), np.float32), "zero"),
                                           numpy_helper.from_array(rng.standard_normal((5, 3)).astype(np.float32), "Ws2")])
    scan_path = os.path.join(work, "scan-statistics.onnx")
    onnx.save_model(model(graph), scan_path)
    sequence = rng.standard_normal((3, 7, 1, 5)).astype(np.float32)   # three feeds of 7 steps each
    for name, path, feeds, node, expected, shapes in [
            ("Loop", paths[3], {"x": x}, "Loop_0/body/conv", rows, ["x=1,6,9,9"]),
            ("Scan", scan_path, [{"seq": s} for s in sequence], "Scan_0/body/project", sequence.reshape(-1, 5).astype(np.float64), ["seq=7,1,5"])]:
        data = os.path.join(work, f"{name}-feeds")
        os.makedirs(data, exist_ok=True)
        for i, feed in enumerate(feeds if isinstance(feeds, list) else [feeds]):
            np.savez(os.path.join(data, f"{i:03d}.npz"), **feed)
        stats = os.path.join(work, f"{name}.stats.safetensors")
        arguments = [sys.executable, "-m", "tdtools.calibrate", tool, path, data, stats, "--no-sensitivity"]
        done = subprocess.run(arguments, capture_output=True, text=True)
        if done.returncode != 0:
            failures.append(f"{name}: calibrate failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        read = statistics.read(stats)
        found = read.get(node)
        if found is None or (name == "Scan" and "Scan_0/body/project2" not in read):
            failures.append(f"{name}: no statistics of {node} (or of the second reader of its input): {sorted(read)}")
            continue
        mean, gram = expected.mean(axis=0), expected.T @ expected / len(expected)
        error = max(float(np.abs(found.mean[0] - mean).max()), float(np.abs(found.gram[0] - gram).max() / np.abs(gram).max()))
        if found.count != len(expected) or error > 1e-6:
            failures.append(f"{name}: count {found.count} (expected {len(expected)}), error {error:.2e}")
            continue
        problem = compress_with_statistics(tool, path, stats, shapes, 1, os.path.join(work, f"{name}.compressed.onnx"))
        if problem:
            failures.append(f"{name}: {problem}")
    return failures


def run_piece(nodes, feeds, initializers=()):
    """Runs `nodes` (one small graph reading `feeds` and `initializers`, a dict of arrays each, and
    giving the value `out`) in onnxruntime: the pieces of a nested model, run by hand."""
    v = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "piece", [v(name, TensorProto.FLOAT, a.shape) for name, a in feeds.items()], [v("out", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(a, name) for name, a in dict(initializers).items()])
    return session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])).run(None, feeds)[0]


def conv_rows(inputs, kernel, pads):
    """The im2col patches (stride and dilation 1) of every sample of every array in `inputs`, in float64."""
    from tdtools.calibrate import patches
    return np.concatenate([np.concatenate(list(patches(sample.astype(np.float64), kernel, [1, 1], pads, [1, 1], 1 << 20)))
                           for x in inputs for sample in x])


def nested_statistics_models():
    """Compressible nodes below two constructs or below an If that switches, each with the rows
    that its statistics must hold (computed by running the pieces by hand):
    (name, model, feeds, --input-shape arguments, {node: rows}). Every If switches between feeds
    or between a Loop's iterations; bodies read weights, trip counts and constants of the main graph."""
    n, v = helper.make_node, helper.make_tensor_value_info
    k = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)
    model = lambda g: helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="conformance")
    init = lambda **arrays: [numpy_helper.from_array(np.asarray(a), name) for name, a in arrays.items()]
    image = lambda name: v(name, TensorProto.FLOAT, None)
    passed = lambda: n("Identity", ["cond_in"], ["cond_out"])
    step = lambda w, pads: (lambda x: run_piece([n("Conv", ["x", "W"], ["c"], pads=pads), n("Tanh", ["c"], ["out"])], {"x": x}, {"W": w}))

    # A Conv in a Loop (3 iterations) in a Loop (2 iterations, halving the result after each inner loop);
    # the inner Loop is unnamed (Loop_1 in the outer body) and reads its trip count and the weight
    # from the main graph.
    w = k(6, 6, 3, 3)
    inner = helper.make_graph([n("Conv", ["xi", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]), n("Tanh", ["c"], ["xi_out"]),
                               n("Identity", ["go_in"], ["go_out"])], "inner",
                              [v("t", TensorProto.INT64, []), v("go_in", TensorProto.BOOL, []), image("xi")], [v("go_out", TensorProto.BOOL, []), image("xi_out")])
    outer = helper.make_graph([passed(), n("Loop", ["M_inner", "go", "xc"], ["y"], body=inner), n("Mul", ["y", "half"], ["xo"])], "outer",
                              [v("j", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), image("xc")], [v("cond_out", TensorProto.BOOL, []), image("xo")])
    graph = helper.make_graph([n("Loop", ["M_outer", "go", "x"], ["y"], name="outer", body=outer)], "loop-in-loop",
                              [v("x", TensorProto.FLOAT, ["batch", 6, 9, 9])], [image("y")],
                              initializer=init(W=w, M_outer=np.int64(2), M_inner=np.int64(3), go=np.array(True), half=np.float32(0.5)))
    x = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)
    seen, current = [], x
    for _ in range(2):
        for _ in range(3):
            seen.append(current)
            current = step(w, [1, 1, 1, 1])(current)
        current = current * np.float32(0.5)
    yield "a Conv in a Loop in a Loop", model(graph), x, ["x=1,6,9,9"], {"outer/body/Loop_1/body/conv": conv_rows(seen, [3, 3], [1, 1, 1, 1])}

    # A Conv in a Loop (3 iterations) in the then branch of an If on a graph input that the feeds
    # set and clear; the else branch holds a 1×1 Conv of its own.
    w1 = k(6, 6, 1, 1)
    body = helper.make_graph([n("Conv", ["xc", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]), n("Tanh", ["c"], ["xo"]), passed()], "body",
                             [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), image("xc")], [v("cond_out", TensorProto.BOOL, []), image("xo")])
    then_branch = helper.make_graph([n("Loop", ["M", "go", "x"], ["t"], body=body)], "then", [], [image("t")])
    else_branch = helper.make_graph([n("Conv", ["x", "W1"], ["e"], name="conv")], "else", [], [image("e")])
    graph = helper.make_graph([n("If", ["flag"], ["y"], name="If_0", then_branch=then_branch, else_branch=else_branch)], "loop-in-switching-if",
                              [v("x", TensorProto.FLOAT, ["batch", 6, 9, 9]), v("flag", TensorProto.BOOL, [])], [image("y")],
                              initializer=init(W=w, W1=w1, M=np.int64(3), go=np.array(True)))
    feeds = [{"x": rng.standard_normal((2, 6, 9, 9)).astype(np.float32), "flag": np.array(f)} for f in (True, False, True, False, False)]
    seen = []
    for feed in feeds:
        current = feed["x"]
        for _ in range(3 if feed["flag"] else 0):
            seen.append(current)
            current = step(w, [1, 1, 1, 1])(current)
    yield "a Conv in a Loop in an If that switches", model(graph), feeds, ["x=2,6,9,9", "flag="], {
        "If_0/then_branch/Loop_0/body/conv": conv_rows(seen, [3, 3], [1, 1, 1, 1]),
        "If_0/else_branch/conv": conv_rows([f["x"] for f in feeds if not f["flag"]], [1, 1], [0, 0, 0, 0])}

    # A MatMul in each branch of an If on the sign of the input's mean (one reads the input, the
    # other its Relu).
    wt, we = k(5, 3), k(5, 3)
    then_branch = helper.make_graph([n("MatMul", ["x", "Wt"], ["t"], name="project")], "then", [], [image("t")])
    else_branch = helper.make_graph([n("Relu", ["x"], ["r"]), n("MatMul", ["r", "We"], ["e"], name="project")], "else", [], [image("e")])
    graph = helper.make_graph([n("ReduceMean", ["x"], ["m"], keepdims=0), n("Greater", ["m", "zero"], ["positive"]),
                               n("If", ["positive"], ["y"], name="gate", then_branch=then_branch, else_branch=else_branch)], "matmul-in-switching-if",
                              [v("x", TensorProto.FLOAT, ["batch", 7, 5])], [image("y")], initializer=init(Wt=wt, We=we, zero=np.float32(0)))
    feeds = [{"x": (rng.standard_normal((2, 7, 5)) + s).astype(np.float32)} for s in (1, -1, -1, 1, -1)]
    yield "a MatMul in an If that switches", model(graph), feeds, ["x=2,7,5"], {
        "gate/then_branch/project": np.concatenate([f["x"].reshape(-1, 5) for f in feeds if f["x"].mean() > 0]).astype(np.float64),
        "gate/else_branch/project": np.concatenate([np.maximum(f["x"], 0).reshape(-1, 5) for f in feeds if f["x"].mean() <= 0]).astype(np.float64)}

    # An If in a Loop's body (4 iterations) on the iteration number: the first two iterations take
    # the then branch, the last two the else branch (another Conv: the value exposed changes shape
    # from one iteration to the next).
    wb = k(6, 6, 1, 3)
    then_branch = helper.make_graph([n("Conv", ["xc", "W"], ["t"], name="conv", pads=[1, 1, 1, 1])], "then", [], [image("t")])
    else_branch = helper.make_graph([n("Conv", ["xc", "Wb"], ["e"], name="conv", pads=[0, 1, 0, 1])], "else", [], [image("e")])
    body = helper.make_graph([n("Less", ["i", "two"], ["early"]), n("If", ["early"], ["c"], then_branch=then_branch, else_branch=else_branch),
                              n("Tanh", ["c"], ["xo"]), passed()], "body",
                             [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), image("xc")], [v("cond_out", TensorProto.BOOL, []), image("xo")])
    graph = helper.make_graph([n("Loop", ["M", "go", "x"], ["y"], name="Loop_0", body=body)], "if-in-loop",
                              [v("x", TensorProto.FLOAT, ["batch", 6, 9, 9])], [image("y")],
                              initializer=init(W=w, Wb=wb, M=np.int64(4), two=np.int64(2), go=np.array(True)))
    x = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)
    early, late, current = [], [], x
    for t in range(4):
        (early if t < 2 else late).append(current)
        current = step(w, [1, 1, 1, 1])(current) if t < 2 else step(wb, [0, 1, 0, 1])(current)
    yield "an If in a Loop's body", model(graph), x, ["x=1,6,9,9"], {
        "Loop_0/body/If_1/then_branch/conv": conv_rows(early, [3, 3], [1, 1, 1, 1]),
        "Loop_0/body/If_1/else_branch/conv": conv_rows(late, [1, 3], [0, 0, 1, 1])}   # ONNX pads (begins, ends); patches (top, bottom, left, right)

    # An If in a Scan's body on the sign of each step's sum (it switches between steps): the then
    # branch projects the step, the else branch the Tanh of the state; beside it a MatMul on a second
    # scan input read in reverse along its axis 1. The state (the Tanh of the sum) is also a scan
    # output stacked in reverse on axis 1, and the If's result one on axis 0. Calibration runs the
    # Scan as the equivalent Loop.
    wt, we, ws = k(5, 6), k(6, 6), k(4, 6)
    then_branch = helper.make_graph([n("MatMul", ["step", "Wt"], ["t"], name="project")], "then", [], [image("t")])
    else_branch = helper.make_graph([n("Tanh", ["acc_in"], ["h"]), n("MatMul", ["h", "We"], ["e"], name="project")], "else", [], [image("e")])
    body = helper.make_graph([n("ReduceSum", ["step"], ["s"], keepdims=0), n("Greater", ["s", "zero"], ["positive"]),
                              n("If", ["positive"], ["p"], then_branch=then_branch, else_branch=else_branch),
                              n("MatMul", ["back", "Ws"], ["q"], name="plain"), n("Add", ["acc_in", "p"], ["ap"]), n("Add", ["ap", "q"], ["apq"]),
                              n("Tanh", ["apq"], ["acc_out"]), n("Identity", ["acc_out"], ["trace"]), n("Identity", ["p"], ["p_out"])], "body",
                             [v("acc_in", TensorProto.FLOAT, [1, 6]), v("step", TensorProto.FLOAT, [1, 5]), v("back", TensorProto.FLOAT, [1, 4])],
                             [v("acc_out", TensorProto.FLOAT, [1, 6]), v("trace", TensorProto.FLOAT, [1, 6]), v("p_out", TensorProto.FLOAT, [1, 6])])
    graph = helper.make_graph([n("Scan", ["zeros", "seq", "rev"], ["total", "traces", "ps"], name="Scan_0", body=body, num_scan_inputs=2,
                                 scan_input_axes=[0, 1], scan_input_directions=[0, 1], scan_output_axes=[1, 0], scan_output_directions=[1, 0])],
                              "if-in-scan", [v("seq", TensorProto.FLOAT, ["steps", 1, 5]), v("rev", TensorProto.FLOAT, [1, "steps", 4])],
                              [image("total"), image("traces"), image("ps")],
                              initializer=init(Wt=wt, We=we, Ws=ws, zeros=np.zeros((1, 6), np.float32), zero=np.float32(0)))
    feeds = [{"seq": rng.standard_normal((6, 1, 5)).astype(np.float32), "rev": rng.standard_normal((1, 6, 4)).astype(np.float32)} for _ in range(4)]
    rest = [n("MatMul", ["b", "Ws"], ["q"]), n("Add", ["a", "p"], ["ap"]), n("Add", ["ap", "q"], ["apq"]), n("Tanh", ["apq"], ["out"])]
    then_rows, else_rows, plain_rows = [], [], []
    for feed in feeds:
        steps = len(feed["seq"])
        acc = np.zeros((1, 6), np.float32)
        for t in range(steps):
            step, back = feed["seq"][t], feed["rev"][:, steps - 1 - t]
            plain_rows.append(back)
            if step.astype(np.float64).sum() > 0:
                then_rows.append(step)
                acc = run_piece([n("MatMul", ["x", "Wt"], ["p"])] + rest, {"x": step, "b": back, "a": acc}, {"Wt": wt, "Ws": ws})
            else:
                else_rows.append(run_piece([n("Tanh", ["a"], ["out"])], {"a": acc}))
                acc = run_piece([n("Tanh", ["a"], ["h"]), n("MatMul", ["h", "We"], ["p"])] + rest, {"b": back, "a": acc}, {"We": we, "Ws": ws})
    rows = lambda parts: np.concatenate(parts).astype(np.float64)
    yield "an If in a Scan's body", model(graph), feeds, ["seq=6,1,5", "rev=1,6,4"], {
        "Scan_0/body/If_2/then_branch/project": rows(then_rows), "Scan_0/body/If_2/else_branch/project": rows(else_rows),
        "Scan_0/body/plain": rows(plain_rows)}

    # A Loop (three iterations, its trip count read from the main graph) in a Scan's body: the state
    # plus a projection of each step, mixed three times, is the next state (and a scan output).
    wi, wl = k(5, 4), k(4, 4)
    inner = helper.make_graph([n("MatMul", ["xc", "Wl"], ["m"], name="mix"), n("Tanh", ["m"], ["xo"]), passed()], "inner",
                              [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), image("xc")], [v("cond_out", TensorProto.BOOL, []), image("xo")])
    body = helper.make_graph([n("MatMul", ["step", "Wi"], ["u"], name="input"), n("Add", ["h_in", "u"], ["z"]),
                              n("Loop", ["M", "go", "z"], ["h_out"], body=inner), n("Identity", ["h_out"], ["h_each"])], "body",
                             [v("h_in", TensorProto.FLOAT, [1, 4]), v("step", TensorProto.FLOAT, [1, 5])],
                             [v("h_out", TensorProto.FLOAT, [1, 4]), v("h_each", TensorProto.FLOAT, [1, 4])])
    graph = helper.make_graph([n("Scan", ["zeros", "seq"], ["h", "hs"], name="Scan_0", body=body, num_scan_inputs=1)], "loop-in-scan",
                              [v("seq", TensorProto.FLOAT, ["steps", 1, 5])], [image("h"), image("hs")],
                              initializer=init(Wi=wi, Wl=wl, M=np.int64(3), go=np.array(True), zeros=np.zeros((1, 4), np.float32)))
    feeds = [{"seq": rng.standard_normal((5, 1, 5)).astype(np.float32)} for _ in range(3)]
    input_rows, mix_rows = [], []
    for feed in feeds:
        h = np.zeros((1, 4), np.float32)
        for step in feed["seq"]:
            input_rows.append(step)
            h = run_piece([n("MatMul", ["s", "Wi"], ["u"]), n("Add", ["h", "u"], ["out"])], {"s": step, "h": h}, {"Wi": wi})
            for _ in range(3):
                mix_rows.append(h)
                h = run_piece([n("MatMul", ["x", "Wl"], ["m"]), n("Tanh", ["m"], ["out"])], {"x": h}, {"Wl": wl})
    yield "a Loop in a Scan's body", model(graph), feeds, ["seq=5,1,5"], {
        "Scan_0/body/input": rows(input_rows), "Scan_0/body/Loop_2/body/mix": rows(mix_rows)}


def statistics_error(found, rows):
    """Why the statistics `found` differ from those of `rows` (count, mean within 1e-6, second moment
    within 1e-6 of its largest entry), or None."""
    mean, gram = rows.mean(axis=0), rows.T @ rows / len(rows)
    error = max(float(np.abs(found.mean[0] - mean).max()), float(np.abs(found.gram[0] - gram).max() / np.abs(gram).max()))
    if found.count != len(rows) or error > 1e-6:
        return f"count {found.count} (expected {len(rows)}), error {error:.2e}"
    return None


def calibration_outputs_error(path, names, feeds):
    """Why the model of the calibration runs (tdtools.calibrate.exposing_model of the model at `path`
    for the nodes `names`: Ifs inlined, bodies' values threaded out, Scans rewritten as Loops)
    gives other values of the model's own outputs than the model itself on `feeds` (a list of
    feed dicts), or None when every output is bit-identical."""
    from tdtools.calibrate import exposing_model
    original = session(path)
    outputs = [o.name for o in original.get_outputs()]
    calibrated = onnx.load(path)
    exposing_model(calibrated, names, lambda: ((feed, 1) for feed in feeds))
    exposing = session(calibrated)
    for i, feed in enumerate(feeds):
        want = original.run(None, feed)
        got = exposing.run(outputs, feed)
        for name, a, b in zip(outputs, want, got):
            if a.shape != b.shape or not np.array_equal(a, b):
                difference = float(np.abs(a - b).max()) if a.shape == b.shape else float("nan")
                return f"the calibration run's output {name} of feed {i} differs: shape {b.shape} (expected {a.shape}), max |a−b| {difference:.2e}"
    return None


def run_nested_statistics(tool, work):
    """tdtools.calibrate on the models of nested_statistics_models() (an .npz of samples in batches of
    two, or a directory of feeds): each node's statistics must equal those of the rows computed by
    hand, the calibration run's model must give the model's own outputs bit for bit, and compress
    must compress those nodes data-aware without a warning. Returns {case: failures}."""
    results = {}
    for case, model, feeds, shapes, expected in nested_statistics_models():
        stem = os.path.join(work, "nested-" + "-".join(case.lower().replace("'", "").split()[1:]))
        path, stats, data = stem + ".onnx", stem + ".stats.safetensors", stem + "-inputs"
        onnx.save_model(model, path)
        if isinstance(feeds, list):
            os.makedirs(data, exist_ok=True)
            for i, feed in enumerate(feeds):
                np.savez(os.path.join(data, f"{i:03d}.npz"), **feed)
        else:
            data += ".npz"
            np.savez(data, x=feeds)
        done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, path, data, stats, "--batch", "2", "--no-sensitivity"],
                              capture_output=True, text=True)
        failures = results.setdefault(case, [])
        if done.returncode != 0:
            failures.append(f"calibrate failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        read = statistics.read(stats)
        if set(read) != set(expected):
            failures.append(f"statistics of {sorted(read)}, expected {sorted(expected)}")
            continue
        failures += [f"{node}: {problem}" for node, rows in expected.items() if (problem := statistics_error(read[node], rows))]
        problem = calibration_outputs_error(path, set(expected), feeds if isinstance(feeds, list) else [{"x": feeds}])
        if problem:
            failures.append(problem)
        if not failures:
            problem = compress_with_statistics(tool, path, stats, shapes, 1, stem + ".compressed.onnx", data_aware=set(expected))
            if problem:
                failures.append(problem)
    return results


def calibrate_feeds(tool, stem, model, feeds):
    """Saves `model` as STEM.onnx and each feed (a dict of arrays) as STEM-inputs/NNN.npz, then runs
    tdtools.calibrate on them without sensitivities. Returns (the finished process, the statistics
    it wrote by node, or None when it failed)."""
    path, stats, data = stem + ".onnx", stem + ".stats.safetensors", stem + "-inputs"
    onnx.save_model(model, path)
    os.makedirs(data, exist_ok=True)
    for i, feed in enumerate(feeds):
        np.savez(os.path.join(data, f"{i:03d}.npz"), **feed)
    done = subprocess.run([sys.executable, "-m", "tdtools.calibrate", tool, path, data, stats, "--no-sensitivity"], capture_output=True, text=True)
    return done, (statistics.read(stats) if done.returncode == 0 else None)


def run_if_in_scan(tool, work):
    """The Scans that calibration does not rewrite as a Loop: an If inside the Scan's body (on the
    sign of each step) holds a MatMul in each branch, beside a MatMul on the step itself, in a
    Scan-8 (opset 8: batch axis, sequence_lens) and in a Scan-9+ whose scan output is stacked on
    axis 1 of a rank its body does not declare. onnxruntime keeps a Scan's state of one shape over
    the iterations, so the branches' inputs cannot be handed out: calibration must still run, give
    the statistics of the other MatMul (every step's slice), say why the Scan is not rewritten and
    name the two nodes it has none for. Returns the failures."""
    n, v = helper.make_node, helper.make_tensor_value_info
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    failures = []
    for case, opset, reason in [("Scan-8", 8, "Scan_0 is a Scan-8"), ("undeclared rank", OPSET, "Scan_0 is scan output 0 on axis 1, of a rank")]:
        then_branch = helper.make_graph([n("MatMul", ["step", "Wt"], ["t"], name="project")], "then", [], [v("t", TensorProto.FLOAT, [1, 3])])
        else_branch = helper.make_graph([n("MatMul", ["step", "We"], ["e"], name="project")], "else", [], [v("e", TensorProto.FLOAT, [1, 3])])
        nodes = [n("ReduceSum", ["step"], ["s"], keepdims=0), n("Greater", ["s", "zero"], ["positive"]),
                 n("If", ["positive"], ["p"], then_branch=then_branch, else_branch=else_branch),
                 n("MatMul", ["step", "Ws"], ["q"], name="plain"), n("Add", ["p", "q"], ["pq"]), n("Add", ["acc_in", "pq"], ["acc_out"])]
        outputs = [v("acc_out", TensorProto.FLOAT, [1, 3])]
        if opset == 8:
            # Scan-8: the optional sequence_lens first, every input and output with a batch axis in front.
            scan = n("Scan", ["", "zeros", "seq"], ["total"], name="Scan_0", num_scan_inputs=1)
            zeros, sequence_shape, total, shapes = np.zeros((1, 1, 3), np.float32), [1, "steps", 1, 5], [1, 1, 3], ["seq=1,6,1,5"]
        else:
            nodes.append(n("Identity", ["pq"], ["pq_out"]))
            outputs.append(v("pq_out", TensorProto.FLOAT, None))
            scan = n("Scan", ["zeros", "seq"], ["total", "each"], name="Scan_0", num_scan_inputs=1, scan_output_axes=[1])
            zeros, sequence_shape, total, shapes = np.zeros((1, 3), np.float32), ["steps", 1, 5], [1, 3], ["seq=6,1,5"]
        body = helper.make_graph(nodes, "body", [v("acc_in", TensorProto.FLOAT, [1, 3]), v("step", TensorProto.FLOAT, [1, 5])], outputs)
        scan.attribute.append(helper.make_attribute("body", body))
        graph = helper.make_graph([scan], "if-in-scan", [v("seq", TensorProto.FLOAT, sequence_shape)],
                                  [v(o, TensorProto.FLOAT, total if o == "total" else None) for o in scan.output],
                                  initializer=[numpy_helper.from_array(k(5, 3), "Wt"), numpy_helper.from_array(k(5, 3), "We"),
                                               numpy_helper.from_array(k(5, 3), "Ws"), numpy_helper.from_array(zeros, "zeros"),
                                               numpy_helper.from_array(np.float32(0), "zero")])
        sequence = rng.standard_normal((4, 6, 1, 5)).astype(np.float32)   # four feeds of six steps
        done, read = calibrate_feeds(tool, os.path.join(work, "if-in-scan-" + case.lower().replace(" ", "-")),
                                     helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="conformance"),
                                     [{"seq": feed[None] if opset == 8 else feed} for feed in sequence])
        if read is None:
            failures.append(f"{case}: calibrate failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        branches = ["Scan_0/body/If_2/else_branch/project", "Scan_0/body/If_2/then_branch/project"]
        if set(read) != {"Scan_0/body/plain"} or not all(b in done.stderr for b in branches) or reason not in done.stderr:
            failures.append(f"{case}: statistics of {sorted(read)} (expected Scan_0/body/plain), calibrate said: {done.stderr.strip()}")
            continue
        problem = statistics_error(read["Scan_0/body/plain"], sequence.reshape(-1, 5).astype(np.float64))
        if problem:
            failures.append(f"{case}: Scan_0/body/plain: {problem}")
    return failures


def run_old_if(tool, work):
    """An If of opset 10 that switches between feeds, a MatMul in each branch, beside a MatMul in
    the main graph. If-1 asks its branches for outputs of one shape, so the branches' inputs
    cannot be handed out as a value and an empty pair: calibration must still run (it crashed in
    onnxruntime's shape inference before), give the main graph's MatMul its statistics, and name
    the two nodes it has none for with the reason. Returns the failures."""
    n, v = helper.make_node, helper.make_tensor_value_info
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    then_branch = helper.make_graph([n("MatMul", ["x", "Wt"], ["t"], name="project")], "then", [], [v("t", TensorProto.FLOAT, [2, 3])])
    else_branch = helper.make_graph([n("MatMul", ["x", "We"], ["e"], name="project")], "else", [], [v("e", TensorProto.FLOAT, [2, 3])])
    graph = helper.make_graph([n("ReduceSum", ["x"], ["s"], keepdims=0), n("Greater", ["s", "zero"], ["positive"]),
                               n("If", ["positive"], ["p"], name="If_0", then_branch=then_branch, else_branch=else_branch),
                               n("MatMul", ["x", "Ws"], ["q"], name="plain"), n("Add", ["p", "q"], ["y"])], "old-if",
                              [v("x", TensorProto.FLOAT, [2, 5])], [v("y", TensorProto.FLOAT, [2, 3])],
                              initializer=[numpy_helper.from_array(k(5, 3), "Wt"), numpy_helper.from_array(k(5, 3), "We"),
                                           numpy_helper.from_array(k(5, 3), "Ws"), numpy_helper.from_array(np.float32(0), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)], producer_name="conformance")
    model.ir_version = 6
    feeds = np.concatenate([k(3, 2, 5) + 1, k(3, 2, 5) - 1])        # three feeds take each branch
    done, read = calibrate_feeds(tool, os.path.join(work, "old-if"), model, [{"x": feed} for feed in feeds])
    if read is None:
        return [f"calibrate failed: {done.stderr.strip().splitlines()[-1:]}"]
    branches = ["If_0/else_branch/project", "If_0/then_branch/project"]
    if set(read) != {"plain"} or not all(b in done.stderr for b in branches) or "opset 10 (below 11)" not in done.stderr:
        return [f"statistics of {sorted(read)} (expected plain), calibrate said: {done.stderr.strip()}"]
    problem = statistics_error(read["plain"], feeds.reshape(-1, 5).astype(np.float64))
    return [f"plain: {problem}"] if problem else []


def run_growing_loop(tool, work):
    """A Loop whose body's MatMul reads a value that grows by a row each iteration (a decoder's
    sequence: seq ← [seq; tanh(last row of seq·W)]). A scan output must keep one shape over the
    iterations, so the first calibration run fails in onnxruntime; calibration must say so and
    collect again with the body's values carried, giving the MatMul the statistics of every
    iteration's input (2, 3 and 4 rows of each feed). Returns the failures."""
    n, v = helper.make_node, helper.make_tensor_value_info
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    weight = k(4, 4)
    body = helper.make_graph([
        n("MatMul", ["seq_in", "W"], ["proj"], name="project"), n("Slice", ["proj", "minus_one", "big", "zero_axis"], ["last"]),
        n("Tanh", ["last"], ["step"]), n("Concat", ["seq_in", "step"], ["seq_out"], axis=0), n("Identity", ["cond_in"], ["cond_out"])], "body",
        [v("i", TensorProto.INT64, []), v("cond_in", TensorProto.BOOL, []), v("seq_in", TensorProto.FLOAT, ["t", 4])],
        [v("cond_out", TensorProto.BOOL, []), v("seq_out", TensorProto.FLOAT, ["t2", 4])])
    graph = helper.make_graph([n("Loop", ["M", "go", "x"], ["y"], name="Loop_0", body=body)], "growing",
                              [v("x", TensorProto.FLOAT, [2, 4])], [v("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(np.array(3, np.int64), "M"),
                                           numpy_helper.from_array(np.array(True), "go"),
                                           numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
                                           numpy_helper.from_array(np.array([1 << 30], np.int64), "big"),
                                           numpy_helper.from_array(np.array([0], np.int64), "zero_axis")])
    feeds = k(3, 2, 4)
    rows = []
    for x in feeds:
        sequence = x.astype(np.float64)
        for _ in range(3):
            rows.append(sequence)
            sequence = np.concatenate([sequence, np.tanh(sequence[-1:] @ weight.astype(np.float64))])
    done, read = calibrate_feeds(tool, os.path.join(work, "growing-loop"),
                                 helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="conformance"),
                                 [{"x": x} for x in feeds])
    if read is None:
        return [f"calibrate failed: {done.stderr.strip().splitlines()[-1:]}"]
    if set(read) != {"Loop_0/body/project"} or "collecting again" not in done.stderr:
        return [f"statistics of {sorted(read)} (expected Loop_0/body/project), calibrate said: {done.stderr.strip()}"]
    problem = statistics_error(read["Loop_0/body/project"], np.concatenate(rows))
    return [f"Loop_0/body/project: {problem}"] if problem else []


def run_patches(tool, work):
    """The calibration patches of a 3-D convolution and of strided ConvTransposes, as inspect lists
    their windows (tdtools.calibrate.patches, on the input upsampled by the strides for a
    ConvTranspose), times the (equivalent) kernel: each must give the node's output in
    onnxruntime, so that the statistics describe what the node multiplies. Returns the failures."""
    from tdtools.calibrate import patches, upsampled
    from tdtools.tool import compressible_nodes
    k = lambda *s: rng.standard_normal(s).astype(np.float32)
    cases = [("conv3d", "Conv", [2, 4, 6, 7, 8], k(6, 4, 3, 2, 3), dict(pads=[1, 0, 1, 1, 2, 0], strides=[2, 1, 2], dilations=[1, 2, 1])),
             ("convtranspose-stride-2", "ConvTranspose", [2, 4, 5, 6], k(4, 6, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 1], output_padding=[1, 0])),
             ("convtranspose-groups-dilation", "ConvTranspose", [1, 4, 5, 4], k(4, 3, 3, 2),
              dict(strides=[3, 1], dilations=[1, 2], pads=[0, 1, 2, 0], group=2))]
    failures = []
    for name, op, x_shape, weight, attrs in cases:
        graph = helper.make_graph([helper.make_node(op, ["x", "W"], ["y"], name="node", **attrs)], name,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[numpy_helper.from_array(weight, "W")])
        path = os.path.join(work, f"patches-{name}.onnx")
        onnx.save_model(finished(graph), path)
        node = compressible_nodes(tool, path)[0]
        x = rng.standard_normal(x_shape).astype(np.float32)
        expected = session(path).run(None, {"x": x})[0]
        groups = node["groups"]
        if op == "ConvTranspose":
            # The equivalent convolution: kernel flipped in space, channels transposed per group.
            cin, out_per = weight.shape[:2]
            in_per = cin // groups
            kernel = np.concatenate([weight[g * in_per:(g + 1) * in_per].transpose(1, 0, 2, 3)[:, :, ::-1, ::-1] for g in range(groups)])
            xs, stride = upsampled(x, node["stride"]), [1, 1]
        else:
            kernel, xs, stride = weight, x, node["stride"]
        cg, tg = xs.shape[1] // groups, kernel.shape[0] // groups
        worst = 0.0
        for n in range(xs.shape[0]):
            for g in range(groups):
                rows = np.concatenate(list(patches(xs[n, g * cg:(g + 1) * cg].astype(np.float64), node["kernel"], stride, node["padding"],
                                                   node["dilation"], 1 << 20)))
                y = rows @ kernel[g * tg:(g + 1) * tg].reshape(tg, -1).T.astype(np.float64)
                want = expected[n, g * tg:(g + 1) * tg].reshape(tg, -1).T
                if y.shape != want.shape:
                    failures.append(f"{name}: patches give {y.shape}, the node {want.shape}")
                    break
                worst = max(worst, float(np.abs(y - want).max() / np.abs(want).max()))
        if worst > 1e-5:
            failures.append(f"{name}: patches × kernel differ from the node by {worst:.2e}")
    return failures


# The Conv nodes' kernel_shape in a 3-D CP stack (None: a pointwise node written without one).
SEPARABLE_3D = {
    "conv3d-cp-pads-stride-dilation": [None, [3, 1, 1], [1, 3, 1], [1, 1, 3], None],
    "conv3d-cp-groups-2-same-upper": [None, [3, 1, 1], [1, 2, 1], [1, 1, 3], None],
    "conv3d-cp-kernel-3x1x1": [None, [3, 1, 1], None],
    "conv3d-cp-kernel-1x3x3-depth-stride-2": [None, [1, 1, 1], [1, 3, 1], [1, 1, 3], None],   # the depth axis acts by its stride alone
}


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    failures = 0
    for name, model, options, replaced in cases():
        error, report = run(tool, work, name, model, options)
        if isinstance(error, str):
            print(f"FAIL {name}: {error}")
            failures += 1
            continue
        count = report["totals"]["replacedLayers"]
        exact = name.endswith("kept") or name.startswith("round-trip")
        ok = count == replaced and (error == 0.0 if exact else error <= 1e-4)
        layout = ""
        if name in SEPARABLE_3D:
            # pointwise → one depthwise Conv per axis that acts (kernel, stride or pads) → pointwise
            convs = [nd for nd in onnx.load(os.path.join(work, name + ".compressed.onnx")).graph.node if nd.op_type == "Conv"]
            kernels = [next((list(a.ints) for a in nd.attribute if a.name == "kernel_shape"), None) for nd in convs]
            layout = f", Conv kernels {kernels}"
            ok = ok and kernels == SEPARABLE_3D[name]
        failures += 0 if ok else 1
        methods = sorted({layer["method"] for layer in report["layers"] if layer["status"] == "replaced"})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {count} replaced {methods}, max |a−b|/max|a| = {error:.2e}{layout}")
    for name, model, command, expected, exact in simplify_cases():
        result = run_simplify(tool, work, name, model, command, expected, exact)
        ok = result.split(" ")[0].startswith("(")
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {result}")
    subgraphs = list(subgraph_models())
    for name, model, feeds, replaced in subgraphs:
        result = run_subgraph(tool, work, name, model, feeds, replaced)
        ok = not isinstance(result, str) and result <= 1e-4
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {name}: " + (result if isinstance(result, str) else f"{replaced} replaced, max |a−b|/max|a| = {result:.2e}"))
    # (label, check, what an empty list of failures shows); each check returns its failures.
    checks = [
        ("calibration", run_calibration, "an .npz with a batch axis that is not the first and a constant, a fixed batch of 1, a directory of "
                                         "feeds, an If inside an If"),
        ("loop statistics", run_loop_statistics, "nodes inside a Loop and a Scan body get the statistics of every iteration's input"),
        ("if in scan", run_if_in_scan, "not rewritten (a Scan-8; a scan output on axis 1 of undeclared rank): calibration runs, gives the "
                                       "Scan body's other node every step's statistics, says why and names the If's nodes it has none for"),
        ("growing loop", run_growing_loop, "a Loop whose body's value grows each iteration: calibration says so, collects again with the "
                                           "values carried, and gives the node every iteration's statistics"),
        ("old if", run_old_if, "an If of opset 10 that switches: calibration runs, gives the main graph's node its statistics, names the "
                               "branches' nodes and why"),
        ("patches", run_patches, "a 3-D convolution's and strided ConvTransposes' calibration patches times their kernels give their outputs"),
    ]
    nested = run_nested_statistics(tool, work)
    for case, problems in nested.items():
        print(f"{'ok  ' if not problems else 'FAIL'} nested statistics, {case}: "
              + ("; ".join(problems) if problems else "every node's statistics equal those of its inputs run by hand; the calibration run gives "
                                                 "the model's outputs bit for bit; compress uses them"))
        failures += 1 if problems else 0
    for label, check, summary in checks:
        found = check(tool, work)
        for failure in found:
            print(f"FAIL {label} {failure}")
        if not found:
            print(f"ok   {label}: {summary}")
        failures += len(found)
    total = len(list(cases())) + len(list(simplify_cases())) + len(subgraphs) + len(nested) + len(checks)
    print(f"{failures} of {total} cases failed" if failures else "all ONNX conformance cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
