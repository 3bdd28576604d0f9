"""The one onnxruntime session of every script: CPU, sequential execution, a set number of
intra-op threads, every graph optimisation. Timings, calibration, sensitivities, evaluations and
the conformance tests all run their models through it, so that they run the same way."""
import onnxruntime as ort


def session(model, threads=1, profile=None, log_level=3):
    """An onnxruntime session of `model` (a path, serialized bytes, or an onnx.ModelProto) on the CPU.

    Sequential execution (one inter-op thread), `threads` intra-op threads (0: onnxruntime's
    default, one per physical core), onnxruntime's full graph optimisation (its default level,
    stated here so that it is the same everywhere), and messages below `log_level` (3: errors)
    left out. With `profile` (a file-name prefix) onnxruntime's profiler traces every run
    (`session.end_profiling()` returns the trace's path).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = log_level
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = profile
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
