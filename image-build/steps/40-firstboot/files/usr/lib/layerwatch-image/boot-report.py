"""The boot test's report (layerwatch-boot-report.service, image-build/boot-test.sh).

Waits until layerwatch.service is watching, has failed, was not started (no configuration) or
``layerwatch.boot_report=SECONDS`` (default 150) have passed, waits for the boot to finish, then
prints one line ``LAYERWATCH-REPORT {json}`` on the console, the journal of the Layerwatch units
between ``LAYERWATCH-JOURNAL-BEGIN``/``-END``, and powers off. Times are CLOCK_MONOTONIC seconds
(since the kernel started); boot-test.sh turns them into seconds since power-on.
"""

import json
import os
import subprocess
import time
from pathlib import Path

UNIT = "layerwatch.service"
LIGHT = "layerwatch-status-light@%s.service"
# the camera states of a pipeline that analyses frames; the demo clip (failed prints) passes through watching
# within a frame or two, so whether it got there is read from the journal, not caught by polling
ANALYSING = ("watching", "suspect", "failure", "cooldown")
PROPS = ("ActiveState", "SubState", "Result", "NRestarts", "StatusText", "ExecMainStatus",
         "ConditionResult", "ActiveEnterTimestampMonotonic")  # fmt: skip


def show(unit: str, *props: str) -> dict[str, str]:
    out = subprocess.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def timeout_s() -> float:
    for word in Path("/proc/cmdline").read_text().split():
        if word.startswith("layerwatch.boot_report="):
            return float(word.split("=", 1)[1])
    return 150.0


def camera_state(status: str) -> str:
    # STATUS= is "camera: state 1.9 fps; camera2: ...; backend"
    first = status.split(";")[0]
    return first.split(":", 1)[1].split()[0] if ":" in first else ""


def image_state() -> str:
    try:
        return open("/run/layerwatch-image/state").read().strip()
    except OSError:
        return ""


def reached_watching() -> bool:
    """The service logged a camera's move to watching ("...: camera NAME: starting -> watching") this boot."""
    said = subprocess.run(["journalctl", "-b", "-u", UNIT, "--no-pager", "-o", "cat"],
                          capture_output=True, text=True, check=False).stdout  # fmt: skip
    return any("camera " in line and line.endswith("-> watching") for line in said.splitlines())


def main() -> None:
    deadline = time.monotonic() + timeout_s()
    while time.monotonic() < deadline:
        unit = show(UNIT, *PROPS)
        if unit.get("ActiveState") == "failed":
            break
        if unit.get("ActiveState") == "active" and camera_state(unit.get("StatusText", "")) in ANALYSING:
            break
        if image_state() in ("unconfigured", "config_error") and unit.get("ActiveState") == "inactive":
            break  # layerwatch-status-light@STATE.service shows it; layerwatch.service is not started
        time.sleep(0.5)
    subprocess.run(["systemctl", "is-system-running", "--wait"], capture_output=True, timeout=120,
                   check=False)  # fmt: skip
    # a status light unit is active as soon as it is forked: wait (at most 60 s) for its first line
    for name in (LIGHT % "unconfigured", LIGHT % "config_error"):
        until = time.monotonic() + 60
        while show(name, "ActiveState").get("ActiveState") == "active" and time.monotonic() < until:
            said = subprocess.run(["journalctl", "-b", "-u", name, "--no-pager", "-o", "cat"],
                                  capture_output=True, text=True, check=False).stdout  # fmt: skip
            if "status light:" in said:
                break
            time.sleep(0.5)
    unit = show(UNIT, *PROPS)
    failed = subprocess.run(["systemctl", "list-units", "--failed", "--plain", "--no-legend"],
                            capture_output=True, text=True, check=False).stdout  # fmt: skip
    target = subprocess.run(["systemctl", "get-default"], capture_output=True, text=True).stdout.strip()
    entered = "ActiveEnterTimestampMonotonic"
    target_at = int(show(target, entered).get(entered, 0) or 0)
    ready_at = int(unit.get(entered, 0) or 0)
    active = unit.get("ActiveState") == "active"
    if active:
        state = camera_state(unit.get("StatusText", "")) or "active"
        if reached_watching():
            state = "watching"
    elif unit.get("ExecMainStatus") == "78" or image_state() == "config_error":
        state = "config_error"
    elif unit.get("ConditionResult") == "no" or image_state() == "unconfigured":
        state = "unconfigured"
    else:
        state = unit.get("ActiveState", "unknown")
    root = os.statvfs("/")
    report = {
        "now_s": round(time.monotonic(), 3),
        "ready_mono_s": round(ready_at / 1e6, 3) if ready_at and active else None,
        "default_target": target,
        "default_target_mono_s": round(target_at / 1e6, 3) if target_at else None,
        "failed_units": [line.split()[0] for line in failed.splitlines() if line.strip()],
        "layerwatch_state": state,
        "image_state": image_state(),
        "unit": {key: unit.get(key, "") for key in PROPS},
        "status_light": {name: show(name, "ActiveState", "Result")
                         for name in (LIGHT % "unconfigured", LIGHT % "config_error")},
        "boot_partition": sorted(os.listdir("/boot/firmware")),
        "etc_layerwatch": sorted(os.listdir("/etc/layerwatch")),
        "hostname": Path("/etc/hostname").read_text().strip(),
        "root_fs_mb": root.f_blocks * root.f_frsize // 2**20,
    }
    print("\nLAYERWATCH-REPORT " + json.dumps(report), flush=True)
    journal = subprocess.run(["journalctl", "-b", "--no-pager", "-o", "short-monotonic",
                              "-u", UNIT, "-u", "layerwatch-bootconfig.service",
                              "-u", "layerwatch-growroot.service",
                              "-u", "layerwatch-status-light@*"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
    print("LAYERWATCH-JOURNAL-BEGIN", flush=True)
    print("\n".join(journal.splitlines()[-80:]), flush=True)
    print("LAYERWATCH-JOURNAL-END", flush=True)
    # where the boot's time went, for the READY figure (printed between the journal markers' siblings)
    chain = subprocess.run(["systemd-analyze", "critical-chain", "--no-pager", UNIT],
                           capture_output=True, text=True, check=False).stdout  # fmt: skip
    blame = subprocess.run(["systemd-analyze", "blame", "--no-pager"], capture_output=True, text=True,
                           check=False).stdout.splitlines()[:12]  # fmt: skip
    print("LAYERWATCH-CHAIN-BEGIN\n" + chain.strip() + "\n\nslowest units:\n" + "\n".join(blame)
          + "\nLAYERWATCH-CHAIN-END", flush=True)  # fmt: skip
    subprocess.run(["systemctl", "poweroff", "--no-block"], check=False)


if __name__ == "__main__":
    main()
