"""The calibration statistics file that `tensor-compress compress --statistics` reads: its layout,
written and read through the `safetensors` package. Documentation/StatisticsFormat.md describes the
same layout; the Swift reader is Sources/ModelCompression/Options/CalibrationStatistics.swift.

A safetensors file with, for every layer NAME (an ONNX node's name as `tensor-compress inspect`
lists it, or a state dict layer's name without `.weight`), three float64 tensors:

    NAME.count  [1]        input vectors accumulated (rows, or im2col patches per group)
    NAME.mean   [g, d]     the mean input vector of each of the g groups
    NAME.gram   [g, d, d]  the second moment E[x xᵀ] of each group

and optionally, for a layer with those three:

    NAME.sensitivity [1]   its end-to-end sensitivity: damage at the network's outputs per unit of
                           the layer's normalised output error (tdtools.sensitivity), the weight of
                           its error in `compress --budget`'s greedy allocation unless
                           --layer-weights is given
    NAME.outputMetric [m, m] for a Gemm or MatMul with m output features: the end-to-end metric
                           of its output error, E[g gᵀ] for the gradient g at its output of a
                           random projection of the network's outputs (tdtools.gradients); the
                           factors of `compress --statistics` minimise the output error in it

and `__metadata__` {"format": "input-statistics", "version": "1"} (optional for readers: files
written before it, or by other writers, have none), plus "sensitivity" (how the sensitivities
were measured) when the file has any, and "weighting" when some layers' input vectors were
weighted (calibrate --ctc-output): then their mean and second moment are weighted averages
(Σ w x / Σ w, Σ w x xᵀ / Σ w) and NAME.count is still the number of vectors; "outputMetric"
says how the output metrics were measured, or why the file has none.
"""
import os
from dataclasses import dataclass

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

COUNT, MEAN, GRAM, SENSITIVITY, OUTPUT_METRIC = ".count", ".mean", ".gram", ".sensitivity", ".outputMetric"
SUFFIXES = (COUNT, MEAN, GRAM)
DTYPE = np.float64
METADATA = {"format": "input-statistics", "version": "1"}


class StatisticsError(ValueError):
    """A file that does not follow the layout, with the names and shapes."""


@dataclass
class LayerStatistics:
    """One layer's statistics: the count of input vectors, the means [g, d] and the second moments
    [g, d, d]; its end-to-end sensitivity and output metric [m, m] when measured (None when not)."""

    count: float
    mean: np.ndarray
    gram: np.ndarray
    sensitivity: float | None = None
    output_metric: np.ndarray | None = None

    @property
    def groups(self):
        return self.mean.shape[0]

    @property
    def dimension(self):
        return self.mean.shape[1]


def tensors(layers):
    """The file's tensors of `layers` ({name: LayerStatistics}), float64 and contiguous."""
    result = {}
    for name, s in layers.items():
        mean, gram = np.asarray(s.mean, dtype=DTYPE), np.asarray(s.gram, dtype=DTYPE)
        if mean.ndim != 2 or gram.shape != mean.shape + mean.shape[1:]:
            raise StatisticsError(f"{name}: mean {list(mean.shape)} and gram {list(gram.shape)} must be [g, d] and [g, d, d]")
        result[name + COUNT] = np.array([s.count], dtype=DTYPE)
        result[name + MEAN] = np.ascontiguousarray(mean)
        result[name + GRAM] = np.ascontiguousarray(gram)
        if s.sensitivity is not None:
            if not (np.isfinite(s.sensitivity) and s.sensitivity >= 0):
                raise StatisticsError(f"{name}: sensitivity {s.sensitivity} must be finite and non-negative")
            result[name + SENSITIVITY] = np.array([s.sensitivity], dtype=DTYPE)
        if s.output_metric is not None:
            metric = np.asarray(s.output_metric, dtype=DTYPE)
            if metric.ndim != 2 or metric.shape[0] != metric.shape[1] or not metric.size or not np.all(np.isfinite(metric)):
                raise StatisticsError(f"{name}: output metric {list(metric.shape)} must be a square matrix of finite values")
            result[name + OUTPUT_METRIC] = np.ascontiguousarray(metric)
    return result


