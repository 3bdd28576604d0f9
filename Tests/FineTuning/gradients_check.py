"""tdtools.gradients against a NumPy reference (run in the training environment, which has
onnxruntime-training): a small graph x → MatMul W1 ("first") → Tanh → MatMul W2 ("second") → Add b
→ LayerNormalization → y, and a second output z = MatMul(x, W3) ("third", read by nothing else).
For the projection v that the module draws (the same seeded generator, replayed here), the gradient
at each probed output is computed by hand (the LayerNorm's backward included), and the metrics
E[g gᵀ] must agree to 1e-4 of their scale; a node that is not a Gemm/MatMul is left out and said.

    python Tests/FineTuning/gradients_check.py     (Python/ on PYTHONPATH)
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tdtools import gradients

B, T, D, H, O, Z = 3, 5, 4, 6, 7, 2


def model(w1, w2, b, gamma, beta, w3):
    init = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in
            (("W1", w1), ("W2", w2), ("b", b), ("gamma", gamma), ("beta", beta), ("W3", w3))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="first"),
             helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
             helper.make_node("MatMul", ["t", "W2"], ["u"], name="second"),
             helper.make_node("Add", ["u", "b"], ["ub"], name="bias"),
             helper.make_node("LayerNormalization", ["ub", "gamma", "beta"], ["y"], name="ln", axis=-1, epsilon=1e-5),
             helper.make_node("MatMul", ["x", "W3"], ["z"], name="third")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [B, T, D])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [B, T, O]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [B, T, Z])], init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def layer_norm_backward(u, gamma, dy, eps=1e-5):
    mu = u.mean(-1, keepdims=True)
    var = ((u - mu) ** 2).mean(-1, keepdims=True)
    xhat = (u - mu) / np.sqrt(var + eps)
    dxhat = dy * gamma
    n = u.shape[-1]
    return (dxhat - dxhat.mean(-1, keepdims=True) - xhat * (dxhat * xhat).mean(-1, keepdims=True)) / np.sqrt(var + eps) * (n / n)


def main():
    rng = np.random.default_rng(3)
    w1, w2, w3 = rng.standard_normal((D, H)), rng.standard_normal((H, O)) * 0.5, rng.standard_normal((D, Z))
    b, gamma, beta = rng.standard_normal(O) * 0.1, rng.uniform(0.5, 2, O), rng.standard_normal(O) * 0.1
    m = model(w1, w2, b, gamma, beta, w3)
    feeds = [{"x": rng.standard_normal((B, T, D)).astype(np.float32)} for _ in range(3)]
    said = []
    metrics, rows = gradients.measure(m, feeds, ["first", "second", "third", "tanh"], passes=2, seed=7, log=said.append)

    # The reference: the same draws of v, the gradients by hand (float64).
    f32 = lambda a: a.astype(np.float32).astype(np.float64)
    w1, w2, w3, b, gamma, beta = map(f32, (w1, w2, w3, b, gamma, beta))
    expected = {k: np.zeros((n, n)) for k, n in (("first", H), ("second", O), ("third", Z))}
    draws = np.random.default_rng(7)
    for _ in range(2):
        for feed in feeds:
            x = feed["x"].astype(np.float64)
            h = x @ w1
            t = np.tanh(h)
            u = t @ w2 + b
            mu, var = u.mean(-1, keepdims=True), u.var(-1, keepdims=True)
            y = (u - mu) / np.sqrt(var + 1e-5) * gamma + beta
            z = x @ w3
            vs = []
            for out in (y, z):
                scale = np.sqrt(out.size / out.shape[-1] / np.sum(out * out))
                vs.append(draws.standard_normal(out.shape) * scale)
            gu = layer_norm_backward(u, gamma, vs[0])
            gh = (gu @ w2.T) * (1 - t * t)
            for k, g in (("first", gh), ("second", gu), ("third", vs[1])):
                g = g.reshape(-1, g.shape[-1])
                expected[k] += g.T @ g
    failures = []
    for k in expected:
        reference = expected[k] / (B * T * len(feeds) * 2)
        if k not in metrics:
            failures.append(f"{k}: no metric")
            continue
        if rows.get(k) != B * T * len(feeds) * 2:
            failures.append(f"{k}: rows {rows.get(k)}, expected {B * T * len(feeds) * 2}")
        error = np.max(np.abs(metrics[k] - reference)) / np.max(np.abs(reference))
        if not error < 1e-4:
            failures.append(f"{k}: metric differs from the reference by {error:.3g} of its scale")
    if "tanh" in metrics or not any("tanh (not a Gemm or MatMul" in line for line in said):
        failures.append(f"tanh: a Tanh node must be left out and said: {said}")
    for f in failures:
        print("FAIL gradients: " + f)
    if failures:
        sys.exit(1)
    print(f"gradients: the output metrics of 3 nodes match the hand-computed gradients (LayerNorm, Tanh, a second output)")


if __name__ == "__main__":
    main()
