"""ddddocr's captcha recogniser (common.onnx of the PyPI wheel ddddocr 1.6.1: a CNN, a
bidirectional LSTM, a Gemm to 8210 classes, CTC) on captchas rendered from text written by others.

    python -m tdtools.evaluate.captcha inputs --out DIR [--split calibration] [--count 64]
    python -m tdtools.evaluate.captcha evaluate --charset CHARSET.json ORIGINAL.onnx OTHER.onnx ... [--count 200]
                                       [--timed 40] [--runs 5] [--reports R.json ...] [--json OUT.json]

Text and style (the evaluation is of another domain, in another font, with other noise):
- calibration: words of the quotations in Debian's fortunes (files "literature", "wisdom",
  "people", "education"), in DejaVuSans-Bold with 40 coloured dots and one line across;
- evaluation: words of the Python standard library's docstrings (`tdtools.evaluate.docstrings`,
  MiniLM's evaluation text), in DejaVuSerif with two lines across and a sine-wave warp.
Each word is lowercased and reduced to [a-z0-9]; words of 4 to 6 characters are kept as they are,
longer ones give a piece of 4 to 6 characters at a random offset (the model reads 4-6 character
captchas; it writes letters in either case, so the text is lowercase, and an upper-case answer
counts as an error). Each character is drawn in its own dark colour at its own size (38-45 px)
and angle (±20°), overlapping its neighbours, on a light background of height 60, blurred
slightly (Gaussian, radius 0.6).

The model's input is made as ddddocr 1.6.1 makes it (reproduced here, not imported): the image
resized to height 64 keeping its aspect (width int(w·64/h), Lanczos), converted to grayscale,
scaled to [0, 1]; `input1` [1, 1, 64, width] (batch fixed at 1, width symbolic). Decoding is CTC
greedy: the argmax class per time step (the output is [steps, 1, 8210]), repeats merged,
class 0 (blank) dropped, classes mapped through the charset (ddddocr's `CHARSET_BETA`, which
Scripts/main-ddddocr.sh extracts from the wheel into charset.json).

- inputs: a directory of .npz feeds, one captcha each ({"input1": [1, 1, 64, width]}), the format
  of Scripts/calibrate.sh and `tdtools.quantize --calibration` for inputs whose widths differ.
- evaluate: every model runs every evaluation captcha once in onnxruntime; per model the
  exact-match rate and the CER (edits / characters of the reference) against the rendered text
  and against the original's (the first model's) decoded strings. Latency: one intra-op
  thread, sequential; for each of the first --timed captchas the median of --runs runs per
  model after a warm-up (the models interleaved, tdtools.timing), then the median over those
  captchas. With --reports (the `compress --report` JSON of the models after the first, in
  order) the whole model's MACs and parameters before and after and the replaced layers.
"""
import argparse
import functools
import json
import os
import re
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..session import session
from ..tables import print_table
from ..timing import median_seconds
from .docstrings import sentences
from .fortunes import quotations
from .ocr import levenshtein

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
# split: (text source, font, noise: dots, lines, wave amplitude in pixels, seed)
STYLES = {"calibration": ("fortunes", "DejaVuSans-Bold.ttf", 40, 1, 0.0, 5),
          "evaluation": ("docstrings", "DejaVuSerif.ttf", 0, 2, 3.0, 11)}
FORTUNE_FILES = ["literature", "wisdom", "people", "education"]
HEIGHT, INPUT_HEIGHT = 60, 64


def words(split, count, rng):
    """`count` strings of 4-6 characters [a-z0-9] cut from the words of the split's text, shuffled."""
    source = STYLES[split][0]
    texts = quotations(FORTUNE_FILES) if source == "fortunes" else sentences()
    result = []
    for text in texts:
        for word in text.split():
            word = re.sub(r"[^a-z0-9]", "", word.lower())
            if len(word) < 4:
                continue
            if len(word) > 6:
                k = int(rng.integers(4, 7))
                start = int(rng.integers(0, len(word) - k + 1))
                word = word[start:start + k]
            result.append(word)
    rng.shuffle(result)
    if len(result) < count:
        sys.exit(f"captcha: the {split} text gives {len(result)} strings, fewer than {count}")
    return result[:count]


@functools.lru_cache(maxsize=None)
def face(font, size):
    return ImageFont.truetype(os.path.join(FONT_DIR, font), size)


def colour(rng, low, high):
    return tuple(int(v) for v in rng.integers(low, high, 3))


