"""Fine-tuning the factors of a compressed all-MiniLM-L6-v2 by distillation (an experiment, not a
product path): does a short training of the low-rank factors against the original model, on
unlabelled calibration text, move the cosine on text of another domain enough to be worth its
set-up and its time on a 2-core CPU?

    train (onnxruntime-training's on-device API, in its own virtual environment):
    python Benchmarks/Experiments/minilm_finetune.py train ORIGINAL.onnx COMPRESSED.onnx TOKENIZER.json OUT.onnx
           [--steps 300] [--lr 3e-4] [--batch 16] [--hidden-weight 1] [--warmup 0.1] [--threads 2] [--json R.json]
    score (the project's onnxruntime):
    python Benchmarks/Experiments/minilm_finetune.py score TOKENIZER.json ORIGINAL.onnx MODEL.onnx ... [--runs 20] [--json S.json]

`train` makes every initializer of the factor stacks trainable (names containing `/svd/`: each
replaced MatMul's two factors and its bias, as `compress` emits them) and freezes everything else,
ranks and graph unchanged. The student is COMPRESSED, the teacher ORIGINAL, both on the same
quotations of the calibration split (`tdtools.evaluate.minilm`: Debian's fortunes; the docstrings
of the evaluation split are never seen), all of them but a seeded held-out set of --holdout
quotations, padded to 64 tokens and cut per batch to the batch's longest sentence. The loss is

    mean over the batch of (2 − 2 cos(s, t))  +  λ · Σ_masked ‖h − h_t‖² / Σ_masked ‖h_t‖²

with s, t the student's and the teacher's sentence embeddings (unit vectors) and h, h_t their
last hidden states at the unpadded positions (`pool.masked`, the model's hidden states times the
attention mask); λ is --hidden-weight (0: the sentence embeddings alone). AdamW (onnxruntime's
defaults: β 0.9/0.999, weight decay 0.01) with a linear warm-up over --warmup of the steps and a
linear decay to 0. Its artifacts (training, eval and optimizer graphs, checkpoint) are generated
by `onnxruntime.training.artifacts.generate_artifacts` in a scratch folder beside OUT. OUT is
COMPRESSED with the trained values written into its factor initializers: the same graph, node for
node, as the check at the end asserts (onnxruntime-training's own `export_model_for_inferencing`
works too and runs in onnxruntime 1.32, but adds training opsets and LayerNormalization outputs).

Three adjustments that onnxruntime-training 1.19.2 needs, here because the wheel on PyPI is its
CUDA/ORTModule build: `onnxruntime.training.optim` imports torch, which the on-device API does not
use, so the module is stubbed before the import; its gradient of LayerNormalization reads the
node's optional Mean and InvStdDev outputs, so the training copy of the model declares them; and
its optimizer graph comes out with the installed onnx's IR version (14 with onnx 1.23), above the
10 that it loads, so it is set back to the model's.

`score` (in the project's venv, onnxruntime 1.32) reports each model's mean (min) cosine to
ORIGINAL's sentence embeddings on the 600 docstring sentences that `tdtools.evaluate.minilm
evaluate` scores (the same seeded choice), on the training quotations and on the held-out ones,
and latency (one intra-op thread, batch 1 × 64 tokens, median of --runs interleaved rounds).
"""
import argparse
import json
import os
import sys
import time
import types

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Python"))
from tdtools.evaluate import minilm  # noqa: E402

MAX_LENGTH = 64
HIDDEN = "pool.masked"        # last hidden states times the attention mask: zero at padded positions


def quotations(holdout, seed=5):
    """The calibration split cut into training and held-out quotations (a seeded permutation)."""
    texts = minilm.sentences("calibration")
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[holdout:]], [texts[i] for i in order[:holdout]]


def docstrings(count=600):
    """The evaluation sentences that `tdtools.evaluate.minilm evaluate` scores (its seeded choice)."""
    texts = minilm.sentences("evaluation")
    picks = np.random.default_rng(11).choice(len(texts), size=min(count, len(texts)), replace=False)
    return [texts[i] for i in picks]


