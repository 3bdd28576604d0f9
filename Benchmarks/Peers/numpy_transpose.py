"""NumPy baseline for tensor-ops-benchmark's `transposed` rows: reversing the axes and making the result
contiguous, median of 5 × 20 calls. Run with any Python that has NumPy, e.g. the TensorLy venv:
    OPENBLAS_NUM_THREADS=1 .cache/venv-tensorly/bin/python Benchmarks/Peers/numpy_transpose.py"""
import numpy as np, timeit, statistics
for shape in [(256, 256, 3, 3), (64, 64, 64), (128, 128, 128), (32, 32, 32, 32)]:
    for dt in (np.float32, np.float64):
        x = np.random.randn(*shape).astype(dt)
        perm = tuple(reversed(range(len(shape))))
        t = timeit.repeat(lambda: np.ascontiguousarray(x.transpose(perm)), number=20, repeat=5)
        print("×".join(map(str, shape)), dt.__name__, "%.3f ms" % (statistics.median(t) / 20 * 1e3))
