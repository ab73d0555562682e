"""scripts/bench_precision.py: loads every model file of a bundle with the appliance's runtimes and prints
per-file timings and the int8 speed-up per runtime (figures are printed, never asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("bench_precision", REPO / "scripts" / "bench_precision.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reports_each_shipped_file_and_the_onnx_speedup(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    assert _script().main([str(REPO / "models"), "--rounds", "2", "--frames", "1"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime  int8:" in out and "onnxruntime  fp32:" in out
    assert "onnxruntime  int8 speed-up:" in out
    # the shipped bundle has no float LiteRT file, so no LiteRT ratio is claimed
    assert "litert       int8 speed-up" not in out


def test_ratio_is_float_over_int8_median() -> None:
    lines = _script().report(
        {("onnxruntime", "int8"): [1.0, 2.0, 3.0], ("onnxruntime", "fp32"): [4.0, 4.0, 4.0]}
    )
    assert lines[-1].startswith("onnxruntime  int8 speed-up: 2.00x (per round 1.33-4.00x)")


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main([str(tmp_path)]) == 2
    assert "no layerwatch.json" in capsys.readouterr().err
