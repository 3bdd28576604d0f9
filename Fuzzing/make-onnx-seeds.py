# Writes the reader seeds of onnx-fuzzer (mode byte 0 + a tiny ONNX model) to Fuzzing/corpus/.
# Run with any Python that has `onnx` (e.g. .cache/venv-onnx/bin/python Fuzzing/make-onnx-seeds.py).
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def save(name, graph, opset=13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    with open(os.path.join(out, f"onnx_reader_{name}.onnx.seed"), "wb") as f:
        f.write(b"\x00" + model.SerializeToString())


x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
w = numpy_helper.from_array(np.arange(3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3) / 10, "w")
b = numpy_helper.from_array(np.array([1, -1, 0.5], dtype=np.float32), "b")
s = numpy_helper.from_array(np.array([2, 3, 4], dtype=np.float32).reshape(1, 3, 1, 1), "s")

# Conv → Mul by a per-channel constant → Relu.
save("small", helper.make_graph([
    helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
    helper.make_node("Mul", ["c", "s"], ["m"], name="mul"),
    helper.make_node("Relu", ["m"], ["y"], name="relu"),
], "small", [x], [y], [w, b, s]))

# Shape → Gather → Concat → Reshape, with Constant nodes and an int32 typed tensor.
shape_graph = helper.make_graph([
    helper.make_node("Shape", ["x"], ["sh"]),
    helper.make_node("Constant", [], ["i0"], value=helper.make_tensor("i0v", TensorProto.INT64, [1], [0])),
    helper.make_node("Gather", ["sh", "i0"], ["n"], axis=0),
    helper.make_node("Constant", [], ["m1"], value_ints=[-1]),
    helper.make_node("Concat", ["n", "m1"], ["target"], axis=0),
    helper.make_node("Reshape", ["x", "target"], ["flat"]),
    helper.make_node("Slice", ["flat", "st", "en", "ax"], ["y"]),
], "shapes", [x], [y], [
    helper.make_tensor("st", TensorProto.INT32, [1], [1]),
    helper.make_tensor("en", TensorProto.INT64, [1], [9223372036854775807]),
    numpy_helper.from_array(np.array([1], dtype=np.int64), "ax"),
])
save("shape_chain", shape_graph)

# Float16, double and bfloat16 weights in typed and raw fields; a hard-swish chain.
h = numpy_helper.from_array(np.arange(6, dtype=np.float16).reshape(2, 3), "h")
d = numpy_helper.from_array(np.arange(4, dtype=np.float64), "d")
bf = helper.make_tensor("bf", TensorProto.BFLOAT16, [2], [0x3F80, 0x4000])
three = numpy_helper.from_array(np.array(3, dtype=np.float32), "three")
zero = numpy_helper.from_array(np.array(0, dtype=np.float32), "zero")
six = numpy_helper.from_array(np.array(6, dtype=np.float32), "six")
save("hardswish_types", helper.make_graph([
    helper.make_node("Add", ["x", "three"], ["a"]),
    helper.make_node("Clip", ["a", "zero", "six"], ["c"]),
    helper.make_node("Mul", ["x", "c"], ["m"]),
    helper.make_node("Div", ["m", "six"], ["y"]),
], "hs", [x], [y], [three, zero, six, h, d, bf]), opset=14)

# MatMul and Gemm with constant weights, Split, Resize with scales, Pad, ConvTranspose.
v = helper.make_tensor_value_info("v", TensorProto.FLOAT, [2, 4])
save("linear", helper.make_graph([
    helper.make_node("MatMul", ["v", "mw"], ["p"]),
    helper.make_node("Gemm", ["p", "gw", "gb"], ["q"], transB=1, alpha=0.5),
    helper.make_node("Split", ["q"], ["q1", "q2"], axis=1, num_outputs=2),
    helper.make_node("Unsqueeze", ["q1", "uax"], ["u"]),
    helper.make_node("Resize", ["u", "", "sc"], ["r"], mode="nearest"),
    helper.make_node("Pad", ["r", "pads"], ["y"]),
], "lin", [v], [y], [
    numpy_helper.from_array(np.ones((4, 3), np.float32), "mw"),
    numpy_helper.from_array(np.ones((4, 3), np.float32), "gw"),
    numpy_helper.from_array(np.zeros(4, np.float32), "gb"),
    numpy_helper.from_array(np.array([0, 1], np.int64), "uax"),
    numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc"),
    numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
]), opset=18)

tc = numpy_helper.from_array(np.ones((2, 3, 2, 2), np.float32), "tw")
save("convtranspose_pool", helper.make_graph([
    helper.make_node("ConvTranspose", ["x", "tw"], ["t"], strides=[2, 2], output_padding=[1, 1]),
    helper.make_node("MaxPool", ["t"], ["mp"], kernel_shape=[2, 2], ceil_mode=1, strides=[2, 2]),
    helper.make_node("DepthToSpace", ["mp"], ["ds"], blocksize=1),
    helper.make_node("ReduceMean", ["ds"], ["y"], axes=[2, 3], keepdims=0),
], "ct", [x], [y], [tc]), opset=13)
print("ok")


# Findings (each crashes the library as of this writing; see the seed's description in the report).
def finding(name, graph, opset):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    with open(os.path.join(out, f"finding_{name}.seed"), "wb") as f:
        f.write(b"\x00" + model.SerializeToString())


# Pad with only its data input at opset 18: ONNXShapeInference reads ins[1] (the pads) unchecked.
finding("reader_pad_one_input", helper.make_graph([helper.make_node("Pad", ["x"], ["y"], name="pad")], "pad", [x], [y]), 18)

# A Constant node without outputs: ONNXGraph.constantValue reads node.outputs[0] (from shape inference).
finding("reader_constant_no_output", helper.make_graph([
    helper.make_node("Constant", [], [], name="const", value=helper.make_tensor("c", TensorProto.FLOAT, [1], [1.0])),
    helper.make_node("Relu", ["x"], ["y"], name="relu"),
], "constant", [x], [y]), 13)

# simplify on a 1-D input times a scalar constant: layouts() indexes the scalar's empty shape
# (a valid graph; same trap as finding_simplify_layouts_scalar.seed, which the mode-2 generator found).
v1 = helper.make_tensor_value_info("v1", TensorProto.FLOAT, [4])
finding("reader_simplify_1d_times_scalar", helper.make_graph([helper.make_node("Mul", ["v1", "k"], ["y"], name="mul")], "scalar",
        [v1], [y], [numpy_helper.from_array(np.array(2, dtype=np.float32), "k")]), 13)
