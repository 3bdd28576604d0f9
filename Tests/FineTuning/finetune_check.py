"""Checks what Scripts/finetune.sh wrote in DIR (Tests/FineTuning/test-finetune.sh runs it), in the
project's onnxruntime:
- finetune.json: the held-out quotations' mean cosine to the original rose by at least 0.02;
- model.finetuned.onnx passes onnx's full checker and equals model.compressed.onnx apart from the
  values of the initializers whose names hold `/svd/` (the factors and their biases:
  tdtools.finetune.check_same_graph, which exits with the difference), and some of those differ;
- on 32 held-out quotations, its embeddings are finite, of unit norm, and closer to the
  original's than the compressed model's (mean cosine).

    PYTHONPATH=Python python Tests/FineTuning/finetune_check.py DIR
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from tdtools import finetune
from tdtools.evaluate import minilm
from tdtools.session import session


def main():
    work = sys.argv[1]
    failures = []
    report = json.load(open(os.path.join(work, "finetune.json")))
    before, after = report["heldOutCosineBefore"], report["heldOutCosineAfter"]
    if not after >= before + 0.02:
        failures.append(f"held-out cosine {before:.4f} → {after:.4f}: not up by 0.02")
    compressed = onnx.load(os.path.join(work, "model.compressed.onnx"))
    tuned_path = os.path.join(work, "model.finetuned.onnx")
    tuned = onnx.load(tuned_path)
    onnx.checker.check_model(tuned_path, full_check=True)
    # The same check as train's own (it exits with the difference), from this side; then some factor moved.
    factors = finetune.factor_names(compressed)
    finetune.check_same_graph(compressed, tuned, factors)
    old = {t.name: numpy_helper.to_array(t) for t in compressed.graph.initializer if t.name in factors}
    if all(np.array_equal(old[t.name], numpy_helper.to_array(t)) for t in tuned.graph.initializer if t.name in old):
        failures.append(f"none of the {len(factors)} factor initializers changed")
    _, held_out = finetune.quotations(report["heldOutQuotations"])
    tok = minilm.tokenizer(os.path.join(work, "tokenizer.json"), finetune.MAX_LENGTH)
    feeds = minilm.encode(tok, held_out[:32])
    embeddings = {name: minilm.embed(session(os.path.join(work, f"model{name}.onnx")), feeds) for name in ("", ".compressed", ".finetuned")}
    e = embeddings[".finetuned"]
    if not np.all(np.isfinite(e)) or not np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4):
        failures.append("the fine-tuned embeddings are not finite unit vectors")
    cosine = {k: float(np.mean(np.sum(v * embeddings[""], axis=1))) for k, v in embeddings.items() if k}
    if not cosine[".finetuned"] > cosine[".compressed"]:
        failures.append(f"on 32 held-out quotations the fine-tuned model's cosine {cosine['.finetuned']:.4f} is not above the compressed one's {cosine['.compressed']:.4f}")
    for f in failures:
        print(f"FAIL fine-tuning: {f}")
    print(f"fine-tuning: held-out cosine {before:.4f} → {after:.4f} in {report['steps']} steps; on 32 of them, compressed "
          f"{cosine['.compressed']:.4f}, fine-tuned {cosine['.finetuned']:.4f}: " + (f"{len(failures)} checks failed" if failures else "every check passed"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
