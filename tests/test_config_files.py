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
        (
            '[detector]\nmodel = "{tmp}/missing.onnx"\n' + CAMERA + '[cameras.source]\ntype = "rtsp"\n'
            'url = "rtsp://127.0.0.1:1/s"\n',
            "detector.model",
        ),
    ],
    ids=["replay path", "model file"],
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


def test_an_absent_usb_device_warns_but_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """An unplugged webcam is no config error (tests/test_usb_replug.py: the service waits for it)."""
    config = tmp_path / "layerwatch.toml"
    config.write_text(CAMERA + f'[cameras.source]\ntype = "usb"\ndevice = "{tmp_path}/layerwatch-cam"\n')
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "configuration OK" in out
    assert f"warning: cameras.0.source.device: {tmp_path}/layerwatch-cam does not exist now" in err
    assert "camera_offline until it is plugged in" in err


def test_an_existing_replay_folder_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "frames").mkdir()
    config = tmp_path / "layerwatch.toml"
    config.write_text(CAMERA + f'[cameras.source]\ntype = "replay"\npath = "{tmp_path}/frames"\n')
    assert main(["check-config", "--config", str(config)]) == 0


def test_cross_field_errors_come_in_the_same_pass_as_field_errors(tmp_path: Path):
    from appliance.config.loader import load_config
    from appliance.errors import ConfigError

    config = tmp_path / "layerwatch.toml"
    config.write_text(
        '[mqtt]\nkeepalive_s = "soon"\n'
        '[[cameras]]\nname = "p"\n[cameras.source]\ntype = "rtsp"\nurl = "rtsp://h/s"\n'
        "[cameras.decision]\nvotes = 6\nwindow = 5\ncooldown_s = -1\n"
        '[[cameras]]\nname = "p"\n[cameras.source]\ntype = "rtsp"\nurl = "rtsp://h/t"\n'
        "[cameras.decision]\nvotes = 9\nwindow = 5\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, {})
    text = str(caught.value)
    assert "mqtt.keepalive_s" in text and "cameras.0.decision.cooldown_s" in text  # field errors
    assert "votes (6) cannot exceed window (5)" in text  # beside a field error of the same table
    assert text.count("votes (9) cannot exceed window (5)") == 1  # the validator's own, not doubled
    assert "camera names must be unique, repeated: p" in text


@pytest.mark.parametrize("where", ["detector", "detector.second_opinion"])
def test_a_yolo_failure_class_the_model_lacks_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
):
    """The shipped box model's metadata names one class, 'failure': 'spaghetti' is refused by check-config
    (and run) with the key and the model's classes; 'failure' passes."""
    camera = CAMERA + '[cameras.source]\ntype = "rtsp"\nurl = "rtsp://127.0.0.1:1/s"\n'
    table = '[detector]\ntype = "yolo"\n' if where == "detector" else "[detector.second_opinion]\n"
    config = tmp_path / "layerwatch.toml"
    for name, code in (("spaghetti", 78), ("failure", 0)):
        config.write_text(f'{table}failure_classes = ["{name}"]\n' + camera)
        assert main(["check-config", "--config", str(config)]) == code
    err = capsys.readouterr().err
    assert f"{where}.failure_classes" in err
    assert "no class named 'spaghetti'; the model's classes are ['failure']" in err
