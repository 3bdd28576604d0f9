"""Silero VAD end to end: speech that espeak-ng reads from Debian's fortunes (written by others),
with silences between the quotations, run chunk by chunk as the model is meant to be run.

    python -m tdtools.evaluate.silero audio --split calibration|evaluation --out AUDIO.npy [--seconds 120]
    python -m tdtools.evaluate.silero inputs --model silero_vad.onnx --audio AUDIO.npy --out INPUTS.npz
    python -m tdtools.evaluate.silero evaluate --audio AUDIO.npy ORIGINAL.onnx OTHER.onnx ... [--rate 8000] [--json OUT.json]

- audio: calibration speech is the "literature" and "wisdom" quotations read by the en-us voice at 160 words
  per minute; evaluation speech is other text ("science", "computers") read by the en-gb voice at
  180, so the evaluation is on other words and another voice than the calibration. Silences of
  0.3 to 1.5 s (with noise at -60 dB) separate the quotations. 16 kHz mono float32.
- inputs: the original model is run over the audio in 32 ms chunks (512 samples after 64 of
  context, as silero-vad's own wrapper feeds it), its recurrent state carried from chunk to
  chunk; every chunk with the state the model had before it becomes one calibration sample
  (input [576], state [2, 128] on the state's batch axis 1, sr as constants/sr), the layout that
  Scripts/calibrate.sh reads.
- evaluate: each model is run the same way with one intra-op thread; per model the speech
  probability of every chunk, the agreement of its speech/non-speech decision (threshold 0.5)
  with the original's, the mean absolute probability difference, and the latency per chunk
  (median per chunk over 20 s of the audio, median of --rounds rounds with the models alternating).
  --rate 8000 resamples the audio to 8 kHz and feeds the model as its wrapper does at that rate
  (256 samples after 32 of context, sr 8000): the model's other branch.
  This latency is timed inside the stream (each chunk needs the state of the one before), so
  it has its own loop rather than tdtools.timing's.
"""
import argparse
import io
import json
import subprocess
import sys
import time
import wave

import numpy as np
from scipy.signal import resample_poly

from ..session import session
from ..tables import print_table
from .fortunes import quotations

RATE = 16000
# The chunk and context of each sample rate the model takes, as silero-vad's wrapper feeds it.
FRAMING = {16000: (512, 64), 8000: (256, 32)}
SPLITS = {"calibration": (["literature", "wisdom"], "en-us", 160, 1), "evaluation": (["science", "computers"], "en-gb", 180, 2)}


