"""Refits of a compressed all-MiniLM-L6-v2 at the ranks `tensor-compress` chose (an experiment, not a
product path): does an error-compensating or attention-aware objective move the cosine on text of
another domain? Each mode rewrites the factors of every replaced MatMul (its `/svd/0`, `/svd/1`
weights and `/svd/2` bias, as `compress` emits them) and keeps the ranks:

- `whitened`: the factors `compress` itself computes (whitened SVD on the original's inputs, mean
  shift in the bias): a check that this script reproduces the tool (same cosine).
- `asymmetric`: Zhang et al. 2015's asymmetric reconstruction, min E‖W(x − μ) − Ŵ(x̂ − μ̂)‖² with x̂
  the compressed network's input to the layer, blended with the whitened objective by --alpha
  (1 = fully asymmetric): Ŵ = L⁻ᵀ[L⁻¹ K W]_r with L Lᵀ = αΣ_x̂x̂ + (1−α)Σ_xx, K = αΣ_x̂x + (1−α)Σ_xx;
  --sequential refits the layers in graph order, each from the inputs that the layers refitted
  before it give (one onnxruntime pass per group of layers reading the same input), else all
  from one pass over the compressed model.
- `attention`: the query (key) projection's output error weighted by the per-head second moment
  of the keys (queries) that the attention logits q·k multiply it with, keys centred per sentence
  (softmax ignores a shift shared by a sentence's keys): Ŵ = L⁻ᵀ[Lᵀ W R]_r R⁻¹ with R Rᵀ that
  metric; --heads q, k or qk.
- `output`: two-sided whitening, the output error weighted by what the layers after it do with
  it (linearised): the feed-forward input projection's by `(W₂W₂ᵀ) ∘ E[g gᵀ]` (g = GELU'(z), W₂ the
  output projection that reads it), the value projection's by `W_O W_Oᵀ` (the attention's output
  projection; the softmax mixing of tokens ignored), the two projections before a residual
  LayerNorm by `P diag(γ²) P` (P removes the mean, γ the LayerNorm's scale), the query and key
  projections as in `attention` (--heads qk).
- `measured`: two-sided whitening with the end-to-end output metric of each layer that
  `calibrate.sh` measured (NAME.outputMetric in DIR/stats.safetensors): what `compress` does with
  it, here at the ranks of DIR/model.compressed.onnx.

    python Benchmarks/Experiments/minilm_refits.py DIR MODE OUT.onnx [--alpha 1] [--sequential] [--samples 512] [--heads qk]
                                                   [--kinds ffn,value,norm]

DIR holds model.onnx, model.compressed.onnx, calibration.npz (and stats.safetensors for `measured`) (the files of `bash Scripts/main.sh
minilm`; calibration.npz from `python -m tdtools.evaluate.minilm inputs DIR/tokenizer.json --split
calibration --count 512 --out DIR/calibration.npz`). Score with `python -m tdtools.evaluate.minilm
evaluate DIR/tokenizer.json DIR/model.onnx OUT.onnx …` (Python/ on PYTHONPATH).
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

HEADS, HEAD = 12, 32


def activations(model, names, feeds, with_sentences=False):
    """The masked rows of each named value on the feeds (and each row's sentence)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rows, sentences = {n: [] for n in names}, []
    for i in range(0, len(feeds["input_ids"]), 32):
        outputs = s.run(names, {k: v[i:i + 32] for k, v in feeds.items()})
        mask = feeds["attention_mask"][i:i + 32].astype(bool)
        sentences.append(np.repeat(np.arange(len(mask)) + i, mask.sum(1)))
        for n, a in zip(names, outputs):
            rows[n].append(a[mask].astype(np.float64))
    rows = {n: np.concatenate(v) for n, v in rows.items()}
    return (rows, np.concatenate(sentences)) if with_sentences else rows


def damped(c):
    return c + 1e-6 * np.trace(c) / len(c) * np.eye(len(c))


def head_metric(y, sentences, centred):
    """Block-diagonal (per head) second moment of y, centred per sentence when asked."""
    if centred:
        means = np.zeros((sentences.max() + 1, y.shape[1]))
        np.add.at(means, sentences, y)
        y = y - (means / np.maximum(np.bincount(sentences, minlength=len(means)), 1)[:, None])[sentences]
    c = np.zeros((y.shape[1], y.shape[1]))
    for h in range(HEADS):
        block = slice(h * HEAD, (h + 1) * HEAD)
        c[block, block] = y[:, block].T @ y[:, block] / len(y)
    return c


def output_metric(node, x, w, weights, kinds):
    """The Cholesky factor of the `output` mode's metric for `node` (None for query and key, and
    for the kinds of layer not in `kinds`: ffn, value, norm)."""
    layer = "encoder.layer." + node.split(".")[2] + "."
    kind = "ffn" if node.endswith("intermediate.dense") else "value" if node.endswith("self.value") else "norm" if node.endswith("output.dense") else None
    if kind not in kinds:
        return None
    if node.endswith("intermediate.dense"):
        from scipy.special import erf
        z = x @ w + weights[layer + "intermediate.dense.bias"]
        g = 0.5 * (1 + erf(z / np.sqrt(2))) + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
        w2 = weights[layer + "output.dense.weight.T"]
        metric = (w2 @ w2.T) * (g.T @ g / len(g))
    elif node.endswith("attention.self.value"):
        wo = weights[layer + "attention.output.dense.weight.T"]
        metric = wo @ wo.T
    elif node.endswith("output.dense"):
        norm = "attention.output.LayerNorm.weight" if node.endswith("attention.output.dense") else "output.LayerNorm.weight"
        gamma = weights[layer + norm]
        p = np.eye(len(gamma)) - 1 / len(gamma)
        metric = p @ np.diag(gamma * gamma) @ p
    else:
        return None
    return np.linalg.cholesky(damped(metric))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("mode", choices=["whitened", "asymmetric", "attention", "output", "measured"])
    parser.add_argument("output")
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--sequential", action="store_true")
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--heads", default="qk")
    parser.add_argument("--kinds", default="ffn,value,norm", help="output mode: the layers weighted by what follows them")
    args = parser.parse_args()
    original = onnx.load(os.path.join(args.directory, "model.onnx"))
    compressed = onnx.load(os.path.join(args.directory, "model.compressed.onnx"))
    entries = json.loads({p.key: p.value for p in compressed.metadata_props}["tensor_decompositions"])["nodes"]
    nodes = {n.name: n for n in original.graph.node}
    weights = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in original.graph.initializer}
    factors = {i.name: i for i in compressed.graph.initializer}
    archive = np.load(os.path.join(args.directory, "calibration.npz"))
    feeds = {k: archive[k][:args.samples] for k in ("input_ids", "attention_mask", "token_type_ids")}
    producer = {o: k for k, n in enumerate(compressed.graph.node) for o in n.output}
    groups = {}
    for e in entries:
        groups.setdefault(nodes[e["node"]].input[0], []).append(e)
    order = sorted(groups, key=lambda name: producer.get(name, -1))
    x_all, sentences = activations(original, order, feeds, with_sentences=True)
    x_hat_all = activations(compressed, order, feeds) if args.mode == "asymmetric" and not args.sequential else None
    for name in order:
        x = x_all[name]
        mx = x.mean(0)
        xc = x - mx
        sxx = xc.T @ xc / len(x)
        metric, cross, mean_hat = sxx, sxx, mx
        if args.mode == "asymmetric":
            x_hat = activations(compressed, [name], feeds)[name] if args.sequential else x_hat_all[name]
            mh = x_hat.mean(0)
            hc = x_hat - mh
            a = args.alpha
            metric = a * (hc.T @ hc / len(x)) + (1 - a) * sxx
            cross = a * (hc.T @ xc / len(x)) + (1 - a) * sxx
            mean_hat = a * mh + (1 - a) * mx
        lower = np.linalg.cholesky(damped(metric))
        for e in groups[name]:
            w, rank = weights[nodes[e["node"]].input[1]], e["ranks"][0]
            right = None
            if args.mode == "output":
                right = output_metric(e["node"], x, w, weights, args.kinds.split(","))
            if args.mode == "measured":
                from safetensors import safe_open
                with safe_open(os.path.join(args.directory, "stats.safetensors"), framework="numpy") as f:
                    right = np.linalg.cholesky(damped(f.get_tensor(e["node"] + ".outputMetric")))
            if args.mode in ("attention", "output") and right is None:
                partner = None
                if e["node"].endswith("attention.self.query") and "q" in args.heads:
                    partner, centred = e["node"].replace("query", "key"), True
                if e["node"].endswith("attention.self.key") and "k" in args.heads:
                    partner, centred = e["node"].replace("key", "query"), False
                if partner:
                    add = next(n for n in original.graph.node if n.op_type == "Add" and n.input[0] == nodes[partner].output[0])
                    y = x @ weights[nodes[partner].input[1]] + weights[add.input[1]]
                    right = np.linalg.cholesky(damped(head_metric(y, sentences, centred)))
            target = np.linalg.solve(lower, cross @ w) if args.mode == "asymmetric" else lower.T @ w
            if right is not None:
                target = target @ right
            u, s, vt = np.linalg.svd(target, full_matrices=False)
            first = np.linalg.solve(lower.T, u[:, :rank] * s[:rank])
            second = vt[:rank] if right is None else np.linalg.solve(right.T, vt[:rank].T).T
            bias = mx @ w - mean_hat @ (first @ second)
            stack = e["nodes"]
            for tensor, value in ((stack[0] + ".weight", first), (stack[1] + ".weight", second), (stack[2] + ".bias", bias)):
                factors[tensor].CopyFrom(numpy_helper.from_array(value.astype(np.float32), tensor))
    onnx.save(compressed, args.output)
    print(f"minilm_refits: wrote {args.output} ({args.mode}, {len(entries)} layers)")


if __name__ == "__main__":
    main()
