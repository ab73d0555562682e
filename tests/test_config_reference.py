"""docs/configuration.md is generated from the schema and must be current; a key in the wrong table
gets a hint naming the table it belongs in; every config key the README names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.config.loader import load_config
from appliance.config.reference import key_paths, render_reference
from appliance.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_the_reference_page_is_current():
    page = (REPO / "docs/configuration.md").read_text()
    assert page == render_reference(), "run: python -m appliance.config.reference > docs/configuration.md"


@pytest.mark.parametrize(
    ("toml", "hint"),
    [
        ("[decision]\nwindow = 5\n", "did you mean cameras.decision?"),
        ("[calibration]\nframes = 5\n", "did you mean cameras.calibration?"),
        ("[status_led]\nerror_after_s = 5\n", "did you mean hardware.status_led?"),
        ("[service]\nwindow = 5\n", "did you mean cameras.decision.window?"),
    ],
)
def test_a_key_in_the_wrong_table_names_where_it_belongs(tmp_path: Path, toml: str, hint: str):
    path = tmp_path / "layerwatch.toml"
    path.write_text('[[cameras]]\nname = "p"\n[cameras.source]\ntype = "rtsp"\nurl = "rtsp://h/s"\n\n' + toml)
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert hint in str(caught.value)


def test_every_dotted_key_the_readme_names_exists():
    where = key_paths()
    tables = {table for homes in where.values() for table in homes}
    full = {
        f"{home}.{name}" if home != "(top level)" else name for name, homes in where.items() for home in homes
    }
    text = (REPO / "README.md").read_text()
    dotted = re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)(?: = [^`]*)?`", text)
    named = {n for n in dotted if n.split(".")[0] in where}
    missing = sorted(n for n in named if n not in full and n not in tables)
    assert not missing, missing


def test_the_readme_and_docs_link_nothing_outside_the_project():
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text()
        assert "../shared" not in text, page
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if "://" not in target:
                resolved = (page.parent / target).resolve()
                assert resolved.is_relative_to(REPO) and resolved.exists(), (page.name, target)
