"""TensorLy 0.10's randomized SVD (its defaults) on a 4096×11008 matrix built like svd-route-benchmark's power-law case,
one thread; called by Benchmarks/Peers/compare-svd-route.sh."""
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import time
import numpy as np
import tensorly as tl
from tensorly.tenalg.svd import svd_interface
rng = np.random.default_rng(1)
m, n, k, r = 4096, 11008, 512, 1024
left = rng.standard_normal((m, r), dtype=np.float32) * (np.arange(1, r + 1) ** -0.6).astype(np.float32)
a = left @ rng.standard_normal((r, n), dtype=np.float32) + np.float32(0.5 * np.sqrt(r / n)) * rng.standard_normal((m, n), dtype=np.float32)
times = []
for _ in range(3):
    t = time.perf_counter(); u, s, v = svd_interface(a, n_eigenvecs=k, method="randomized_svd"); times.append(time.perf_counter() - t)
err = np.linalg.norm(a - (u * s) @ v) / np.linalg.norm(a)
print(f"TensorLy randomized_svd 4096x11008 k=512: median {sorted(times)[1]:.3f} s, relative error {err:.5f}, numpy {np.__version__}")
