"""Times the original convolutions of layers-benchmark in onnxruntime (CPU, one intra-op thread by
default) and prints a Markdown table beside the Swift figures. Called by
Benchmarks/Peers/compare-onnxruntime.sh (with Python/ on PYTHONPATH, for tdtools)."""
import json
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnx import TensorProto, helper

from tdtools.session import session
from tdtools.timing import median_seconds

ours = json.load(open(sys.argv[1]))
threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))


def conv_model(channels, size, batch):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    bias = np.full((channels,), 0.1, dtype=np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, channels, size, size])],
        initializer=[onnx.numpy_helper.from_array(weight, "w"), onnx.numpy_helper.from_array(bias, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


print(f"# onnxruntime {ort.__version__} (CPUExecutionProvider, {threads} intra-op thread(s)) vs our Conv2D; {ours['machine']}")
print("| layer | batch | ours ms | onnxruntime ms | ours / onnxruntime |")
print("|---|---:|---:|---:|---:|")
for row in ours["rows"]:
    if row["variant"] != "original":
        continue
    size = int(row["layer"].split("×")[0])
    channels = int(row["layer"].split(" ")[1].split("→")[0])
    model = conv_model(channels, size, row["batch"])
    s = session(model, threads=threads)
    x = np.random.default_rng(1).standard_normal((row["batch"], channels, size, size)).astype(np.float32)
    theirs = median_seconds([lambda: s.run(None, {"x": x})], runs=5, minimum=0.1)[0] * 1e3
    print(f"| {row['layer']} | {row['batch']} | {row['milliseconds']:.2f} | {theirs:.2f} | {row['milliseconds'] / theirs:.2f} |")
