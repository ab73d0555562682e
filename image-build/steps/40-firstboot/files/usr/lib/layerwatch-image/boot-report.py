"""The boot test's report (layerwatch-boot-report.service, image-build/boot-test.sh).

Waits until layerwatch.service is watching, has failed, was not started (no configuration) or
``layerwatch.boot_report=SECONDS`` (default 150) have passed, waits for the boot to finish, then
prints one line ``LAYERWATCH-REPORT {json}`` on the console, the journal of the Layerwatch units
between ``LAYERWATCH-JOURNAL-BEGIN``/``-END``, and powers off. Times are CLOCK_MONOTONIC seconds
(since the kernel started); boot-test.sh turns them into seconds since power-on.

After READY (never before: the figure stays the service's) it also reports, for boot-test.sh:

- ``network``: the guest's global addresses and what ``avahi-resolve -4 -n HOSTNAME.local`` answers
  (mDNS), and the boot partition's ``layerwatch-address.txt``;
- ``token``: whether the API token exists and its copy ``layerwatch-token.txt`` on the boot partition
  matches it (the token itself is never printed);
- with ``layerwatch.boot_checks`` on the kernel command line, ``checks``: ``import picamera2,
  libcamera`` in the venv, the libcamera pipeline handlers a CameraManager registers and the IPA
  modules on disk, the CSI source opened through the real picamera2 and libcamera (no camera in
  QEMU: its own "no CSI camera" error), and the boot partition's ``layerwatch.toml.example``
  through ``layerwatch check-config`` and ``layerwatch test`` (its camera replaced by the replay
  clip, then by the kernel's vivid V4L2 test device: the example's own source type).
"""

import glob
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
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


BOOT = Path("/boot/firmware")
VENV_PYTHON = "/opt/layerwatch/venv/bin/python"
LAYERWATCH = "/opt/layerwatch/venv/bin/layerwatch"


def run(
    *cmd: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, -1, "", f"{type(exc).__name__}: {exc}")


def global_addresses() -> list[str]:
    out = run("ip", "-o", "-4", "address", "show", "scope", "global").stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]


def has_nic() -> bool:
    return any(name != "lo" for name in os.listdir("/sys/class/net"))


def wait_for(check: Callable[[], object], seconds: float) -> float | None:
    """Poll CHECK every 0.5 s for up to SECONDS; the seconds it took, or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def network() -> dict[str, object]:
    name = Path("/etc/hostname").read_text().strip()
    report: dict[str, object] = {"nic": has_nic(), "mdns_name": f"{name}.local"}
    if not report["nic"]:
        return report
    report["address_wait_s"] = wait_for(global_addresses, 60)
    addresses = global_addresses()
    report["addresses"] = addresses
    resolved = ""
    for _ in range(20):  # avahi announces the name a few seconds after the address comes
        said = run("avahi-resolve", "-4", "-n", f"{name}.local", timeout=10)
        if said.returncode == 0 and said.stdout.split():
            resolved = said.stdout.split()[-1]
            break
        time.sleep(1)
    report["mdns_resolved"] = resolved or None
    report["mdns_ok"] = bool(resolved) and resolved in addresses
    address_file = BOOT / "layerwatch-address.txt"
    wait_for(lambda: address_file.is_file() and all(a in address_file.read_text() for a in addresses), 30)
    report["address_file"] = address_file.read_text().splitlines() if address_file.is_file() else None
    return report


def token() -> dict[str, object]:
    state = Path("/var/lib/layerwatch/api_token")
    copy = BOOT / "layerwatch-token.txt"
    if not state.is_file():
        return {"state_file": False, "boot_copy": copy.is_file()}
    wait_for(lambda: copy.is_file() and copy.read_text().strip() == state.read_text().strip(), 30)
    text = state.read_text().strip()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]  # which token, without the token
    return {
        "state_file": True,
        "length": len(text),
        "sha256_12": digest,
        "boot_copy": copy.is_file(),
        "boot_copy_matches": copy.is_file() and copy.read_text().strip() == text,
    }


CAMERA_IMPORT = """
import json, time
t = time.monotonic()
import picamera2, libcamera, numpy
print(json.dumps({"seconds": round(time.monotonic() - t, 2), "picamera2": picamera2.__file__,
                  "libcamera": libcamera.__file__, "numpy": numpy.__version__, "numpy_from": numpy.__file__}))
