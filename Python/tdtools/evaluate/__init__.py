"""The main jobs' evaluations, each on real text or speech written by others, from packages:

- `ocr`: PP-OCRv4's detector and recognizer on rendered lines of Debian's fortunes (Scripts/main.sh);
- `minilm`: all-MiniLM-L6-v2 exported to ONNX, its calibration inputs (fortunes) and its
  embeddings' cosine on another domain (the docstrings) (Scripts/main-minilm.sh);
- `silero`: Silero VAD on speech that espeak-ng reads (Scripts/main-silero.sh);
- `captcha`: ddddocr's captcha recogniser on captchas rendered from words of the fortunes
  (calibration) and of the docstrings (evaluation) (Scripts/main-ddddocr.sh);
- `fortunes`: the quotations they take most of their text from (Debian's fortunes);
- `docstrings`: sentences of the Python standard library's docstrings, MiniLM's evaluation text.

Run as `python -m tdtools.evaluate.ocr …` with Python/ on PYTHONPATH.
"""