def factor_names(model):
    return [i.name for i in model.graph.initializer if "/svd/" in i.name]


def with_hidden_output(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.output.append(helper.make_tensor_value_info(HIDDEN, TensorProto.FLOAT, ["batch", "sequence", minilm.HIDDEN]))
    return m


def training_artifacts(compressed, directory):
    """onnxruntime-training's artifacts for the factors of `compressed` (an onnx.ModelProto)."""
    sys.modules.setdefault("onnxruntime.training.optim", types.ModuleType("onnxruntime.training.optim"))
    from onnxruntime.training import artifacts, onnxblock
    from onnxruntime.training.onnxblock import blocks

    class Distillation(onnxblock.Block):
        """sentence_weight · Σ(s − t)² + hidden_weight · Σ(h − h_t)², the weights fed per batch."""

        def __init__(self):
            super().__init__()
            self.terms = [(blocks.Sub(), blocks.Pow(2.0), blocks.ReduceSum(keepdims=False), blocks.Mul()) for _ in range(2)]
            self.add = blocks.Add()

        def build(self, sentence, hidden):
            graph = self.base.graph
            for name, shape in (("target_sentence", ["batch", minilm.HIDDEN]), ("target_hidden", ["batch", "sequence", minilm.HIDDEN]),
                                ("sentence_weight", []), ("hidden_weight", [])):
                graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            parts = [mul(reduce(square(sub(y, target))), weight) for (sub, square, reduce, mul), y, target, weight
                     in zip(self.terms, (sentence, hidden), ("target_sentence", "target_hidden"), ("sentence_weight", "hidden_weight"))]
            return self.add(*parts)

    model = with_hidden_output(compressed)
    for node in model.graph.node:
        if node.op_type == "LayerNormalization" and len(node.output) == 1:
            node.output.extend([node.name + "/mean", node.name + "/inv_std_dev"])
    trainable = factor_names(model)
    frozen = [i.name for i in model.graph.initializer if i.name not in set(trainable)]
    os.makedirs(directory, exist_ok=True)
    # The gradient builder logs every graph transformer at the info level on the process's stderr:
    # those lines go to a log beside the artifacts.
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.path.join(directory, "generate_artifacts.log"), "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            artifacts.generate_artifacts(model, requires_grad=trainable, frozen_params=frozen, loss=Distillation(),
                                         optimizer=artifacts.OptimType.AdamW, artifact_directory=directory)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    path = os.path.join(directory, "optimizer_model.onnx")
    optimizer = onnx.load(path)
    optimizer.ir_version = compressed.ir_version
    onnx.save(optimizer, path)
    return trainable


def batches(feeds, size, rng):
    """Endless shuffled batches (epochs), each cut to its longest sentence (the sentence targets are
    per sentence and stay whole)."""
    n = len(feeds["input_ids"])
    while True:
        order = rng.permutation(n)
        for i in range(0, n - size + 1, size):
            pick = np.sort(order[i:i + size])
            length = int(feeds["attention_mask"][pick].sum(1).max())
            yield {k: v[pick] if k == "target_sentence" else v[pick, :length] for k, v in feeds.items()}


