"""tdtools: the Python side of TensorDecompositions, for what users run beside `tensor-compress`.

- `calibrate`: input statistics of an ONNX model's compressible nodes from onnxruntime runs
  (`compress --statistics`); `statistics`: that file's layout, read and written;
- `sensitivity`: end-to-end sensitivities of the nodes (`compress --layer-weights`);
- `compare`: two ONNX models' outputs and latency in onnxruntime;
- `quantize`: INT8 after (or instead of) low-rank compression, by onnxruntime.quantization;
- `session`, `timing`, `tables`, `tool`: the one onnxruntime session, the one timing loop, tables,
  and the `tensor-compress` calls that the others share;
- `evaluate`: the main jobs' evaluations (PP-OCRv4, all-MiniLM-L6-v2, Silero VAD, ddddocr);
- `finetune`: the distillation of MiniLM's factors, the MiniLM job's last step (its `train` subcommand
  runs in the onnxruntime-training environment of Scripts/finetune.sh, `score` in the project's).

Run a module with Python/ on PYTHONPATH, e.g. `PYTHONPATH=Python python -m tdtools.calibrate …`,
in the virtual environment of Scripts/onnx-venv.sh (Scripts/requirements-onnx.txt); the shell
entry points in Scripts/ (calibrate.sh, sensitivity.sh, compare-onnx.sh) do both.
"""
