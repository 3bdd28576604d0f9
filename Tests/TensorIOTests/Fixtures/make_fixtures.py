"""Regenerates the .npy fixtures of the TensorIO tests with NumPy: python3 make_fixtures.py"""
import numpy as np
from numpy.lib import format as npformat

base = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 8 - 1.25   # exactly representable in f2
for code in ["<f2", ">f2", "<f4", ">f4", "<f8", ">f8", "<i2", ">i4", "<i8", "|u1", "|i1", "<u2"]:
    values = base if code[1] == "f" else np.arange(24).reshape(2, 3, 4) - (0 if code[1] == "u" else 7)
    name = code.replace("<", "le_").replace(">", "be_").replace("|", "")
    np.save(f"arange_{name}.npy", values.astype(code))
np.save("arange_fortran_f8.npy", np.asfortranarray(base))
np.save("arange_bool.npy", (np.arange(24).reshape(2, 3, 4) % 3 == 0))
np.save("scalar_f8.npy", np.array(3.5))
np.save("empty_f4.npy", np.zeros((0, 3), dtype=np.float32))
for version in [(2, 0), (3, 0)]:
    with open(f"arange_v{version[0]}_f4.npy", "wb") as f:
        npformat.write_array(f, base.astype("<f4"), version=version)
np.savez("arrays_stored.npz", weight=base.astype("<f4"), bias=np.arange(3, dtype="<f8"))
np.savez_compressed("arrays_deflated.npz", weight=base.astype(">f8"), bias=np.arange(3, dtype="<i4"))
