"""scripts/update.sh (layerwatch-update) against a temporary root (LAYERWATCH_ROOT) with a fake
``systemctl``: a good update switches the venv symlink and keeps /etc/layerwatch and /var/lib/layerwatch
byte for byte; a bundle with a bad checksum (or an unlisted file, or the wrong .tar digest) is refused
with nothing changed; a version that fails at start is rolled back and the old one runs; an
interrupted switch leaves a working symlink and the next run cleans up; the boot-partition path
(--boot-apply before layerwatch.service, --boot-confirm after it); the plain-venv migration; and
scripts/make-update-bundle.sh's format. Plus shellcheck and systemd-analyze verify of the image units
(image-build/steps/45-update).

Fakes: a small ``layerwatch`` wheel made by hand (``--version``, ``check-config`` that rejects a given
word with 78, ``run`` that exits 0 or fails: a version that fails at start); the fake ``systemctl``
"starts" layerwatch.service by running the root's ``/opt/layerwatch/venv/bin/layerwatch run``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.shell_checks import assert_shell_script_clean

REPO = Path(__file__).resolve().parents[1]
UPDATE = REPO / "scripts" / "update.sh"
MAKE_BUNDLE = REPO / "scripts" / "make-update-bundle.sh"

CLI = """import sys

VERSION = {version!r}
RUN_EXIT = {run_exit!r}
REJECTS = {rejects!r}


def main():
    args = sys.argv[1:]
    if args == ["--version"]:
        print("layerwatch " + VERSION)
        return 0
    if args[:1] == ["check-config"]:
        text = open(args[args.index("--config") + 1]).read()
        if REJECTS and REJECTS in text:
            print("service." + REJECTS + ": not a valid key", file=sys.stderr)
            return 78
        print("configuration OK: 1 camera(s): fake")
        return 0
    if args[:1] == ["run"]:
        return RUN_EXIT
    return 2
"""

FAKE_SYSTEMCTL = """#!/usr/bin/env bash
# fake systemctl (tests/update_fixtures.py): layerwatch.service's state in $FAKE_SYSTEMD/state
S=$FAKE_SYSTEMD
echo "$*" >>"$S/calls"
state() { cat "$S/state" 2>/dev/null || echo inactive; }
case "$1" in
  is-active) echo "$(state)"; [ "$(state)" = active ] ;;
  stop) [ "${*: -1}" != layerwatch.service ] || echo inactive >"$S/state" ;;
  show)
    case "$3" in
      NRestarts) echo 0 ;;
      ActiveState) state ;;
      ConditionResult) cat "$S/condition" 2>/dev/null || echo yes ;;
      Result) [ "$(state)" = failed ] && echo exit-code || echo success ;;
    esac ;;
  restart | start)
    [ "${*: -1}" = layerwatch.service ] || exit 0
    if "$LAYERWATCH_ROOT/opt/layerwatch/venv/bin/layerwatch" run >>"$S/run.log" 2>&1; then
      echo active >"$S/state"
    else
      echo failed >"$S/state"
      echo "Job for layerwatch.service failed." >&2
      exit 1
    fi ;;
  *) exit 0 ;;