def speak(text, voice, speed):
    """espeak-ng's reading of `text` at 16 kHz, float32 in [-1, 1]."""
    done = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True)
    if done.returncode != 0:
        sys.exit(f"silero: espeak-ng failed: {done.stderr.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(done.stdout)) as w:
        rate, samples = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    x = samples.astype(np.float32) / 32768
    g = np.gcd(RATE, rate)
    return resample_poly(x, RATE // g, rate // g).astype(np.float32)


def audio(split, seconds):
    files, voice, speed, seed = SPLITS[split]
    rng = np.random.default_rng(seed)
    texts = [t for t in quotations(files) if 20 <= len(t) <= 600]
    rng.shuffle(texts)
    pieces, total = [], 0
    for text in texts:
        silence = (rng.standard_normal(int(rng.uniform(0.3, 1.5) * RATE)) * 1e-3).astype(np.float32)
        speech = speak(text, voice, speed)
        pieces += [silence, speech]
        total += len(silence) + len(speech)
        if total >= seconds * RATE:
            break
    return np.concatenate(pieces)


def run(model, samples, record=False, rate=RATE):
    """Chunk by chunk with the state carried, `samples` at `rate` (16000 or 8000): (speech
    probabilities, seconds per chunk, [(input, state)] when recording)."""
    s = session(model)
    chunk, width = FRAMING[rate]
    state, context = np.zeros((2, 1, 128), np.float32), np.zeros((1, width), np.float32)
    probabilities, times, fed = [], [], []
    sr = np.array(rate, dtype=np.int64)
    for k in range(len(samples) // chunk):
        x = np.concatenate([context, samples[None, k * chunk:(k + 1) * chunk]], axis=1)
        if record:
            fed.append((x[0], state[:, 0, :]))
        started = time.perf_counter()
        out, state = s.run(None, {"input": x, "state": state, "sr": sr})
        times.append(time.perf_counter() - started)
        context = x[:, -width:]
        probabilities.append(float(out.reshape(-1)[0]))
    return np.array(probabilities), np.array(times), fed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("audio")
    a.add_argument("--split", choices=sorted(SPLITS), required=True)
    a.add_argument("--seconds", type=float, default=120)
    a.add_argument("--out", required=True)
    i = commands.add_parser("inputs")
    i.add_argument("--model", required=True)
    i.add_argument("--audio", required=True)
    i.add_argument("--out", required=True)
    e = commands.add_parser("evaluate")
    e.add_argument("--audio", required=True)
    e.add_argument("models", nargs="+")
    e.add_argument("--rounds", type=int, default=5, help="latency rounds, the models alternating (default 5)")
    e.add_argument("--rate", type=int, choices=sorted(FRAMING), default=RATE,
                   help="run at this sample rate (the 16 kHz audio resampled; default 16000)")
    e.add_argument("--json")
    args = parser.parse_args()
    if args.command == "audio":
        samples = audio(args.split, args.seconds)
        np.save(args.out, samples)
        print(f"silero: {len(samples) / RATE:.1f} s of {args.split} speech in {args.out}", file=sys.stderr)
    elif args.command == "inputs":
        _, _, fed = run(args.model, np.load(args.audio), record=True)
        np.savez(args.out, input=np.stack([f[0] for f in fed]), state=np.stack([f[1] for f in fed]),
                 **{"constants/sr": np.array(RATE, dtype=np.int64)})
        print(f"silero: {len(fed)} chunks with their states in {args.out}", file=sys.stderr)
    else:
        samples = np.load(args.audio)
        if args.rate != RATE:
            g = np.gcd(RATE, args.rate)
            samples = resample_poly(samples, args.rate // g, RATE // g).astype(np.float32)
        # Quality from one pass each; latency from --rounds passes over a 20 s excerpt with the
        # models alternating, the median per chunk of each pass, then the median over passes (the
        # VM's speed drifts from minute to minute).
        probabilities = [run(path, samples, rate=args.rate)[0] for path in args.models]
        excerpt = samples[:20 * args.rate]
        rounds = [[float(np.median(run(path, excerpt, rate=args.rate)[1])) * 1e3 for path in args.models] for _ in range(args.rounds)]
        latencies = np.median(np.array(rounds), axis=0)
        results = list(zip(args.models, probabilities, latencies))
        reference = results[0][1]
        rows = []
        for path, probabilities, latency in results:
            latency = float(latency)
            agree = float(np.mean((probabilities > 0.5) == (reference > 0.5)))
            rows.append({"model": path.split("/")[-1], "agreement": agree, "meanAbsoluteDifference": float(np.mean(np.abs(probabilities - reference))),
                         "speechFraction": float(np.mean(probabilities > 0.5)), "latencyMs": latency, "speedUp": results[0][2] / latency})
        print(f"Silero VAD ({len(reference)} chunks of 32 ms of evaluation speech at {args.rate // 1000} kHz; onnxruntime, 1 intra-op thread; "
              f"latency: median per chunk, median of {args.rounds} alternating rounds)")
        header = ["model", "decisions equal to the original's (0.5)", "mean |Δp|", "speech", "latency ms", "speed-up"]
        table = [[r["model"], f"{100 * r['agreement']:.2f}%", f"{r['meanAbsoluteDifference']:.4f}", f"{100 * r['speechFraction']:.1f}%",
                  f"{r['latencyMs']:.3f}", f"{r['speedUp']:.2f}×"] for r in rows]
        print_table(header, table)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