def write(path, layers, sensitivity=None, weighting=None, output_metric=None):
    """Writes the statistics of `layers` ({name: LayerStatistics}) to `path` atomically (a `.part`
    file beside it, renamed when complete). `sensitivity`, a description of how the layers'
    sensitivities were measured, goes into `__metadata__["sensitivity"]`; `weighting`, one of how
    some layers' input vectors were weighted, into `__metadata__["weighting"]`; `output_metric`,
    one of how the output metrics were measured (or why there are none), into
    `__metadata__["outputMetric"]`."""
    temporary = path + ".part"
    described = {key: value for key, value in (("sensitivity", sensitivity), ("weighting", weighting), ("outputMetric", output_metric))
                 if value is not None}
    try:
        save_file(tensors(layers), temporary, metadata={**METADATA, **described})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def metadata(path):
    """The file's `__metadata__` ({} when it has none)."""
    with safe_open(path, framework="numpy") as f:
        return f.metadata() or {}


def read(path):
    """The statistics in `path` by layer name ({name: LayerStatistics}), checked as the Swift reader
    checks them: each NAME.count has its NAME.mean and NAME.gram, of shapes [g, d] and [g, d, d],
    every tensor float64; a NAME.sensitivity is [1], finite and non-negative, a NAME.outputMetric
    square and finite, and each belongs to a layer with statistics; a file whose metadata names another format is refused.

    Raises StatisticsError.
    """
    with safe_open(path, framework="numpy") as f:
        found = f.metadata() or {}
        if "format" in found and found["format"] != METADATA["format"]:
            raise StatisticsError(f"{path}: __metadata__ format {found['format']!r}, not {METADATA['format']!r}")
        names = set(f.keys())
        layers = {}
        for key in sorted(names):
            if not key.endswith(COUNT):
                continue
            name = key[: -len(COUNT)]
            if name + MEAN not in names or name + GRAM not in names:
                raise StatisticsError(f"{name}: {name}{COUNT} without {name}{MEAN} and {name}{GRAM}")
            count, mean, gram = (f.get_tensor(name + suffix) for suffix in SUFFIXES)
            for suffix, array in zip(SUFFIXES, (count, mean, gram)):
                if array.dtype != DTYPE:
                    raise StatisticsError(f"{name}{suffix} is {array.dtype}, not float64")
            if count.shape != (1,) or mean.ndim != 2 or gram.shape != mean.shape + mean.shape[1:]:
                raise StatisticsError(f"{name}: count {list(count.shape)}, mean {list(mean.shape)} and gram {list(gram.shape)} "
                                      "must be [1], [g, d] and [g, d, d]")
            layers[name] = LayerStatistics(float(count[0]), mean, gram)
        # The optional tensors of a layer with statistics: (suffix, what it is, whether a value is
        # valid, what a valid one must be, the attribute it sets, the value it holds).
        optional = ((SENSITIVITY, "a sensitivity", lambda v: v.shape == (1,) and np.isfinite(v[0]) and v[0] >= 0,
                     "float64 [1], finite and non-negative", "sensitivity", lambda v: float(v[0])),
                    (OUTPUT_METRIC, "an output metric", lambda v: v.ndim == 2 and v.shape[0] == v.shape[1] and v.size and np.all(np.isfinite(v)),
                     "a float64 square matrix of finite values", "output_metric", lambda v: v))
        for suffix, what, valid, requirement, attribute, held in optional:
            for key in sorted(k for k in names if k.endswith(suffix)):
                name = key[: -len(suffix)]
                if name not in layers:
                    raise StatisticsError(f"{key} without {name}{COUNT}: {what} belongs to a layer with statistics")
                value = f.get_tensor(key)
                if value.dtype != DTYPE or not valid(value):
                    shown = f" {value.tolist()}" if value.size <= 3 else ""
                    raise StatisticsError(f"{key}: {value.dtype} {list(value.shape)}{shown}; must be {requirement}")
                setattr(layers[name], attribute, held(value))
    return layers