def captcha(text, split, rng):
    """A captcha of `text` in the split's font and noise (an RGB image of height 60)."""
    _, font, dots, lines, wave, _ = STYLES[split]
    glyphs = []
    for ch in text:
        typeface = face(font, int(rng.integers(38, 46)))
        left, top, right, bottom = typeface.getbbox(ch)
        glyph = Image.new("L", (right - left + 6, bottom - top + 6), 0)
        ImageDraw.Draw(glyph).text((3 - left, 3 - top), ch, font=typeface, fill=255)
        glyphs.append(glyph.rotate(float(rng.uniform(-20, 20)), expand=True, resample=Image.BICUBIC))
    width = sum(g.size[0] for g in glyphs) - 4 * len(glyphs) + 24
    image = Image.new("RGB", (width, HEIGHT), colour(rng, 215, 256))
    draw = ImageDraw.Draw(image)
    x = 12
    for glyph in glyphs:
        y = (HEIGHT - glyph.size[1]) // 2 + int(rng.integers(-5, 6))
        image.paste(Image.new("RGB", glyph.size, colour(rng, 0, 150)), (x, y), glyph)
        x += glyph.size[0] - 4 - int(rng.integers(0, 4))
    for _ in range(dots):
        cx, cy, r = int(rng.integers(0, width)), int(rng.integers(0, HEIGHT)), int(rng.integers(1, 3))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour(rng, 0, 200))
    for _ in range(lines):
        ends = [(int(rng.integers(0, width // 4)), int(rng.integers(10, HEIGHT - 10))),
                (int(rng.integers(3 * width // 4, width)), int(rng.integers(10, HEIGHT - 10)))]
        draw.line(ends, fill=colour(rng, 0, 150), width=int(rng.integers(1, 3)))
    if wave:
        pixels = np.asarray(image)
        phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(40, 80)
        shifts = np.round(wave * np.sin(phase + 2 * np.pi * np.arange(width) / period)).astype(int)
        image = Image.fromarray(np.stack([np.roll(pixels[:, c], s, axis=0) for c, s in enumerate(shifts)], axis=1))
    return image.filter(ImageFilter.GaussianBlur(0.6))


def samples(split, count):
    """[(text, captcha)] of the split, the same for the same count."""
    rng = np.random.default_rng(STYLES[split][5])
    return [(text, captcha(text, split, rng)) for text in words(split, count, rng)]


def model_input(image):
    """ddddocr 1.6.1's preprocessing: height 64 keeping the aspect (Lanczos), grayscale, [0, 1]; [1, 1, 64, width]."""
    width = int(image.size[0] * (INPUT_HEIGHT / image.size[1]))
    gray = image.resize((width, INPUT_HEIGHT), Image.LANCZOS).convert("L")
    return (np.asarray(gray, dtype=np.float32) / 255.0)[np.newaxis, np.newaxis]


def ctc_decode(output, charset):
    """CTC greedy decoding of one output ([steps, 1, classes] or [1, steps, classes]): argmax, repeats merged, blank (0) dropped."""
    logits = output[:, 0] if output.shape[1] == 1 else output[0]
    result, last = [], None
    for k in logits.argmax(axis=-1):
        k = int(k)
        if k != last and k != 0 and k < len(charset):
            result.append(charset[k])
        last = k
    return "".join(result)


def error_rate(predictions, references):
    """(exact-match rate, CER: edits over the references' characters)."""
    exact = sum(p == r for p, r in zip(predictions, references)) / len(references)
    edits = sum(levenshtein(p, r) for p, r in zip(predictions, references))
    return exact, edits / max(1, sum(len(r) for r in references))


def evaluate(paths, charset, count, timed, runs):
    data = samples("evaluation", count)
    texts = [t for t, _ in data]
    inputs = [model_input(image) for _, image in data]
    sessions = [session(p) for p in paths]
    names = [s.get_inputs()[0].name for s in sessions]
    decoded = [[ctc_decode(s.run(None, {n: x})[0], charset) for x in inputs] for s, n in zip(sessions, names)]
    per_image = [median_seconds([lambda s=s, n=n: s.run(None, {n: x}) for s, n in zip(sessions, names)], runs) for x in inputs[:timed]]
    latencies = np.median(np.array(per_image), axis=0)
    results = []
    for path, strings, latency in zip(paths, decoded, latencies):
        exact, cer = error_rate(strings, texts)
        agree, cer_original = error_rate(strings, decoded[0])
        results.append({"model": path, "exact": exact, "cer": cer, "exactVsOriginal": agree, "cerVsOriginal": cer_original,
                        "latency": float(latency), "megabytes": os.path.getsize(path) / 1e6})
    widths = [x.shape[3] for x in inputs]
    return {"captchas": len(texts), "timedCaptchas": min(timed, len(inputs)), "runs": runs, "medianWidth": float(np.median(widths)),
            "widths": [min(widths), max(widths)], "examples": [{"text": t, "original": d} for t, d in zip(texts[:20], decoded[0][:20])],
            "models": results}


def add_reports(report, paths):
    """The whole model's MACs and parameters, before and after, from `compress --report` JSON, for the models after the first."""
    for model, path in zip(report["models"][1:], paths):
        with open(path) as f:
            totals = json.load(f)["totals"]
        model["macsBefore"], model["macsAfter"] = totals["modelFlopsBefore"] / 2, totals["modelFlopsAfter"] / 2
        model["parametersBefore"], model["parametersAfter"] = totals["modelParametersBefore"], totals["modelParametersAfter"]
        model["replacedLayers"] = totals["replacedLayers"]


def print_report(report):
    models = report["models"]
    base = models[0]
    print(f"ddddocr common.onnx ({report['captchas']} evaluation captchas, widths {report['widths'][0]}-{report['widths'][1]} "
          f"(median {report['medianWidth']:.0f}); onnxruntime, 1 intra-op thread, sequential; latency: median per captcha "
          f"over the first {report['timedCaptchas']}, each the median of {report['runs']} runs)")
    header = ["model", "layers replaced", "MACs", "parameters", "MB", "latency ms", "speed-up",
              "exact", "CER", "exact vs original", "CER vs original"]
    rows = []
    for m in models:
        macs = f"{m['macsBefore'] / 1e6:.0f}M → {m['macsAfter'] / 1e6:.0f}M ({m['macsBefore'] / max(m['macsAfter'], 1):.2f}×)" if "macsAfter" in m else ""
        params = f"{m['parametersBefore'] / 1e6:.2f}M → {m['parametersAfter'] / 1e6:.2f}M" if "parametersAfter" in m else ""
        rows.append([os.path.basename(m["model"]), str(m.get("replacedLayers", "")), macs, params, f"{m['megabytes']:.1f}",
                     f"{1e3 * m['latency']:.2f}", f"{base['latency'] / m['latency']:.2f}×", f"{100 * m['exact']:.1f}%",
                     f"{100 * m['cer']:.2f}%", f"{100 * m['exactVsOriginal']:.1f}%", f"{100 * m['cerVsOriginal']:.2f}%"])
    print_table(header, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    i = commands.add_parser("inputs")
    i.add_argument("--split", choices=sorted(STYLES), default="calibration")
    i.add_argument("--count", type=int, default=64)
    i.add_argument("--out", required=True, help="a directory (created) of .npz feeds, one captcha each")
    e = commands.add_parser("evaluate")
    e.add_argument("models", nargs="+", help="the original first, then the models to compare with it")
    e.add_argument("--charset", required=True, help="JSON list of the output classes (ddddocr's CHARSET_BETA)")
    e.add_argument("--count", type=int, default=200, help="evaluation captchas (default 200)")
    e.add_argument("--timed", type=int, default=40, help="captchas timed (the first ones; default 40)")
    e.add_argument("--runs", type=int, default=5, help="timed runs per captcha and model (default 5)")
    e.add_argument("--reports", nargs="*", default=[], help="compress --report JSON of the models after the first, in order")
    e.add_argument("--json")
    args = parser.parse_args()
    if args.command == "inputs":
        os.makedirs(args.out, exist_ok=True)
        for old in os.listdir(args.out):
            if old.endswith(".npz"):
                os.remove(os.path.join(args.out, old))
        widths = []
        for k, (_, image) in enumerate(samples(args.split, args.count)):
            x = model_input(image)
            widths.append(x.shape[3])
            np.savez(os.path.join(args.out, f"{k:05d}.npz"), input1=x)
        print(f"captcha: {args.count} {args.split} captchas in {args.out} (input1 [1, 1, 64, width], widths {min(widths)}-{max(widths)}, "
              f"median {int(np.median(widths))})", file=sys.stderr)
        return
    if args.count < 1 or args.timed < 1 or args.runs < 1:
        sys.exit("captcha: --count, --timed and --runs must be at least 1")
    with open(args.charset, encoding="utf-8") as f:
        charset = json.load(f)
    report = evaluate(args.models, charset, args.count, args.timed, args.runs)
    add_reports(report, args.reports)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    print_report(report)


if __name__ == "__main__":
    main()