"""
CAMERA_MANAGER = """
import libcamera
manager = libcamera.CameraManager.singleton()
print(len(manager.cameras))
"""


def camera_checks() -> dict[str, object]:
    report: dict[str, object] = {}
    said = run(VENV_PYTHON, "-c", CAMERA_IMPORT)
    report["import_picamera2_libcamera"] = (
        json.loads(said.stdout.splitlines()[-1])
        if said.returncode == 0
        else {"error": said.stderr.strip().splitlines()[-3:]}
    )
    said = run(VENV_PYTHON, "-c", CAMERA_MANAGER, env={"LIBCAMERA_LOG_LEVELS": "*:DEBUG"})
    handlers = re.findall(r"Found registered pipeline handler '([^']+)'", said.stderr)
    report["pipeline_handlers"] = sorted(set(handlers))
    report["cameras"] = (
        int(said.stdout.strip()) if said.returncode == 0 and said.stdout.strip().isdigit() else None
    )
    if said.returncode != 0:
        report["camera_manager_error"] = said.stderr.strip().splitlines()[-3:]
    modules = glob.glob("/usr/lib/*/libcamera/**/*.so", recursive=True)
    report["ipa_modules"] = sorted(os.path.basename(m) for m in modules)
    fake = Path("/usr/lib/layerwatch-image/csi-source-check.py")
    if fake.is_file():
        said = run(VENV_PYTHON, str(fake), timeout=180)
        lines = said.stdout.strip().splitlines()
        report["csi_source"] = (
            json.loads(lines[-1])
            if said.returncode == 0 and lines
            else {"error": said.stderr.strip().splitlines()[-5:]}
        )
    return report


def example_checks() -> dict[str, object]:
    example = BOOT / "layerwatch.toml.example"
    if not example.is_file():
        return {"example": None}
    said = run(LAYERWATCH, "check-config", "--config", str(example))
    report: dict[str, object] = {
        "check_config_rc": said.returncode,
        "check_config": (said.stdout + said.stderr).strip().splitlines()[-3:],
    }
    replay = '{ type = "replay", path = "/usr/share/layerwatch/demo.mp4", rate_fps = 2, loop = true }'
    text = re.sub(
        r"(?m)^source = \{.*\}", "source = " + replay, example.read_text().replace("\r", ""), count=1
    )
    Path("/run/layerwatch-example-replay.toml").write_text(text)
    said = run(
        LAYERWATCH,
        "test",
        "--config",
        "/run/layerwatch-example-replay.toml",
        timeout=240,
        env={"LAYERWATCH_STATE_DIR": "/run/layerwatch-example-state"},
    )
    report["test_rc"] = said.returncode
    report["test"] = said.stdout.strip().splitlines()[-1:] or said.stderr.strip().splitlines()[-3:]
    # the example's own source type (usb: V4L2) on a V4L2 device: the kernel's vivid test driver
    loaded = run("modprobe", "vivid", "n_devs=1", "node_types=0x1", "input_types=0x0")
    devices = sorted(glob.glob("/dev/video*"))
    if loaded.returncode == 0 and devices:
        usb = f'{{ type = "usb", device = "{devices[0]}" }}'
        text = re.sub(
            r"(?m)^source = \{.*\}", "source = " + usb, example.read_text().replace("\r", ""), count=1
        )
        Path("/run/layerwatch-example-v4l2.toml").write_text(text)
        said = run(
            LAYERWATCH, "test", "--config", "/run/layerwatch-example-v4l2.toml", timeout=240,
            env={"LAYERWATCH_STATE_DIR": "/run/layerwatch-example-state"},
        )  # fmt: skip
        said_last = said.stdout.strip().splitlines()[-1:] or said.stderr.strip().splitlines()[-3:]
        report["v4l2_vivid"] = {"device": devices[0], "test_rc": said.returncode, "test": said_last}
    else:
        report["v4l2_vivid"] = {"error": (loaded.stderr.strip() or "no /dev/video*")[-300:]}
    return report


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
    report: dict[str, object] = {
        "now_s": round(time.monotonic(), 3),
        "ready_mono_s": round(ready_at / 1e6, 3) if ready_at and active else None,
        "default_target": target,
        "default_target_mono_s": round(target_at / 1e6, 3) if target_at else None,
        "failed_units": [line.split()[0] for line in failed.splitlines() if line.strip()],
        "layerwatch_state": state,
        "image_state": image_state(),
        "unit": {key: unit.get(key, "") for key in PROPS},
        "status_light": {
            name: show(name, "ActiveState", "Result")
            for name in (LIGHT % "unconfigured", LIGHT % "config_error")
        },
        "boot_partition": sorted(os.listdir("/boot/firmware")),
        "etc_layerwatch": sorted(os.listdir("/etc/layerwatch")),
        "hostname": Path("/etc/hostname").read_text().strip(),
        "root_fs_mb": root.f_blocks * root.f_frsize // 2**20,
    }
    report["network"] = network()
    report["token"] = token()
    if "layerwatch.boot_checks" in Path("/proc/cmdline").read_text().split():
        started = time.monotonic()
        report["checks"] = {
            **camera_checks(),
            "example": example_checks(),
            "seconds": round(time.monotonic() - started, 1),
        }
    report["now_s"] = round(time.monotonic(), 3)
    report["boot_partition"] = sorted(os.listdir("/boot/firmware"))
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
