"""PP-OCRv4 (the ONNX models of the PyPI wheel rapidocr-onnxruntime) on real English text.

Text: the quotations of Debian's `fortunes` package (/usr/share/games/fortunes), written by
others; the calibration set and the evaluation set come from different files of it. Lines are
rendered in the DejaVu fonts of Debian's fonts-dejavu-core at several sizes, with the text as the
label; detector pages hold several such lines.

    python -m tdtools.evaluate.ocr inputs  --split calibration|evaluation --model det|rec --out X.npz|DIR [--count N] [--seed S]
    python -m tdtools.evaluate.ocr evaluate --det ORIG.onnx [COMPRESSED.onnx ...] --rec ORIG.onnx [COMPRESSED.onnx ...]
                                            [--lines 200] [--pages 20] [--runs 20] [--json OUT.json] [--profile]

`inputs` writes graph inputs for Scripts/calibrate.sh and tdtools.quantize: for the detector an
.npz (x: (N, 3, 640, 640) float32); for the recognizer a directory of .npz feeds, one line each,
(1, 3, 48, W) at the line's own width W, the preprocessing that `evaluate` and rapidocr apply
(squeezing every line into 320 pixels, as this did before, calibrated on glyphs that the network
never sees in use). `evaluate`
scores the recognizer by the character error rate against the rendered text (CTC greedy decoding
with the character set in the model's metadata_props["character"]) and the detector by the F1 of
its boxes at IoU 0.5 against the original model's boxes (and, for the original, against the
rendered lines), and times each model in onnxruntime with one intra-op thread (median of --runs
runs after a warm-up) at 1×3×640×640 (detector) and 1×3×48×320 (recognizer). With --profile it
also times the replaced nodes alone (onnxruntime's profiler), for the speed-up of the replaced
layers against their MAC ratio.
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ..session import session
from ..tables import print_table
from ..timing import median_seconds
from .fortunes import quotations

SPLITS = {"calibration": ["art", "computers", "science", "food"], "evaluation": ["literature", "people", "wisdom", "education"]}
FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONTS = ["DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansCondensed.ttf"]
DET_SIZE = 640
REC_HEIGHT, REC_WIDTH = 48, 320


def corpus_lines(split, max_chars=36):
    """Lines of at most `max_chars` characters, cut at word boundaries from the split's quotations."""
    lines = []
    for text in quotations(SPLITS[split]):
        text = "".join(c for c in text if 32 <= ord(c) < 127)
        current = ""
        for word in text.split(" "):
            if len(current) + len(word) + 1 > max_chars:
                if len(current) >= 8:
                    lines.append(current)
                current = word if len(word) <= max_chars else ""
            else:
                current = (current + " " + word).strip()
        if len(current) >= 8:
            lines.append(current)
    return lines


def font(index, size):
    return ImageFont.truetype(os.path.join(FONT_DIR, FONTS[index % len(FONTS)]), size)


