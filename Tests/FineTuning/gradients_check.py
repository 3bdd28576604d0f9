"""tdtools.gradients against a NumPy reference (run in the training environment, which has
onnxruntime-training): a small graph x → MatMul W1 ("first") → Tanh → MatMul W2 ("second") → Add b
→ LayerNormalization → y, and a second output z = MatMul(x, W3) ("third", read by nothing else).
For the projection v that the module draws (the same seeded generator, replayed here), the gradient
at each probed output is computed by hand (the LayerNorm's backward included), and the metrics
E[g gᵀ] must agree to 1e-4 of their scale; a node that is not a Gemm/MatMul is left out and said.
A second graph has what onnxruntime-training does not take as it is: unnamed nodes (a Gemm with
transB, a MatMul), an inference-mode BatchNormalization (its running statistics, Constant nodes, not the
batch's, must be in the gradient), a Dropout, a LayerNormalization that declares empty optional outputs,
an initializer also listed as a graph input, an int64 output first and a float output without a
shape that is also a probed node's output; feeds of different shapes are refused.

    python Tests/FineTuning/gradients_check.py     (Python/ on PYTHONPATH)
"""
import sys

import numpy as np
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


def second_graph():
    rng = np.random.default_rng(4)
    n, d, h, o = 4, 5, 6, 3
    wg, c, w2 = rng.standard_normal((h, d)), rng.standard_normal(h) * 0.1, rng.standard_normal((h, o))
    scale, shift, mean, var = rng.uniform(0.5, 2, h), rng.standard_normal(h) * 0.1, rng.standard_normal(h), rng.uniform(0.5, 3, h)
    gamma, beta = rng.uniform(0.5, 2, h), rng.standard_normal(h) * 0.1
    arrays = (("Wg", wg), ("c", c), ("W2", w2), ("scale", scale), ("shift", shift), ("mean", mean), ("var", var), ("gamma", gamma), ("beta", beta))
    # The BatchNormalization's running statistics as Constant nodes, as paddle2onnx writes them.
    init = [numpy_helper.from_array(a.astype(np.float32), k) for k, a in arrays if k not in ("mean", "var")]
    nodes = [helper.make_node("Constant", [], [k], name=k, value=numpy_helper.from_array(a.astype(np.float32), k)) for k, a in arrays if k in ("mean", "var")]
    nodes += [helper.make_node("Gemm", ["x", "Wg", "c"], ["h"], transB=1),
             helper.make_node("BatchNormalization", ["h", "scale", "shift", "mean", "var"], ["hb"], name="bn", epsilon=1e-3),
             helper.make_node("Dropout", ["hb"], ["hd"], name="drop"),
             helper.make_node("LayerNormalization", ["hd", "gamma", "beta"], ["q", "", ""], name="ln2", axis=-1, epsilon=1e-5),
             helper.make_node("MatMul", ["q", "W2"], ["r"]),
             helper.make_node("ArgMax", ["r"], ["idx"], name="argmax", axis=1)]
    graph = helper.make_graph(nodes, "g2", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d]),
                                            helper.make_tensor_value_info("Wg", TensorProto.FLOAT, [h, d])],
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, None),
                               helper.make_tensor_value_info("r", TensorProto.FLOAT, None)], init)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    feeds = [{"x": rng.standard_normal((n, d)).astype(np.float32)} for _ in range(2)]
    failures = []
    try:
        gradients.measure(m, feeds + [{"x": feeds[0]["x"][:2]}], ["Gemm_2"], passes=1)
        failures.append("feeds of different shapes were taken")
    except ValueError as error:
        if "shapes of the first" not in str(error):
            failures.append(f"feeds of different shapes: {error}")
    metrics, rows = gradients.measure(m, feeds, ["Gemm_2", "MatMul_6"], passes=3, seed=9, log=lambda line: None)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)
    wg, c, w2, scale, shift, mean, var, gamma, beta = map(f32, (wg, c, w2, scale, shift, mean, var, gamma, beta))
    a = scale / np.sqrt(var + 1e-3)
    expected = {"Gemm_2": np.zeros((h, h)), "MatMul_6": np.zeros((o, o))}
    draws = np.random.default_rng(9)
    for _ in range(3):
        for feed in feeds:
            x = feed["x"].astype(np.float64)
            hb = (x @ wg.T + c) * a + (shift - mean * a)
            mu, sigma2 = hb.mean(-1, keepdims=True), hb.var(-1, keepdims=True)
            q = (hb - mu) / np.sqrt(sigma2 + 1e-5) * gamma + beta
            r = q @ w2
            gr = draws.standard_normal(r.shape) * np.sqrt(r.shape[0] / np.sum(r * r))
            gh = layer_norm_backward(hb, gamma, gr @ w2.T) * a
            expected["Gemm_2"] += gh.T @ gh
            expected["MatMul_6"] += gr.T @ gr
    for k, total in expected.items():
        if k not in metrics or rows.get(k) != n * len(feeds) * 3:
            failures.append(f"second graph, {k}: no metric or rows {rows.get(k)}")
            continue
        reference = total / (n * len(feeds) * 3)
        error = np.max(np.abs(metrics[k] - reference)) / np.max(np.abs(reference))
        if not error < 1e-4:
            failures.append(f"second graph, {k}: metric differs from the reference by {error:.3g} of its scale "
                            "(a BatchNormalization in training mode would use the batch's statistics)")
    return failures


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
    failures = second_graph()
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
    print("gradients: the output metrics of 5 nodes in 2 graphs match the hand-computed gradients (LayerNorm, Tanh, a second output; "
          "inference BatchNormalization, Dropout, unnamed Gemm with transB, an int64 output first); feeds of other shapes refused")


if __name__ == "__main__":
    main()
