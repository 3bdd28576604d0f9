"""A chain of N Conv → Mul pairs (4×4 1×1 convolutions, each followed by a per-channel scale), for
timing `tensor-compress simplify` on large graphs (Documentation/Performance.md, "Graph rewrites
at scale").

    python conv_mul_chain.py N OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

n, out = int(sys.argv[1]), sys.argv[2]
nodes, initializers, previous = [], [], "x"
for k in range(n):
    initializers.append(numpy_helper.from_array(np.full((4, 4, 1, 1), 0.5, np.float32), f"w{k}"))
    initializers.append(numpy_helper.from_array(np.full((1, 4, 1, 1), 1.01, np.float32), f"s{k}"))
    nodes.append(helper.make_node("Conv", [previous, f"w{k}"], [f"c{k}"], name=f"conv{k}"))
    nodes.append(helper.make_node("Mul", [f"c{k}", f"s{k}"], [f"m{k}"], name=f"mul{k}"))
    previous = f"m{k}"
graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
                          [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [1, 4, 2, 2])], initializers)
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), out)
