"""Runs TensorLy 0.10 (and SciPy) on the cases written by decompositions-benchmark --write-inputs DIR
and prints a Markdown table beside the Swift results. Called by Benchmarks/Peers/compare-tensorly.sh
(with Python/ on PYTHONPATH, for tdtools.timing)."""
import json
import os
import platform
import sys

import numpy as np
import scipy
import scipy.linalg
import tensorly as tl
from tensorly.cp_tensor import CPTensor
from tensorly.decomposition import parafac, partial_tucker, tensor_train

from tdtools.timing import median_seconds as medians

directory = sys.argv[1]
ours = json.load(open(os.path.join(directory, "ours.json")))


def median_seconds(body):
    """The Swift side's medianSeconds protocol (tdtools.timing): one warm-up call, then the median
    of 5 timings, each repeating the call enough times to last 0.1 s; with the last result."""
    results = []
    seconds, = medians([lambda: results.append(body())], runs=5, minimum=0.1)
    return seconds, results[-1]


def relative_error(x, approximation):
    return float(np.linalg.norm(x - approximation) / np.linalg.norm(x))


rows = []
for case in ours:
    x = np.load(os.path.join(directory, case["input"]))
    method, ranks = case["method"], case["ranks"]
    theirs, error, label = None, None, "TensorLy"
    if method == "cp":
        stem = case["input"].replace("kernel_", "cp_").replace(".npy", "")
        weights = np.load(os.path.join(directory, stem + "_weights.npy"))
        factors = [np.load(os.path.join(directory, f"{stem}_factor{n}.npy")) for n in range(x.ndim)]
        def run():
            start = CPTensor((weights.copy(), [f.copy() for f in factors]))
            return parafac(x, ranks[0], n_iter_max=case["iterations"], init=start, tol=0, normalize_factors=False)
        theirs, cp = median_seconds(run)
        error = relative_error(x, tl.cp_to_tensor(cp))
    elif method in ("tucker2", "hosvd2"):
        def run():
            return partial_tucker(x, rank=ranks, modes=[0, 1], n_iter_max=case["iterations"], init="svd", tol=0)
        theirs, result = median_seconds(run)
        (core, factors), _ = result
        error = relative_error(x, tl.tenalg.multi_mode_dot(core, factors, modes=[0, 1]))
    elif method == "tt":
        rank = [1] + [ranks[0]] * (x.ndim - 1) + [1]
        theirs, tt = median_seconds(lambda: tensor_train(x, rank=rank))
        error = relative_error(x, tl.tt_to_tensor(tt))
    elif method == "svd":
        label = "SciPy gesdd"
        theirs, (u, s, vt) = median_seconds(lambda: scipy.linalg.svd(x, full_matrices=False, lapack_driver="gesdd"))
        error = relative_error(x, (u * s) @ vt)
    elif method == "evbmf":
        label = "our singular values"
        theirs, error = case["baselineSeconds"], None
    ratio = theirs / case["seconds"] if theirs else float("nan")
    rows.append((case["name"], case["seconds"] * 1e3, theirs * 1e3, label, ratio, case["relativeError"], error))

print(f"# Swift vs TensorLy {tl.__version__} / SciPy {scipy.__version__} / NumPy {np.__version__}, "
      f"{platform.processor() or platform.machine()}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
print("| case | ours ms | other ms | other | other/ours | our rel. error | other rel. error |")
print("|---|---:|---:|---|---:|---:|---:|")
for name, ours_ms, theirs_ms, label, ratio, our_error, their_error in rows:
    their = f"{their_error:.4f}" if their_error is not None else "–"
    our = f"{our_error:.4f}" if our_error else "–"
    print(f"| {name} | {ours_ms:.2f} | {theirs_ms:.2f} | {label} | {ratio:.2f} | {our} | {their} |")
