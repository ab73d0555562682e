"""`layerwatch eval --help` says what the manifest holds: its columns and their allowed values."""

from __future__ import annotations

import pytest

from appliance.cli import main


def test_eval_help_names_the_manifest_columns_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["eval", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    manifest = text[text.index("--manifest MANIFEST") :]
    for words in ("path", "label (ok or failure)", "camera", "role (calibrate or test)"):
        assert words in manifest, words
