"""docs/hardware.md's wiring is the code's: the header pin map names the configuration skeleton's pins
(appliance/defaults/layerwatch.example.toml) with the header pin and a neighbouring GND that gpiozero's
board data gives on every 40-pin Raspberry Pi, the ASCII header is gpiozero's, every "BCM n (header pin
m)" and "`hardware.key` (default `v`)" in the text is true, and the sample run of ``layerwatch test
--hardware`` is what the walk prints today."""

from __future__ import annotations

import io
import json
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.pi import PiBoardInfo
from pydantic import BaseModel

from appliance.config.hardware import HardwareConfig
from appliance.hardware.walk import WalkTimes, run_walk
from tests.test_hardware_support import mock_factory

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "hardware.md").read_text()
SKELETON = (REPO / "appliance" / "defaults" / "layerwatch.example.toml").read_text()
# Pi 2 B, 3 B, 3 B+, 4 B, 400, 5 B, Zero W, Zero 2 W: every board with the 40-pin header the doc speaks of
REVISIONS = (0xA01041, 0xA02082, 0xA020D3, 0xC03111, 0xC03130, 0xD04170, 0x9000C1, 0x902120)
J8 = PiBoardInfo.from_revision(0xC03111).headers["J8"].pins


def skeleton_hardware() -> dict[str, Any]:
    """The skeleton's commented-out ``[hardware]`` lines, uncommented and parsed."""
    lines = SKELETON.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# [hardware]"))
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    return tomllib.loads("\n".join(block))["hardware"]


def section(title: str) -> str:
    start = DOC.index(f"\n{title}\n")
    end = DOC.find("\n#", start + len(title) + 2)
    return DOC[start:end]


def pin_map() -> list[dict[str, str]]:
    rows = [line for line in section("### Header pin map").splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["part", "config key", "BCM", "header pin", "nearest GND", "wire to"]
    return [
        dict(zip(header, (c.strip() for c in row.strip("|").split("|")), strict=True)) for row in rows[2:]
    ]


def flat_pins(hardware: dict[str, Any]) -> dict[str, int]:
    pins: dict[str, int] = {}
    for key, value in hardware.items():
        if isinstance(value, dict):
            pins.update(
                {f"{key}.{role}": v for role, v in value.items() if role in ("pin", "red", "green", "blue")}
            )
        elif key == "fan_pin":
            pins[key] = value
    return pins


def test_the_skeleton_pins_are_a_valid_hardware_table_and_the_doc_shows_them():
    hardware = skeleton_hardware()
    HardwareConfig.model_validate(hardware)  # raises if the skeleton's pins clash or are out of range
    shown = section("## Wiring")
    block = shown[shown.index("```toml\n") + 8 : shown.index("```", shown.index("```toml\n") + 8)]
    assert tomllib.loads(block)["hardware"] == hardware


def test_the_pin_map_is_the_skeletons_pins_at_their_real_header_pins_and_grounds():
    rows = pin_map()
    pins = flat_pins(skeleton_hardware())
    assert {row["config key"].strip("`"): int(row["BCM"]) for row in rows} == pins  # every pin, none more
    for row in rows:
        bcm, header, ground = int(row["BCM"]), int(row["header pin"]), int(row["nearest GND"])
        for revision in REVISIONS:
            board = PiBoardInfo.from_revision(revision)
            assert board.physical_pin(f"GPIO{bcm}") == ("J8", header), (row["part"], board.model)
        assert J8[ground].name == "GND", row
        distance = (J8[ground].row - J8[header].row) ** 2 + (J8[ground].col - J8[header].col) ** 2
        assert distance <= 2, f"GND {ground} is not next to header pin {header}"


DIAGRAM_ROW = re.compile(
    r"^(?:\s*(?P<lpart>.+?) ->)?\s*(?P<lname>\w+) +\((?P<l>\d+)\) \((?P<r>\d+)\) +(?P<rname>\w+)"
    r"(?: +<- (?P<rpart>.+))?$"
)


def test_the_ascii_header_is_gpiozeros_and_each_part_sits_at_its_pin():
    text = section("### Header pin map")
    blocks = text.split("```")
    diagram = next(b for b in blocks if "(1) (2)" in b).strip("\n").splitlines()
    assert len(diagram) == 20
    labels: dict[int, str] = {}
    for number, line in enumerate(diagram, start=1):
        match = DIAGRAM_ROW.match(line)
        assert match, line
        left, right = int(match["l"]), int(match["r"])
        assert (left, right) == (2 * number - 1, 2 * number)
        assert (match["lname"], match["rname"]) == (J8[left].name, J8[right].name), line
        labels.update({left: match["lpart"] or "", right: match["rpart"] or ""})
    for row in pin_map():
        assert labels[int(row["header pin"])].startswith(row["part"]), row


def resolve_default(path: str) -> Any:
    """The default of ``hardware.<path>`` in the config models."""
    model: type[BaseModel] = HardwareConfig
    *tables, name = path.split(".")
    for table in tables:
        field = model.model_fields[table]
        if field.default_factory is not None:
            model = type(field.default_factory())  # type: ignore[call-arg]
        else:
            model = next(t for t in typing.get_args(field.annotation) if isinstance(t, type))
    field = model.model_fields[name]
    return field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]


def test_every_pin_and_default_the_text_names_is_real():
    bcm_pins = re.findall(r"\bBCM (\d+) \(header pin (\d+)\)", DOC)
    bcm_pins += re.findall(r"\bBCM (\d+)\b[^\n]*\n\s*\(header pin (\d+)\)", DOC)  # a schematic's next line
    bcm_pins += re.findall(r"\bGPIO (\d+), header pin (\d+)", DOC)
    power_pins = re.findall(r"\b(GND|5V|3V3) \(header pin (\d+)\)", DOC)
    defaults = re.findall(r"`hardware\.([\w.]+)` \(default `([^`]+)`\)", DOC)
    assert len(bcm_pins) >= 10 and len(power_pins) >= 8 and len(defaults) >= 8
    for bcm, header in bcm_pins:
        assert J8[int(header)].name == f"GPIO{bcm}", (bcm, header)
    for name, header in power_pins:
        assert J8[int(header)].name == name, (name, header)
    for path, written in defaults:
        actual = resolve_default(path)
        try:
            value = tomllib.loads(f"v = {written}")["v"]
        except tomllib.TOMLDecodeError:
            value = written  # an unquoted word: a Literal's value
        assert value == actual, f"hardware.{path}: the doc says {written}, the code {actual!r}"


def test_the_sample_run_is_what_the_walk_prints():
    text = section("## Checking the wiring: `layerwatch test --hardware`")
    sample = text[text.index("$ layerwatch test --hardware\n") :].split("```")[0].splitlines()[1:]
    hardware = HardwareConfig.model_validate({**skeleton_hardware(), "pin_factory": "mock"})
    out = io.StringIO()
    times = WalkTimes(step_s=1.0, beep_s=0.2, relay_warning_s=3.0, button_s=5.0)  # the CLI's defaults
    code, summary = run_walk(hardware, times, pin_factory=mock_factory(), sleep=lambda s: None, out=out)
    assert code == 0
    assert sample[:-1] == out.getvalue().splitlines()
    assert json.loads(sample[-1]) == summary


@pytest.mark.parametrize("flag", ["--hardware", "--step-s", "--button-s", "--skip"])
def test_the_walks_options_are_in_the_doc(flag: str):
    from appliance.cli import build_parser

    assert flag[2:].replace("-", "_") in vars(build_parser().parse_args(["test"]))
    assert f"`{flag}" in DOC
