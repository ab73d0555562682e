"""Paths that can be checked without hardware are config errors: check-config and run both exit 78
naming the key, before anything is opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import main

CAMERA = '[[cameras]]\nname = "p"\n'


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        (CAMERA + '[cameras.source]\ntype = "replay"\npath = "{tmp}/no-such.mp4"\n', "cameras.0.source.path"),
        (CAMERA + '[cameras.source]\ntype = "usb"\ndevice = "{tmp}/video9"\n', "cameras.0.source.device"),
        (
            '[detector]\nmodel = "{tmp}/missing.onnx"\n' + CAMERA + '[cameras.source]\ntype = "rtsp"\n'
            'url = "rtsp://127.0.0.1:1/s"\n',
            "detector.model",
        ),
    ],
    ids=["replay path", "usb device", "model file"],
)
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_missing_path_exits_78_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, key: str, command: str
):
    config = tmp_path / "layerwatch.toml"
    config.write_text(f'[service]\nstate_dir = "{tmp_path}/state"\n' + toml.replace("{tmp}", str(tmp_path)))
    assert main([command, "--config", str(config)]) == 78
    err = capsys.readouterr().err
    assert key in err and "does not exist" in err
    assert not (tmp_path / "state").exists()  # nothing was started


def test_an_existing_replay_folder_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "frames").mkdir()
    config = tmp_path / "layerwatch.toml"
    config.write_text(CAMERA + f'[cameras.source]\ntype = "replay"\npath = "{tmp_path}/frames"\n')
    assert main(["check-config", "--config", str(config)]) == 0
