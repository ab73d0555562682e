"""Atomic state-file writes and setting aside a file that cannot be read."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.state_files import atomic_write_bytes, atomic_write_text, set_aside


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write_text(target, "one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write_text(target, "old")

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("appliance.state_files.os.replace", refuse)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_set_aside_moves_file_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "calibration.npz"
    target.write_bytes(b"\x00broken")
    moved = set_aside(target, "truncated")
    assert moved is not None and moved.name.startswith("calibration.npz.bad-")
    assert not target.exists() and moved.read_bytes() == b"\x00broken"
    assert set_aside(target, "again") is None