def render_line(text, face):
    left, top, right, bottom = face.getbbox(text)
    margin = max(4, (bottom - top) // 4)
    image = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
    ImageDraw.Draw(image).text((margin - left, margin - top), text, font=face, fill=0)
    return image


def rec_input(image, width=None):
    """rapidocr's preprocessing: height 48, aspect kept, normalised to [-1, 1], zero padding on the right."""
    w = max(1, math.ceil(REC_HEIGHT * image.width / image.height))
    target = width or max(REC_WIDTH, w)
    w = min(w, target)
    resized = np.asarray(image.convert("RGB").resize((w, REC_HEIGHT), Image.BILINEAR), dtype=np.float32)
    x = np.zeros((1, 3, REC_HEIGHT, target), dtype=np.float32)
    x[0, :, :, :w] = (resized.transpose(2, 0, 1) / 255 - 0.5) / 0.5
    return x


def rec_samples(split, count, seed):
    rng = np.random.default_rng(seed)
    lines = corpus_lines(split)
    picks = rng.choice(len(lines), size=min(count, len(lines)), replace=False)
    samples = []
    for k, i in enumerate(picks):
        face = font(int(rng.integers(0, len(FONTS))), int(rng.integers(20, 44)))
        samples.append((lines[i], render_line(lines[i], face)))
    return samples


def det_pages(split, count, seed):
    """Pages of 640×640 with 5–9 lines each, and the lines' boxes."""
    rng = np.random.default_rng(seed)
    lines = corpus_lines(split)
    pages = []
    for _ in range(count):
        page = Image.new("L", (DET_SIZE, DET_SIZE), 255)
        draw = ImageDraw.Draw(page)
        boxes, y = [], int(rng.integers(10, 40))
        for _ in range(int(rng.integers(5, 10))):
            face = font(int(rng.integers(0, len(FONTS))), int(rng.integers(18, 40)))
            text = lines[int(rng.integers(0, len(lines)))]
            left, top, right, bottom = face.getbbox(text)
            if y + bottom - top > DET_SIZE - 10:
                break
            x = int(rng.integers(10, max(11, DET_SIZE - (right - left) - 10)))
            draw.text((x - left, y - top), text, font=face, fill=0)
            boxes.append((x, y, x + right - left, y + bottom - top))
            y += bottom - top + int(rng.integers(12, 40))
        pages.append((np.asarray(page.convert("RGB"), dtype=np.float32), boxes))
    return pages


def det_input(page):
    return ((page.transpose(2, 0, 1) / 255 - 0.5) / 0.5)[np.newaxis].astype(np.float32)


def db_boxes(prob, thresh=0.3, box_thresh=0.5, unclip=1.6):
    """DB post-processing with axis-aligned boxes: components of prob > thresh scoring ≥ box_thresh, expanded by area·1.6/perimeter."""
    mask = prob > thresh
    mask = ndimage.binary_dilation(mask, structure=np.ones((2, 2)))
    labels, count = ndimage.label(mask)
    boxes = []
    for k, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        ys, xs = region
        h, w = ys.stop - ys.start, xs.stop - xs.start
        if min(h, w) < 3:
            continue
        score = float(prob[region][labels[region] == k].mean())
        if score < box_thresh:
            continue
        d = w * h * unclip / (2 * (w + h))
        boxes.append((xs.start - d, ys.start - d, xs.stop + d, ys.stop + d))
    return boxes


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def f1(predicted, reference, threshold=0.5):
    """F1 of one-to-one greedy matches at IoU ≥ threshold, summed over pages."""
    matched = total_p = total_r = 0
    for p, r in zip(predicted, reference):
        pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(p) for j, b in enumerate(r)), reverse=True)
        used_p, used_r = set(), set()
        for value, i, j in pairs:
            if value < threshold:
                break
            if i not in used_p and j not in used_r:
                used_p.add(i)
                used_r.add(j)
        matched += len(used_p)
        total_p += len(p)
        total_r += len(r)
    precision = matched / total_p if total_p else 1.0
    recall = matched / total_r if total_r else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def levenshtein(a, b):
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def characters(path):
    model = onnx.load(path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "character" not in meta:
        sys.exit(f"ocr: {path} has no metadata_props['character'] (the recognizer's character set)")
    return ["blank"] + meta["character"].splitlines() + [" "]


def ctc_decode(logits, charset):
    best = logits.argmax(axis=-1)
    out, last = [], 0
    for k in best:
        if k != last and k != 0:
            out.append(charset[k] if k < len(charset) else "")
        last = k
    return "".join(out)


def latencies(paths, x, runs):
    sessions = [session(p) for p in paths]
    name = sessions[0].get_inputs()[0].name
    return median_seconds([lambda s=s: s.run(None, {name: x}) for s in sessions], runs)


def node_times(path, x, runs):
    """Median per-node kernel time over `runs` runs, from onnxruntime's profiler, by node name."""
    with tempfile.TemporaryDirectory() as directory:
        s = session(path, profile=os.path.join(directory, "profile"))
        name = s.get_inputs()[0].name
        for _ in range(runs + 1):
            s.run(None, {name: x})
        trace = s.end_profiling()
        with open(trace) as f:
            events = json.load(f)
    per_node = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_node.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] * 1e-6)
    # The first run is the warm-up.
    return {n: statistics.median(t[1:] if len(t) > 1 else t) for n, t in per_node.items()}


