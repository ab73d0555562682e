"""Time a model variant in a short-lived child process, so the service loads only the runtime it keeps.

``detector.type = "auto"`` times every variant of the bundle at the first start (later starts load
the remembered winner). Done in the service itself, that left every runtime it tried mapped
(onnxruntime's library alone is about 21 MB resident) and the heap grown by the sessions it freed:
the first start peaked at about 171 MB resident against 114 MB for a later one. Each variant is
therefore timed by its own ``python -c`` child that imports only numpy and the one runtime
(:mod:`appliance.detector.runtime`, without the ``appliance.detector`` package and its OpenCV),
opens the model, runs one warm-up and ``runs`` timed inferences on a zero image and prints
``{"ms": ...}`` (or ``{"error": ..., "kind": "unavailable" | "format"}``); it exits before the next
starts. The child takes about 0.3 s to start on an x86 core (about 1.5 s on a Raspberry Pi 4).

Wiring: :func:`appliance.detector.prototype_detector.select_backend` calls :func:`time_variant`;
when no child can be run (:class:`ChildTimingError`) it times in process as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from appliance.detector.runtime import EmbeddingBackend, open_backend
from appliance.errors import BackendUnavailableError, LayerwatchError, ModelFormatError

CHILD_TIMEOUT_S = 120.0
"""A child that has not answered after this long is killed (a Pi loads the fp32 model in seconds)."""

# Runs in the child: an ``appliance.detector`` package stand-in (its __init__ imports OpenCV and the
# whole detector), so that only appliance.errors, numpy and the runtime module are imported.
_CHILD = """
import sys, types
from pathlib import Path
import appliance
package = types.ModuleType("appliance.detector")
package.__path__ = [str(Path(appliance.__file__).parent / "detector")]
sys.modules["appliance.detector"] = package
from appliance.detector.variant_timing import child_main
sys.exit(child_main(sys.argv[1:]))
"""


class ChildTimingError(LayerwatchError):
    """No child process could time the variant (cannot start, crashed, timed out, no answer)."""


def time_in_process(backend: EmbeddingBackend, size: tuple[int, int], runs: int) -> float:
    """Milliseconds per inference of an open backend on a zero image of ``size`` = (width, height),
    after one warm-up run."""
    dummy = np.zeros((size[1], size[0], 3), np.uint8)
    backend.embed(dummy)
    start = time.perf_counter()
    for _ in range(runs):
        backend.embed(dummy)
    return (time.perf_counter() - start) * 1000 / runs


def time_variant(
    path: Path, fmt: str, precision: str, threads: int, size: tuple[int, int], runs: int
) -> float:
    """Milliseconds per inference of one model file, measured in a child process.

    Raises :class:`BackendUnavailableError` / :class:`ModelFormatError` as opening it in process would,
    and :class:`ChildTimingError` when the child itself failed."""
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the appliance package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    env.setdefault("OMP_NUM_THREADS", str(threads))
    args = [str(path), fmt, precision, str(threads), str(size[0]), str(size[1]), str(runs)]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChildTimingError(f"cannot time {path.name} in a child process: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
    except ValueError:
        answer = {}
    if "ms" in answer:
        return float(answer["ms"])
    if answer.get("kind") == "unavailable":
        raise BackendUnavailableError(str(answer.get("error")))
    if answer.get("kind") == "format":
        raise ModelFormatError(str(answer.get("error")))
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise ChildTimingError(f"timing {path.name} failed (exit {done.returncode}): {tail}")


def child_main(argv: list[str]) -> int:
    """The child's side: ``PATH FORMAT PRECISION THREADS WIDTH HEIGHT RUNS`` -> one JSON line."""
    path, fmt, precision, threads, width, height, runs = argv
    try:
        backend = open_backend(Path(path), fmt, precision, int(threads))
        ms = time_in_process(backend, (int(width), int(height)), int(runs))
    except BackendUnavailableError as exc:
        print(json.dumps({"error": str(exc), "kind": "unavailable"}))
        return 0
    except ModelFormatError as exc:
        print(json.dumps({"error": str(exc), "kind": "format"}))
        return 0
    print(json.dumps({"ms": ms}))
    return 0
