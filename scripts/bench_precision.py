"""int8 against float32, per runtime: the quantization speed-up of one model, measured fairly.

    python scripts/bench_precision.py models/            # the shipped bundle
    python scripts/bench_precision.py /tmp/lw-train/dev  # a dev bundle also holds the float LiteRT file

Loads every model file of the bundle folder that exists (``layerwatch-int8.onnx``,
``layerwatch-fp32.onnx``, ``layerwatch-int8.tflite``, ``layerwatch-fp32.tflite``) with the runtime the
appliance uses (:func:`appliance.detector.runtime.open_backend`, one thread), then runs them
**interleaved**: each round times ``--frames`` calls of every file in turn, so a busy moment of the
machine hits all files alike. Prints per file the min / median over rounds of the per-round median
milliseconds per frame, and per runtime the int8 speed-up (float32 median / int8 median, and its range
over rounds). Input: one random uint8 frame at the bundle's input size (the network's cost does not
depend on the pixels). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

FILES = {
    ("onnxruntime", "int8"): ("layerwatch-int8.onnx", "onnx"),
    ("onnxruntime", "fp32"): ("layerwatch-fp32.onnx", "onnx"),
    ("litert", "int8"): ("layerwatch-int8.tflite", "litert"),
    ("litert", "fp32"): ("layerwatch-fp32.tflite", "litert"),
}


def measure(bundle: Path, rounds: int, frames: int) -> dict[tuple[str, str], list[float]]:
    """Per (runtime, precision): the median ms per frame of each round."""
    from appliance.detector.runtime import open_backend

    manifest = json.loads((bundle / "layerwatch.json").read_text())
    width, height = manifest["input_size"]
    backends = {
        key: open_backend(bundle / name, fmt, key[1])
        for key, (name, fmt) in FILES.items()
        if (bundle / name).exists()
    }
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    for backend in backends.values():
        for _ in range(10):
            backend.embed(frame)
    medians: dict[tuple[str, str], list[float]] = {key: [] for key in backends}
    for _ in range(rounds):
        for key, backend in backends.items():
            times = []
            for _ in range(frames):
                start = time.perf_counter()
                backend.embed(frame)
                times.append((time.perf_counter() - start) * 1000.0)
            medians[key].append(float(np.median(times)))
    return medians


def report(medians: dict[tuple[str, str], list[float]]) -> list[str]:
    lines = []
    for (runtime, precision), values in medians.items():
        lines.append(
            f"{runtime:12s} {precision}: {min(values):.2f} / {float(np.median(values)):.2f} ms per frame "
            f"(min / median of {len(values)} rounds)"
        )
    for runtime in sorted({key[0] for key in medians}):
        int8, fp32 = medians.get((runtime, "int8")), medians.get((runtime, "fp32"))
        if int8 and fp32:
            per_round = [f / i for f, i in zip(fp32, int8, strict=True)]
            lines.append(
                f"{runtime:12s} int8 speed-up: {float(np.median(fp32)) / float(np.median(int8)):.2f}x "
                f"(per round {min(per_round):.2f}-{max(per_round):.2f}x)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", type=Path, help="a folder with layerwatch.json and its model files")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--frames", type=int, default=50, help="timed calls per file and round")
    args = parser.parse_args(argv)
    if not (args.bundle / "layerwatch.json").exists():
        print(f"{args.bundle}: no layerwatch.json", file=sys.stderr)
        return 2
    for line in report(measure(args.bundle, args.rounds, args.frames)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