ELEMENTWISE = {"Add", "Mul", "Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "BatchNormalization", "Div", "Sub", "LeakyRelu"}


def time_of(path, times, nodes):
    """Seconds of the profile entries that belong to `nodes` (by node name). onnxruntime renames what
    it rewrites: an NCHWc kernel is named after its output value (plus `_nchwc`), and a convolution
    fused with the activation after it after that activation's output; such an entry is traced back
    through elementwise producers to the convolution it contains."""
    model = onnx.load(path, load_external_data=False)
    producer = {o: n for n in model.graph.node for o in n.output}
    names = {n.name: n for n in model.graph.node}
    total = 0.0
    for entry, seconds in times.items():
        node = names.get(entry)
        if node is None:
            value = entry[: -len("_nchwc")] if entry.endswith("_nchwc") else entry
            node = producer.get(value)
        while node is not None and node.name not in nodes and node.op_type in ELEMENTWISE and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.name in nodes:
            total += seconds
    return total


def replaced_nodes(path):
    model = onnx.load(path, load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    if "tensor_decompositions" not in meta:
        return [], [], 0, 0
    entries = json.loads(meta["tensor_decompositions"])["nodes"]
    return ([e["node"] for e in entries], [n for e in entries for n in e["nodes"]],
            sum(e["macsBefore"] for e in entries), sum(e["macsAfter"] for e in entries))


QUANTIZED = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger"}


def layer_speedup(original, compressed, x, runs):
    old, new, macs_before, macs_after = replaced_nodes(compressed)
    # A quantized model's nodes are not the factorized ones any more: no per-layer figure.
    if not old or any(n.op_type in QUANTIZED for n in onnx.load(compressed, load_external_data=False).graph.node):
        return None
    a, b = node_times(original, x, runs), node_times(compressed, x, runs)
    t_old = time_of(original, a, set(old))
    t_new = time_of(compressed, b, set(new))
    total = sum(a.values())
    return {"replacedShareOfTime": t_old / total if total else 0.0, "replacedSeconds": t_old, "replacementSeconds": t_new,
            "layerSpeedup": t_old / t_new if t_new else float("inf"), "layerMACRatio": macs_before / max(macs_after, 1)}


def evaluate_rec(paths, lines, runs, profile, baseline=0):
    charset = characters(paths[0])
    samples = rec_samples("evaluation", lines, seed=11)
    inputs = [rec_input(image) for _, image in samples]
    results = []
    for path in paths:
        s = session(path)
        name = s.get_inputs()[0].name
        errors = total = exact = 0
        for (text, _), x in zip(samples, inputs):
            predicted = ctc_decode(s.run(None, {name: x})[0][0], charset)
            errors += levenshtein(predicted, text)
            total += len(text)
            exact += predicted == text
        results.append({"model": path, "cer": errors / total, "lineAccuracy": exact / len(samples)})
    x = rec_input(samples[0][1], width=REC_WIDTH)
    for r, t in zip(results, latencies(paths, x, runs)):
        r["latency"] = t
    if profile:
        for r, path in zip(results[1 + baseline:], paths[1 + baseline:]):
            r["profile"] = layer_speedup(paths[baseline], path, x, runs)
    return {"lines": len(samples), "models": results}


def evaluate_det(paths, pages, runs, profile, baseline=0):
    data = det_pages("evaluation", pages, seed=13)
    truth = [boxes for _, boxes in data]
    detections, maps = [], []
    for path in paths:
        s = session(path)
        name = s.get_inputs()[0].name
        probabilities = [s.run(None, {name: det_input(page)})[0][0, 0] for page, _ in data]
        detections.append([db_boxes(p) for p in probabilities])
        maps.append([p > 0.3 for p in probabilities])
    def dice(a, b):
        overlap = sum(int(np.logical_and(x, y).sum()) for x, y in zip(a, b))
        total = sum(int(x.sum()) + int(y.sum()) for x, y in zip(a, b))
        return 2 * overlap / total if total else 1.0
    results = [{"model": p, "f1VsOriginal": f1(d, detections[0]), "f1At07VsOriginal": f1(d, detections[0], threshold=0.7),
                "textMapDice": dice(m, maps[0]), "f1VsRendered": f1(d, truth), "boxes": sum(map(len, d))}
               for p, d, m in zip(paths, detections, maps)]
    x = det_input(data[0][0])
    for r, t in zip(results, latencies(paths, x, runs)):
        r["latency"] = t
    if profile:
        for r, path in zip(results[1 + baseline:], paths[1 + baseline:]):
            r["profile"] = layer_speedup(paths[baseline], path, x, runs)
    return {"pages": len(data), "renderedLines": sum(map(len, truth)), "models": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("--split", choices=SPLITS, required=True)
    p.add_argument("--model", choices=["det", "rec"], required=True)
    p.add_argument("--out", required=True, help="detector: an .npz (x: N×3×640×640); recognizer: a new directory of .npz feeds, "
                                                 "one line each at its own width")
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--seed", type=int, help="another choice of samples of the split (default the calibration inputs' own: 5 for rec, 7 for det); "
                                            "held-out samples for tdtools.quantize --held-out")
    e = sub.add_parser("evaluate")
    e.add_argument("--det", nargs="+", default=[])
    e.add_argument("--rec", nargs="+", default=[])
    e.add_argument("--lines", type=int, default=200)
    e.add_argument("--pages", type=int, default=20)
    e.add_argument("--runs", type=int, default=20)
    e.add_argument("--profile", action="store_true")
    e.add_argument("--json")
    e.add_argument("--simplified", action="store_true",
                   help="the second model of --det and --rec is the original after `tensor-compress simplify`: speed-ups are also "
                        "given against it, the replaced layers are profiled against it, and the reports belong to the models after it")
    e.add_argument("--det-reports", nargs="*", default=[], help="compress --report JSON of each compressed detector, in order")
    e.add_argument("--rec-reports", nargs="*", default=[], help="compress --report JSON of each compressed recognizer, in order")
    args = parser.parse_args()
    if args.command == "inputs":
        if args.model == "rec":
            # Each line at its own width, as `evaluate` and rapidocr (one line a batch) feed it: a
            # fixed width would squeeze most lines (median 583 pixels wide at height 48) into 320.
            if args.out.endswith(".npz"):
                sys.exit("ocr: the recognizer's lines differ in width; --out is a directory (one .npz feed a line), not an .npz")
            if os.path.isdir(args.out) and os.listdir(args.out):
                sys.exit(f"ocr: {args.out} exists and is not empty")
            os.makedirs(args.out, exist_ok=True)
            widths = []
            for k, (_, image) in enumerate(rec_samples(args.split, args.count, seed=5 if args.seed is None else args.seed)):
                x = rec_input(image)
                np.savez(os.path.join(args.out, f"{k:05d}.npz"), x=x)
                widths.append(x.shape[3])
            print(f"wrote {args.out}: {len(widths)} feeds x [1, 3, {REC_HEIGHT}, W] (W {min(widths)}–{max(widths)}, median "
                  f"{statistics.median(widths):g}) from the {args.split} split")
            return
        else:
            x = np.concatenate([det_input(page) for page, _ in det_pages(args.split, args.count, seed=7 if args.seed is None else args.seed)])
        np.savez(args.out, x=x)
        print(f"wrote {args.out}: x {list(x.shape)} from the {args.split} split")
        return
    if args.runs < 20:
        sys.exit("ocr: --runs must be at least 20")
    report = {}
    if args.rec:
        report["recognizer"] = evaluate_rec(args.rec, args.lines, args.runs, args.profile, int(args.simplified))
    if args.det:
        report["detector"] = evaluate_det(args.det, args.pages, args.runs, args.profile, int(args.simplified))
    for key, paths in (("recognizer", args.rec_reports), ("detector", args.det_reports)):
        for model, path in zip(report.get(key, {}).get("models", [])[1 + int(args.simplified):], paths):
            with open(path) as f:
                document = json.load(f)
            layers = document["layers"]
            model["macsBefore"] = sum(l["macsBefore"] for l in layers)
            model["macsAfter"] = sum(l["macsAfter"] for l in layers)
            model["replacedLayers"] = document["totals"]["replacedLayers"]
            model["parametersBefore"] = document["totals"]["modelParametersBefore"]
            model["parametersAfter"] = document["totals"]["modelParametersAfter"]
    if args.json:
        with open(args.json, "w") as f:
            f.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    report["simplifiedBaseline"] = args.simplified
    print_tables(report)


def print_tables(report):
    """One table per model: MACs and parameters (of the Conv/Gemm/MatMul nodes) before/after, latency, quality."""
    for key, quality in (("detector", "box F1 vs original @IoU .5/.7, text-map Dice (F1 vs rendered)"), ("recognizer", "CER (line accuracy)")):
        if key not in report:
            continue
        models = report[key]["models"]
        base = models[0]
        size = f"{report[key]['pages']} pages" if key == "detector" else f"{report[key]['lines']} lines"
        print(f"\n{key} ({size} of evaluation text; onnxruntime, 1 intra-op thread, median of runs)")
        simplified = report.get("simplifiedBaseline", False)
        header = ["model", "layers replaced", "MACs", "parameters", "latency ms", "speed-up"]
        header += ["vs simplified", quality] if simplified else [quality]
        rows = []
        for m in models:
            def q(m):
                if key == "detector":
                    return f"{m['f1VsOriginal']:.3f}/{m['f1At07VsOriginal']:.3f}, {m['textMapDice']:.3f} ({m['f1VsRendered']:.3f})"
                return f"{100 * m['cer']:.2f}% ({100 * m['lineAccuracy']:.1f}%)"
            macs = f"{m['macsBefore'] / 1e6:.1f}M → {m['macsAfter'] / 1e6:.1f}M ({m['macsBefore'] / max(m['macsAfter'], 1):.2f}×)" if "macsAfter" in m else ""
            params = f"{m['parametersBefore'] / 1e6:.3f}M → {m['parametersAfter'] / 1e6:.3f}M" if "parametersAfter" in m else ""
            rows.append([os.path.basename(m["model"]), str(m.get("replacedLayers", "")), macs, params, f"{1e3 * m['latency']:.2f}",
                         f"{base['latency'] / m['latency']:.2f}×"]
                        + ([f"{models[1]['latency'] / m['latency']:.2f}×"] if simplified else []) + [q(m)])
            if "profile" in m and m["profile"]:
                p = m["profile"]
                rows[-1][6 if simplified else 5] += f" (replaced layers {p['layerSpeedup']:.2f}× at {p['layerMACRatio']:.2f}× fewer MACs, {100 * p['replacedShareOfTime']:.0f}% of the time)"
        print_table(header, rows)


if __name__ == "__main__":
    main()