def train(args):
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    sys.modules.setdefault("onnxruntime.training.optim", types.ModuleType("onnxruntime.training.optim"))
    from onnxruntime.training.api import CheckpointState, LinearLRScheduler, Module, Optimizer

    clock = time.perf_counter()
    compressed = onnx.load(args.compressed)
    scratch = args.work or os.path.splitext(args.output)[0] + ".artifacts"
    trainable = training_artifacts(compressed, scratch)
    seconds_artifacts = time.perf_counter() - clock

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    tok = minilm.tokenizer(args.tokenizer, MAX_LENGTH)
    training, held_out = quotations(args.holdout)
    feeds = minilm.encode(tok, training)
    clock = time.perf_counter()
    teacher = ort.InferenceSession(with_hidden_output(onnx.load(args.original)).SerializeToString(), options, providers=["CPUExecutionProvider"])
    targets = {"target_sentence": [], "target_hidden": []}
    for i in range(0, len(training), 32):
        s, h = teacher.run(["sentence_embedding", HIDDEN], {k: v[i:i + 32] for k, v in feeds.items()})
        targets["target_sentence"].append(s)
        targets["target_hidden"].append(h)
    feeds.update({k: np.concatenate(v) for k, v in targets.items()})
    held = minilm.encode(tok, held_out)
    held_targets = teacher.run(["sentence_embedding", HIDDEN], held)
    seconds_teacher = time.perf_counter() - clock

    state = CheckpointState.load_checkpoint(os.path.join(scratch, "checkpoint"))
    module = Module(os.path.join(scratch, "training_model.onnx"), state, os.path.join(scratch, "eval_model.onnx"), session_options=options)
    optimizer = Optimizer(os.path.join(scratch, "optimizer_model.onnx"), module)
    scheduler = LinearLRScheduler(optimizer, int(args.warmup * args.steps), args.steps, args.lr)
    names = module.input_names()
    student = ort.InferenceSession(args.compressed, options, providers=["CPUExecutionProvider"])

    def loss_inputs(batch):
        mask = batch["attention_mask"]
        weights = {"sentence_weight": np.float32(1 / len(mask)),
                   "hidden_weight": np.float32(args.hidden_weight / max(float(np.sum(batch["target_hidden"].astype(np.float64) ** 2)), 1e-12))}
        return [np.asarray(weights[n]) if n in weights else batch[n] for n in names]

    def held_out_cosine():
        """Mean cosine to the teacher on the held-out quotations, through the eval graph's parameters."""
        values = {n: state.parameters[n].data for n in trainable}
        model = onnx.ModelProto()
        model.CopyFrom(compressed)
        for i in model.graph.initializer:
            if i.name in values:
                i.CopyFrom(numpy_helper.from_array(values[i.name], i.name))
        s = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return float(np.mean(np.sum(minilm.embed(s, held) * held_targets[0], axis=1))), model

    log = []
    start = held_out_cosine()[0]
    print(f"minilm_finetune: {len(trainable)} trainable initializers ({sum(state.parameters[n].data.size for n in trainable):,} values), "
          f"{len(training)} training quotations, {len(held_out)} held out (cosine {start:.4f}); artifacts {seconds_artifacts:.1f} s, "
          f"teacher targets {seconds_teacher:.1f} s", flush=True)
    rng = np.random.default_rng(args.seed)
    stream = batches(feeds, args.batch, rng)
    module.train()
    running, seconds_training = [], 0.0          # the held-out checks are not training time
    for step in range(1, args.steps + 1):
        clock = time.perf_counter()
        batch = next(stream)
        loss = float(module(*loss_inputs(batch)))
        optimizer.step()
        scheduler.step()
        module.lazy_reset_grad()
        seconds_training += time.perf_counter() - clock
        running.append(loss)
        if step % args.log_every == 0 or step == args.steps:
            cosine = held_out_cosine()[0]
            log.append({"step": step, "loss": float(np.mean(running)), "heldOutCosine": cosine, "seconds": seconds_training})
            print(f"  step {step}: loss {np.mean(running):.4f}, held-out cosine {cosine:.4f}, {seconds_training:.0f} s", flush=True)
            running = []
    cosine, model = held_out_cosine()
    onnx.save(model, args.output)
    check_same_graph(compressed, onnx.load(args.output), trainable)
    result = {"original": args.original, "compressed": args.compressed, "output": args.output, "steps": args.steps, "lr": args.lr,
              "batch": args.batch, "hiddenWeight": args.hidden_weight, "warmup": args.warmup, "threads": args.threads, "seed": args.seed,
              "trainingQuotations": len(training), "heldOutQuotations": len(held_out), "trainableValues": int(sum(state.parameters[n].data.size for n in trainable)),
              "secondsArtifacts": seconds_artifacts, "secondsTeacher": seconds_teacher, "secondsTraining": seconds_training,
              "secondsPerStep": seconds_training / args.steps, "heldOutCosineBefore": start, "heldOutCosineAfter": cosine, "log": log}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(f"minilm_finetune: wrote {args.output}: {args.steps} steps in {seconds_training:.0f} s ({seconds_training / args.steps:.2f} s a step, "
          f"{args.threads} threads); held-out quotations {start:.4f} → {cosine:.4f}; the graph is the compressed one's, node for node")