esac
"""


def machine_arch() -> str:
    return "arm64" if platform.machine() in ("aarch64", "arm64") else "amd64"


def fake_wheel(
    out: Path, version: str, run_exit: int = 0, rejects: str = "", requires: tuple[str, ...] = ()
) -> Path:
    """A pure-Python ``layerwatch`` wheel (package ``appliance``, console script ``layerwatch``)."""
    out.mkdir(parents=True, exist_ok=True)
    info = f"layerwatch-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: layerwatch\nVersion: {version}\n"
        + "Provides-Extra: litert\nProvides-Extra: cloud\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    files = {
        "appliance/__init__.py": f"__version__ = {version!r}\n",
        "appliance/cli.py": CLI.format(version=version, run_exit=run_exit, rejects=rejects),
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\nlayerwatch = appliance.cli:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = out / f"layerwatch-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def bundle_dir(out: Path, wheel: Path, mode: str = "reuse", **manifest: str) -> Path:
    """An unpacked bundle (layerwatch-update/) as make-update-bundle.sh makes it."""
    root = out / "layerwatch-update"
    (root / "wheels").mkdir(parents=True, exist_ok=True)
    (root / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
    version = wheel.name.split("-")[1]
    fields = {"format": "1", "version": version, "mode": mode, "requirement": "layerwatch[litert,cloud]",
              "arch": machine_arch() if mode == "full" else "any"}  # fmt: skip
    if mode == "full":
        fields["python"] = "{}.{}".format(*sys.version_info[:2])
    fields.update(manifest)
    (root / "MANIFEST").write_text("".join(f"{k}={v}\n" for k, v in fields.items()))
    (root / "constraints.txt").write_text(f"layerwatch=={version}\n")
    write_sums(root)
    return root


def write_sums(root: Path) -> None:
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.relative_to(root)}")
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def tar_bundle(root: Path, tar: Path) -> Path:
    with tarfile.open(tar, "w") as archive:
        archive.add(root, arcname="layerwatch-update")
    return tar


class Device:
    """An installed root (LAYERWATCH_ROOT) with a fake systemctl, and how to run the updater on it."""

    def __init__(self, root: Path, fakes: Path) -> None:
        self.root = root
        self.fakes = fakes
        self.boot = root / "boot/firmware"
        self.bin = fakes / "bin"
        self.systemd = fakes / "systemd"
        for folder in (self.bin, self.systemd, self.boot):
            folder.mkdir(parents=True, exist_ok=True)
        systemctl = self.bin / "systemctl"
        systemctl.write_text(FAKE_SYSTEMCTL)
        systemctl.chmod(0o755)

    @property
    def link(self) -> Path:
        return self.root / "opt/layerwatch/venv"

    @property
    def venvs(self) -> list[str]:
        folder = self.root / "opt/layerwatch/venvs"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def active(self) -> str:
        return os.readlink(self.link)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "LAYERWATCH_ROOT": str(self.root),
            "LAYERWATCH_BOOT_DIR": str(self.boot),
            "LAYERWATCH_PYTHON": sys.executable,
            "LAYERWATCH_UPDATE_SETTLE_S": "1",
            "LAYERWATCH_UPDATE_START_TIMEOUT": "60",
            "FAKE_SYSTEMD": str(self.systemd),
            **extra,
        }

    def update(self, *args: str | Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(UPDATE), *map(str, args)], capture_output=True, text=True,
                              timeout=300, env=self.env(**extra))  # fmt: skip

    def layerwatch(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.link / "bin/layerwatch", *args], capture_output=True, text=True, timeout=60
        )

    def service(self, state: str) -> None:
        (self.systemd / "state").write_text(state + "\n")

    def service_state(self) -> str:
        path = self.systemd / "state"
        return path.read_text().strip() if path.exists() else "inactive"

    def calls(self) -> list[str]:
        path = self.systemd / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def boot_start(self) -> None:
        """What systemd does at boot after layerwatch-update.service: start layerwatch.service."""
        subprocess.run([self.bin / "systemctl", "start", "layerwatch.service"], env=self.env(), check=False,
                       capture_output=True)  # fmt: skip


def fingerprint(*folders: Path) -> dict[str, str]:
    """Every file under FOLDERS -> its SHA-256 (and its mode): what "untouched" means."""
    prints = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                prints[str(path)] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_mode:o}"
    return prints


def populate(root: Path) -> None:
    """Config and state as a running appliance has them."""
    conf = root / "etc/layerwatch"
    (conf / "credentials").mkdir(parents=True, exist_ok=True)
    (conf / "layerwatch.toml").write_text("[service]\nanalysis_interval_s = 1\n")
    (conf / "credentials/mqtt_password").write_text("secret\n")
    state = root / "var/lib/layerwatch"
    (state / "cameras/demo").mkdir(parents=True, exist_ok=True)
    (state / "alerts.sqlite").write_bytes(os.urandom(4096))
    (state / "cameras/demo/calibration.npz").write_bytes(os.urandom(2048))


STEP = REPO / "image-build" / "steps" / "45-update"
SCRIPTS = [UPDATE, UPDATE.with_name("update-bundle.sh"), MAKE_BUNDLE, *sorted(STEP.glob("run.sh"))]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An installed root, built once per worker: config, state and layerwatch 0.1.0 in its venv
    (a full bundle: a fresh venv with pip), layerwatch.service active. Built at the path the tests
    use (the venv's scripts name their folder), kept as a copy that each test restores."""
    base = tmp_path_factory.getbasetemp()
    root, fakes = base / "lw-root", base / "lw-fakes"
    device = Device(root, fakes)
    populate(root)
    bundle = bundle_dir(fakes / "first", fake_wheel(fakes / "w", "0.1.0"), mode="full")
    proc = device.update(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    device.service("active")
    copy = base / "lw-template"
    shutil.copytree(root, copy, symlinks=True)
    return root, copy


@pytest.fixture
def device(template: tuple[Path, Path], tmp_path: Path) -> Device:
    root, copy = template
    shutil.rmtree(root)
    # the venvs hard-linked (the updater never writes a venv's file in place: pip and sed -i replace
    # files, as in a real update), config and state copied
    subprocess.run(["cp", "-al", copy, root], check=True, timeout=120)
    for folder in ("etc", "var"):
        shutil.rmtree(root / folder)
        shutil.copytree(copy / folder, root / folder, symlinks=True)
    dev = Device(root, tmp_path / "fakes")
    dev.service("active")
    return dev


def _state(device: Device) -> dict[str, str]:
    return fingerprint(device.root / "etc/layerwatch", device.root / "var/lib/layerwatch")


def _reuse_tar(device: Device, tmp_path: Path, version: str, **wheel: object) -> Path:
    """A reuse bundle made by scripts/make-update-bundle.sh --wheel (the real bundle format)."""
    built = fake_wheel(tmp_path / f"w-{version}", version, **wheel)  # type: ignore[arg-type]
    out = tmp_path / f"b-{version}"
    proc = subprocess.run([MAKE_BUNDLE, "--wheel", built, "--out", out], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["mode"] == "reuse" and figures["version"] == version and figures["wheels"] == 1
    return out / "layerwatch-update.tar"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_syntax_and_shellcheck(script: Path):
    assert_shell_script_clean(script)


def test_help_and_usage():
    proc = subprocess.run([UPDATE, "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "--rollback" in proc.stdout and "--boot-apply" in proc.stdout
    assert subprocess.run([UPDATE], capture_output=True, timeout=30).returncode == 2
    assert subprocess.run([UPDATE, "--bogus"], capture_output=True, timeout=30).returncode == 2
    full = subprocess.run([MAKE_BUNDLE, "--full", "--arch", "arm64", "--out", "/tmp/x"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert full.returncode == 2 and "--python" in full.stderr  # no Python version is assumed


def test_good_update_switches_and_keeps_state_and_config(device: Device, tmp_path: Path):
    before = _state(device)
    old = device.active()
    proc = device.update(_reuse_tar(device, tmp_path, "0.2.0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checksums match" in proc.stdout and "updated to 0.2.0-" in proc.stdout
    assert device.active().startswith("venvs/0.2.0-")
    assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.2.0"
    assert device.service_state() == "active" and "restart layerwatch.service" in device.calls()
    assert _state(device) == before  # config and state: not one byte changed
    # the new venv's scripts name the new venv (not the old one, which is kept as the previous)
    script = (device.link / "bin/layerwatch").read_text().splitlines()[0]
    assert script == f"#!{device.root}/opt/layerwatch/{device.active()}/bin/python", script
    assert device.venvs == sorted([Path(old).name, Path(device.active()).name])
    # a second update prunes the oldest venv: one back is kept
    proc = device.update(_reuse_tar(device, tmp_path, "0.3.0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [v.split("-")[0] for v in device.venvs] == ["0.2.0", "0.3.0"]
    history = (device.root / "var/lib/layerwatch-update/history.log").read_text()
    assert "updated to 0.2.0-" in history and "updated to 0.3.0-" in history
    # --rollback goes back one
    back = device.update("--rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.2.0"
    status = device.update("--status").stdout
    assert "(active)" in status and "(previous)" in status
    assert _state(device) == before


def test_bundle_with_a_bad_checksum_is_refused(device: Device, tmp_path: Path):
    before, old = _state(device), device.active()
    bundle = bundle_dir(tmp_path / "bad", fake_wheel(tmp_path / "w", "0.2.0"))
    wheel = next((bundle / "wheels").glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"tampered")
    proc = device.update(bundle)
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr, proc.stdout + proc.stderr
    # the same as a .tar
    proc = device.update(tar_bundle(bundle, tmp_path / "bad.tar"))
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr
    # a file SHA256SUMS does not list
    write_sums(bundle)
    (bundle / "wheels" / "extra-1.0-py3-none-any.whl").write_bytes(b"x")
    proc = device.update(bundle)
    assert proc.returncode == 1 and "not in SHA256SUMS" in proc.stderr
    # a .tar whose own digest is not the one the user expects
    (bundle / "wheels" / "extra-1.0-py3-none-any.whl").unlink()
    good = tar_bundle(bundle, tmp_path / "good.tar")
    proc = device.update("--expect-sha256", "0" * 64, good)
    assert proc.returncode == 1 and "expected 000" in proc.stderr
    # not a bundle at all
    (tmp_path / "junk.tar").write_bytes(b"junk")
    assert device.update(tmp_path / "junk.tar").returncode == 1
    assert device.active() == old and len(device.venvs) == 1
    assert "restart layerwatch.service" not in device.calls()
    assert _state(device) == before
    assert "refused: checksum mismatch" in (device.root / "var/lib/layerwatch-update/history.log").read_text()
    # and the right digest passes
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert device.update("--expect-sha256", digest, good).returncode == 0


def test_new_version_that_fails_at_start_is_rolled_back(device: Device, tmp_path: Path):
    before, old = _state(device), device.active()
    proc = device.update(_reuse_tar(device, tmp_path, "0.2.0", run_exit=1))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "rolled back to" in proc.stderr and "which is READY" in proc.stderr
    assert device.active() == old  # the old venv, started again
    assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.1.0"
    assert device.service_state() == "active"
    assert device.calls().count("restart layerwatch.service") == 2  # the new one, then the old one
    assert len(device.venvs) == 1  # the failed venv is removed
    assert _state(device) == before


def test_new_version_that_rejects_the_config_is_refused_before_the_switch(device: Device, tmp_path: Path):
    old = device.active()
    proc = device.update(_reuse_tar(device, tmp_path, "0.2.0", rejects="analysis_interval_s"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "service.analysis_interval_s" in proc.stdout and "rejects the current" in proc.stderr
    assert device.active() == old and len(device.venvs) == 1
    assert "restart layerwatch.service" not in device.calls()


def test_reuse_bundle_that_needs_a_missing_package_is_refused(device: Device, tmp_path: Path):
    old = device.active()
    proc = device.update(_reuse_tar(device, tmp_path, "0.2.0", requires=("layerwatch-missing-dep>=1",)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "make a full bundle" in proc.stderr
    assert device.active() == old and len(device.venvs) == 1


def test_interrupted_switch_leaves_a_working_symlink(device: Device, tmp_path: Path):
    old = device.active()
    bundle = _reuse_tar(device, tmp_path, "0.2.0")
    for fault in ("before-switch", "after-link"):
        proc = device.update(bundle, LAYERWATCH_UPDATE_FAULT=fault)
        assert proc.returncode == 99, proc.stdout + proc.stderr
        assert device.active() == old  # the link was replaced in one rename, or not at all
        assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.1.0"
        assert len(device.venvs) == 2  # a half-done venv left behind (the one before it: pruned)
    assert (device.root / "opt/layerwatch/.venv.switch").is_symlink()
    # the next run cleans up what the interrupted ones left, then updates
    proc = device.update(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (device.root / "opt/layerwatch/.venv.switch").exists()
    assert [v.split("-")[0] for v in device.venvs] == ["0.1.0", "0.2.0"]


def test_full_bundle_makes_a_fresh_venv_and_wrong_python_is_refused(device: Device, tmp_path: Path):
    before = _state(device)
    wrong = bundle_dir(tmp_path / "py", fake_wheel(tmp_path / "w", "0.2.0"), mode="full", python="3.1")
    proc = device.update(wrong)
    assert proc.returncode == 1 and "for Python 3.1," in proc.stderr, proc.stderr
    # what the arm64 image puts beside pip (Debian's libcamera as a symlink, the pykms stand-in)
    old_site = next(device.link.glob("lib/python3*/site-packages"))
    (old_site / "libcamera").symlink_to("/usr/lib/python3/dist-packages/libcamera")
    (old_site / "pykms.py").write_text("# stand-in\n")
    bundle = bundle_dir(tmp_path / "full", fake_wheel(tmp_path / "w", "0.2.0"), mode="full")
    proc = device.update(bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(fresh;" in proc.stdout
    new = device.root / "opt/layerwatch" / device.active()
    assert (new / "bin/pip").exists()  # a venv of its own, not a copy of the old one
    assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.2.0"
    new_site = next(new.glob("lib/python3*/site-packages"))
    assert os.readlink(new_site / "libcamera") == "/usr/lib/python3/dist-packages/libcamera"
    assert (new_site / "pykms.py").read_text() == "# stand-in\n"
    assert _state(device) == before
    # a package the active venv has and the bundle lacks (picamera2 on the arm64 image): refused
    info = new_site / "picamera2-0.3.38.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: picamera2\nVersion: 0.3.38\n")
    (info / "RECORD").write_text("picamera2-0.3.38.dist-info/METADATA,,\n")
    active = device.active()
    proc = device.update(bundle_dir(tmp_path / "full2", fake_wheel(tmp_path / "w2", "0.3.0"), mode="full"))
    assert proc.returncode == 1 and "has picamera2, which the bundle lacks" in proc.stderr, proc.stderr
    assert device.active() == active


def test_boot_partition_update_applied_then_confirmed(device: Device, tmp_path: Path):
    before = _state(device)
    device.service("inactive")  # the boot: layerwatch.service not started yet
    bundle = _reuse_tar(device, tmp_path, "0.2.0")
    shutil.copy(bundle, device.boot / "layerwatch-update.tar")
    apply = device.update("--boot-apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert not (device.boot / "layerwatch-update.tar").exists()  # off the FAT partition
    assert (device.root / "var/lib/layerwatch-update/pending").exists()
    assert device.active().startswith("venvs/0.2.0-")
    assert "restart layerwatch.service" not in device.calls()  # systemd starts it next
    device.boot_start()
    confirm = device.update("--boot-confirm")
    assert confirm.returncode == 0, confirm.stdout + confirm.stderr
    assert not (device.root / "var/lib/layerwatch-update/pending").exists()
    result = (device.boot / "layerwatch-update.result.txt").read_text()
    assert "updated to 0.2.0-" in result and "READY" in result
    assert _state(device) == before
    # nothing pending: the units have nothing to do at the next boot
    assert device.update("--boot-apply").returncode == 0
    assert device.update("--boot-confirm").returncode == 0
    assert device.active().startswith("venvs/0.2.0-")


def test_boot_partition_update_that_fails_at_start_is_rolled_back(device: Device, tmp_path: Path):
    before, old = _state(device), device.active()
    device.service("inactive")
    shutil.copy(_reuse_tar(device, tmp_path, "0.2.0", run_exit=1), device.boot / "layerwatch-update.tar")
    assert device.update("--boot-apply").returncode == 0
    device.boot_start()
    assert device.service_state() == "failed"
    confirm = device.update("--boot-confirm")
    assert confirm.returncode == 3, confirm.stdout + confirm.stderr
    assert device.active() == old and device.service_state() == "active"
    result = (device.boot / "layerwatch-update.result.txt").read_text()
    assert "rolled back to" in result and "which is READY" in result
    assert _state(device) == before
    # a refused bundle from the boot partition says why there too, and is not tried again
    (device.boot / "layerwatch-update.tar").write_bytes(b"junk")
    assert device.update("--boot-apply").returncode == 1
    assert not (device.boot / "layerwatch-update.tar").exists()
    assert "refused" in (device.boot / "layerwatch-update.result.txt").read_text()


def test_boot_update_without_a_verdict_is_rolled_back_at_the_second_boot(device: Device, tmp_path: Path):
    old = device.active()
    device.service("inactive")
    shutil.copy(_reuse_tar(device, tmp_path, "0.2.0"), device.boot / "layerwatch-update.tar")
    assert device.update("--boot-apply").returncode == 0
    # power cut before --boot-confirm: the next boot gives it one more chance, the one after rolls back
    assert device.update("--boot-apply").returncode == 0
    assert device.active().startswith("venvs/0.2.0-")
    assert device.update("--boot-apply").returncode == 0
    assert device.active() == old
    assert "got no verdict" in (device.boot / "layerwatch-update.result.txt").read_text()


def test_boot_confirm_without_a_config_keeps_the_update(device: Device, tmp_path: Path):
    device.service("inactive")
    (device.systemd / "condition").write_text("no\n")  # ConditionPathExists= failed: unconfigured
    shutil.copy(_reuse_tar(device, tmp_path, "0.2.0"), device.boot / "layerwatch-update.tar")
    assert device.update("--boot-apply").returncode == 0
    confirm = device.update("--boot-confirm")
    assert confirm.returncode == 0 and "was not started" in confirm.stdout
    assert device.active().startswith("venvs/0.2.0-")


def test_plain_venv_folder_is_migrated_to_the_versioned_layout(tmp_path: Path):
    device = Device(tmp_path / "root", tmp_path / "fakes")
    populate(device.root)
    venv = device.root / "opt/layerwatch/venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = next(venv.glob("lib/python3*/site-packages"))
    with zipfile.ZipFile(fake_wheel(tmp_path / "w", "0.1.0")) as archive:
        archive.extractall(site)
    script = venv / "bin/layerwatch"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom appliance.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    before = _state(device)
    proc = device.update("--migrate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert venv.is_symlink() and device.active().startswith("venvs/0.1.0-")
    assert script.read_text().startswith(f"#!{device.root}/opt/layerwatch/{device.active()}/bin/python\n")
    assert device.layerwatch("--version").stdout.strip() == "layerwatch 0.1.0"
    assert device.update("--migrate").returncode == 0  # idempotent
    assert _state(device) == before


def test_update_bundle_format(tmp_path: Path):
    wheel = fake_wheel(tmp_path / "w", "0.2.0")
    proc = subprocess.run([MAKE_BUNDLE, "--wheel", wheel, "--out", tmp_path / "out"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tar = tmp_path / "out/layerwatch-update.tar"
    with tarfile.open(tar) as archive:
        names = sorted(archive.getnames())
        manifest = archive.extractfile("layerwatch-update/MANIFEST").read().decode()  # type: ignore[union-attr]
    assert names == ["layerwatch-update", "layerwatch-update/MANIFEST", "layerwatch-update/SHA256SUMS",
                     "layerwatch-update/constraints.txt", "layerwatch-update/wheels",
                     "layerwatch-update/wheels/layerwatch-0.2.0-py3-none-any.whl"]  # fmt: skip
    assert "format=1" in manifest and "mode=reuse" in manifest and "version=0.2.0" in manifest
    digest = (tmp_path / "out/layerwatch-update.tar.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(tar.read_bytes()).hexdigest()


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_image_units_verify(tmp_path: Path):
    units = sorted((STEP / "files/etc/systemd/system").glob("*.service"))
    assert {u.name for u in units} >= {"layerwatch-update.service", "layerwatch-update-confirm.service"}
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system" if Path("/usr/lib/systemd/system").is_dir()
                    else "/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)  # fmt: skip
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for path in ("usr/local/sbin/layerwatch-update", "opt/layerwatch/venv/bin/layerwatch"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("#!/bin/sh\n")
        (root / path).chmod(0o755)
    for unit in [*units, REPO / "systemd/layerwatch.service"]:
        shutil.copy(unit, target / unit.name)
    for unit in units:
        proc = subprocess.run([str(SYSTEMD_ANALYZE), "verify", f"--root={root}", str(target / unit.name)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
