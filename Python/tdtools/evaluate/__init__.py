"""The main jobs' evaluations, each on real text or speech from Debian's packages:

- `ocr`: PP-OCRv4's detector and recognizer on rendered lines of Debian's fortunes (Scripts/main.sh);
- `minilm`: all-MiniLM-L6-v2 exported to ONNX, its calibration inputs and its embeddings' cosine
  (Scripts/main-minilm.sh);
- `silero`: Silero VAD on speech that espeak-ng reads (Scripts/main-silero.sh);
- `fortunes`: the quotations they take their text from.

Run as `python -m tdtools.evaluate.ocr …` with Python/ on PYTHONPATH.
"""