def check_same_graph(a, b, trainable):
    """The two models are equal apart from the values of the trainable initializers."""
    def stripped(m):
        c = onnx.ModelProto()
        c.CopyFrom(m)
        del c.graph.initializer[:]
        return c.SerializeToString()
    if stripped(a) != stripped(b):
        sys.exit("minilm_finetune: the fine-tuned graph differs from the compressed one")
    left = {i.name: i for i in a.graph.initializer}
    right = {i.name: i for i in b.graph.initializer}
    if list(left) != list(right):
        sys.exit("minilm_finetune: the initializers differ in names or order")
    for name in left:
        x, y = numpy_helper.to_array(left[name]), numpy_helper.to_array(right[name])
        if x.shape != y.shape or x.dtype != y.dtype or (name not in trainable and not np.array_equal(x, y)):
            sys.exit(f"minilm_finetune: initializer {name} differs outside the trained values")


def score(args):
    from tdtools.session import session
    from tdtools.tables import print_table
    from tdtools.timing import median_seconds
    tok = minilm.tokenizer(args.tokenizer, MAX_LENGTH)
    training, held_out = quotations(args.holdout)
    texts = {"docstrings": docstrings(args.count), "training quotations": training, "held-out quotations": held_out}
    feeds = {k: minilm.encode(tok, v) for k, v in texts.items()}
    sessions = [session(p) for p in args.models]
    base = {k: minilm.embed(sessions[0], f) for k, f in feeds.items()}
    single = {k: v[:1] for k, v in feeds["docstrings"].items()}
    latencies = median_seconds([lambda s=s: s.run(None, single) for s in sessions], args.runs)
    results = []
    for path, s, latency in zip(args.models, sessions, latencies):
        r = {"model": path, "latency": latency}
        for k, f in feeds.items():
            cos = np.sum(minilm.embed(s, f) * base[k], axis=1)
            r[k] = {"meanCosine": float(cos.mean()), "minCosine": float(cos.min()), "sentences": len(cos)}
        results.append(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "models": results}, f, indent=2)
    print(f"\nall-MiniLM-L6-v2: cosine to the original's sentence embeddings, mean (min); {len(texts['docstrings'])} docstring sentences, "
          f"{len(training)} training and {len(held_out)} held-out quotations; onnxruntime, 1 intra-op thread, batch 1 × {MAX_LENGTH} tokens")
    rows = [[os.path.basename(r["model"])] + [f"{r[k]['meanCosine']:.4f} ({r[k]['minCosine']:.4f})" for k in texts]
            + [f"{1e3 * r['latency']:.2f}"] for r in results]
    print_table(["model"] + list(texts) + ["latency ms"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("original")
    t.add_argument("compressed")
    t.add_argument("tokenizer")
    t.add_argument("output")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--hidden-weight", type=float, default=1.0)
    t.add_argument("--warmup", type=float, default=0.1)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--work")
    t.add_argument("--json")
    s = sub.add_parser("score")
    s.add_argument("tokenizer")
    s.add_argument("models", nargs="+")
    s.add_argument("--count", type=int, default=600)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--json")
    for p in (t, s):
        p.add_argument("--holdout", type=int, default=154)
    args = parser.parse_args()
    {"train": train, "score": score}[args.command](args)


if __name__ == "__main__":
    main()
