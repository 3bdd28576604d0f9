"""Regenerates the safetensors fixtures of the TensorIO tests with the safetensors package:
python3 make_safetensors_fixtures.py  (needs numpy, safetensors, ml_dtypes)"""
import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

base = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 8 - 1.25   # exactly representable in f16 and bf16
tensors = {
    "f16": base.astype(np.float16),
    "bf16": base.astype(ml_dtypes.bfloat16),
    "f32": base.astype(np.float32),
    "f64": base,
    "i64": (np.arange(6) - 2).astype(np.int64).reshape(2, 3),
    "u8": np.arange(5, dtype=np.uint8),
    "scalar": np.array(2.5, dtype=np.float32),
}
save_file(tensors, "mixed.safetensors", metadata={"format": "pt", "source": "make_safetensors_fixtures.py"})
