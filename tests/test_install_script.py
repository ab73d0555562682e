"""scripts/install.sh: shell syntax, shellcheck (when installed), --help, --dry-run, and a real
install into a temporary image root that is idempotent and fully undone by --uninstall; the platform
(Raspberry Pi OS: apt's python3-picamera2 and python3-lgpio, a --system-site-packages venv, apt's
numpy kept; Debian; a 32-bit system refused before anything changes) with fake dpkg and uname; and,
slow and opt-in, a hand install on a faked Raspberry Pi OS in an arm64 chroot (qemu-user):

    LAYERWATCH_RASPIOS_CHROOT=1 .ci/venv/bin/python -m pytest -q tests/test_install_script.py -k chroot
    (LAYERWATCH_ARM64_ROOTFS=rootfs.tar: an mmdebstrap arm64 bookworm tarball with python3-venv,
    python3-pip, python3-numpy and passwd made before, instead of making one)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "install.sh"
FETCH = REPO / "scripts" / "get-udevadm-verify.sh"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): (
            p.read_text(errors="replace") if p.is_file() and not p.is_symlink() else ""
        )
        for p in sorted(root.rglob("*"))
        if not p.is_dir()
    }


@pytest.mark.parametrize("script", [SCRIPT, FETCH], ids=lambda p: p.name)
def test_bash_syntax(script: Path):
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(
    shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt: shellcheck)"
)
@pytest.mark.parametrize("script", [SCRIPT, FETCH], ids=lambda p: p.name)
def test_shellcheck(script: Path):
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_help():
    proc = _run("--help")
    assert proc.returncode == 0 and "--uninstall" in proc.stdout and "--dry-run" in proc.stdout
    assert _run("--bogus").returncode == 2


def test_dry_run_changes_nothing_and_lists_every_step():
    proc = _run("--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for expected in (
        "usermod -G video,gpio layerwatch",  # exactly the device groups it needs
        "python3 -m venv",
        "/etc/systemd/system/layerwatch.service",
        "/etc/systemd/system/layerwatch-fan.service",
        "/etc/udev/rules.d/99-layerwatch.rules",
    ):
        assert expected in out, expected
    uninstall = _run("--dry-run", "--uninstall")
    assert uninstall.returncode == 0
    for removed in ("layerwatch-fan.service", "99-layerwatch.rules", "/opt/layerwatch", "/etc/layerwatch"):
        assert removed in uninstall.stdout, removed


def test_install_into_a_root_is_idempotent_and_uninstall_removes_it(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    first = _run("--root", str(root))
    assert first.returncode == 0, first.stderr
    installed = _tree(root)
    for path in (
        "etc/systemd/system/layerwatch.service",
        "etc/systemd/system/layerwatch-fan.service",
        "etc/udev/rules.d/99-layerwatch.rules",
        "etc/layerwatch/layerwatch.toml",
        "etc/layerwatch/credentials/mqtt_password",
    ):
        assert path in installed, path
    # the update command finds its other half where install.sh put it (and says so when it is gone)
    command = [str(root / "usr/local/sbin/layerwatch-update"), "--help"]
    env = {**os.environ, "LAYERWATCH_ROOT": str(root)}
    helped = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert helped.returncode == 0 and "layerwatch-update BUNDLE" in helped.stdout, helped.stderr
    # `layerwatch` on PATH: a link through the venv symlink, so an update moves it too
    assert os.readlink(root / "usr/local/bin/layerwatch") == "/opt/layerwatch/venv/bin/layerwatch"
    assert (
        installed["etc/systemd/system/layerwatch-fan.service"]
        == (REPO / "systemd" / "layerwatch-fan.service").read_text()
    )
    # the user's edits survive a second run; nothing else changes
    config = root / "etc/layerwatch/layerwatch.toml"
    config.write_text(config.read_text() + "\n# edited\n")
    second = _run("--root", str(root))
    assert second.returncode == 0, second.stderr
    assert "# edited" in config.read_text()
    after = _tree(root)
    after["etc/layerwatch/layerwatch.toml"] = installed["etc/layerwatch/layerwatch.toml"]
    assert after == installed
    # --keep-data keeps config and state, plain --uninstall removes everything
    library = root / "usr/local/lib/layerwatch/update-bundle.sh"
    library.rename(tmp_path / "moved.sh")
    lost = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert lost.returncode == 1 and "update-bundle.sh is missing" in lost.stderr
    (tmp_path / "moved.sh").rename(library)
    assert _run("--root", str(root), "--uninstall", "--keep-data").returncode == 0
    assert set(_tree(root)) == {p for p in installed if p.startswith("etc/layerwatch/")}
    assert _run("--root", str(root), "--uninstall").returncode == 0
    assert _tree(root) == {}
    # someone else's /usr/local/bin/layerwatch (not a link) is left alone, and said so
    (root / "usr/local/bin/layerwatch").write_text("#!/bin/sh\n")
    third = _run("--root", str(root))
    assert third.returncode == 0 and "is not a link: left as it is" in third.stdout
    assert (root / "usr/local/bin/layerwatch").read_text() == "#!/bin/sh\n"


# --- the platform: Raspberry Pi OS, Debian, 32-bit refused (fake dpkg, dpkg-query and uname on PATH) ---

FAKE_DPKG = """#!/bin/sh
case "$1" in
  --print-architecture) echo "$FAKE_DPKG_ARCH" ;;
  -s) [ "$2" = raspberrypi-sys-mods ] && [ -n "$FAKE_RPI_SYS_MODS" ] ;;
  *) exit 1 ;;
esac
"""
FAKE_DPKG_QUERY = """#!/bin/sh
# dpkg-query -W -f '${Version}' python3-numpy
[ -n "$FAKE_NUMPY" ] && printf '%s' "$FAKE_NUMPY"
"""
FAKE_UNAME = """#!/bin/sh
echo "$FAKE_UNAME_M"
"""


def _as_platform(
    tmp_path: Path,
    *args: str,
    arch: str = "arm64",
    machine: str = "aarch64",
    rpi_issue: bool = False,
    sys_mods: bool = False,
    numpy: str = "",
) -> subprocess.CompletedProcess[str]:
    """install.sh --dry-run on a system that looks like ARCH/MACHINE, Raspberry Pi OS or not."""
    fake = tmp_path / "bin"
    fake.mkdir(parents=True, exist_ok=True)
    for name, text in (("dpkg", FAKE_DPKG), ("dpkg-query", FAKE_DPKG_QUERY), ("uname", FAKE_UNAME)):
        (fake / name).write_text(text)
        (fake / name).chmod(0o755)
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    if rpi_issue:
        (etc / "rpi-issue").write_text("Raspberry Pi reference 2025-11-24\n")
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "LAYERWATCH_DETECT_ETC": str(etc),
        "FAKE_DPKG_ARCH": arch,
        "FAKE_UNAME_M": machine,
        "FAKE_RPI_SYS_MODS": "1" if sys_mods else "",
        "FAKE_NUMPY": numpy,
    }
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip


@pytest.mark.parametrize(
    ("arch", "machine"),
    [("armhf", "armv7l"), ("armhf", "aarch64"), ("armel", "armv6l"), ("i386", "i686")],
    ids=["raspios-32bit", "raspios-32bit-on-a-64bit-kernel", "armel", "i386"],
)
def test_a_32bit_system_is_refused_before_anything_changes(tmp_path: Path, arch: str, machine: str):
    proc = _as_platform(tmp_path, arch=arch, machine=machine, rpi_issue=arch == "armhf")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "needs a 64-bit OS" in proc.stderr and "onnxruntime" in proc.stderr
    assert f"dpkg architecture {arch}, kernel {machine}" in proc.stderr
    assert "nothing was changed" in proc.stderr
    assert "+ " not in proc.stdout  # not one step was printed (so none would have run)
    if arch == "armhf":
        assert "Raspberry Pi OS (64-bit)" in proc.stderr


def test_raspberry_pi_os_gets_apt_picamera2_and_a_system_site_venv(tmp_path: Path):
    proc = _as_platform(tmp_path, rpi_issue=True, numpy="1:1.24.2-1+deb12u1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "platform: raspios" in out
    assert re.search(r"\+ apt-get install .* python3-picamera2 python3-lgpio", out), out
    assert re.search(r"\+ python3 -m venv --system-site-packages /opt/layerwatch/venvs/\S+", out), out
    assert "+ mv -T /opt/layerwatch/.venv.switch /opt/layerwatch/venv" in out
    # apt's numpy stays the venv's (picamera2's compiled helpers are built for it)
    assert "numpy kept at apt's 1.24.2" in out
    assert re.search(
        r"pip install --quiet -c /opt/layerwatch/venv/share/layerwatch-apt-pins.txt \S+\[litert,cloud\]", out
    )
    assert "pip install --quiet lgpio" not in out  # python3-lgpio from apt instead
    # it says what it did
    assert (
        "layerwatch: done:" in out and "apt: python3-venv python3-pip python3-picamera2 python3-lgpio" in out
    )
    # the other sign of Raspberry Pi OS: the raspberrypi-sys-mods package
    other = _as_platform(tmp_path / "mods", sys_mods=True)
    assert other.returncode == 0 and "platform: raspios" in other.stdout


def test_debian_gets_no_pi_packages_and_a_plain_venv(tmp_path: Path):
    for arch, machine in (("arm64", "aarch64"), ("amd64", "x86_64")):
        proc = _as_platform(tmp_path, arch=arch, machine=machine)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout
        assert "platform: debian" in out
        assert "python3-picamera2" not in out and "--system-site-packages" not in out
        assert "pip install --quiet lgpio" in out
        assert "numpy kept" not in out


def test_a_plain_venv_folder_is_moved_to_the_versioned_layout_on_install(tmp_path: Path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    (root / "opt/layerwatch/venv/bin").mkdir(parents=True)
    (root / "opt/layerwatch/venv/bin/python").touch(mode=0o755)
    proc = _run("--dry-run", "--root", str(root), "--wheels", str(tmp_path / "wheels"))
    assert proc.returncode == 0, proc.stderr
    assert f"LAYERWATCH_ROOT={root} bash {REPO}/scripts/update.sh --migrate" in proc.stdout


# --- slow, opt-in: a hand install on a (faked) Raspberry Pi OS in an arm64 chroot -------------------------

RASPIOS_ROOTFS = os.environ.get("LAYERWATCH_ARM64_ROOTFS", "")
APT_SHIM = """#!/bin/sh
# Raspberry Pi OS's own packages are not in Debian: stand-ins for the test (tests/test_install_script.py)
echo "apt-get $*" >>/var/log/apt-shim.log
DIST=/usr/lib/python3/dist-packages
for word in "$@"; do
  case "$word" in
    python3-picamera2)
      mkdir -p "$DIST/picamera2"
      echo '# stand-in for apt python3-picamera2 (test)' >"$DIST/picamera2/__init__.py" ;;
    python3-lgpio)
      echo '# stand-in for apt python3-lgpio (test)' >"$DIST/lgpio.py" ;;
  esac
done
set --
exit 0
"""


def _arm64_chroot_ready() -> str:
    if os.environ.get("LAYERWATCH_RASPIOS_CHROOT") != "1":
        return "opt-in: LAYERWATCH_RASPIOS_CHROOT=1 (an arm64 chroot under qemu-user, several minutes)"
    if os.geteuid() != 0:
        return "chroot needs root"
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        return "no qemu-aarch64 in binfmt_misc (qemu-user-static; PLATFORM.md)"
    if not RASPIOS_ROOTFS and shutil.which("mmdebstrap") is None:
        return "mmdebstrap is missing"
    return ""


@pytest.mark.slow
@pytest.mark.skipif(bool(_arm64_chroot_ready()), reason=_arm64_chroot_ready() or "ready")
def test_hand_install_on_a_faked_raspberry_pi_os_in_an_arm64_chroot(tmp_path: Path):
    """Debian 12 arm64 (Raspberry Pi OS Bookworm's base) with /etc/rpi-issue, an apt shim for
    python3-picamera2 and python3-lgpio, and Debian's python3-numpy (which python3-picamera2 pulls in):
    `scripts/install.sh` as a user runs it, then `layerwatch check-config` in the chroot. pip in the
    chroot has no CA bundle: the aarch64 wheels are downloaded on the host (PIP_FIND_LINKS, no index)."""
    root = tmp_path / "root"
    root.mkdir()
    tar = Path(RASPIOS_ROOTFS) if RASPIOS_ROOTFS else tmp_path / "rootfs.tar"
    if not RASPIOS_ROOTFS:
        subprocess.run(["mmdebstrap", "--mode=root", "--variant=minbase", "--architectures=arm64",
                        "--include=python3,python3-venv,python3-pip,python3-numpy,passwd", "bookworm", tar,
                        "deb http://deb.debian.org/debian bookworm main"],
                       check=True, capture_output=True, timeout=1800)  # fmt: skip
    subprocess.run(["tar", "-xf", tar, "-C", root], check=True, timeout=600)
    (root / "etc/rpi-issue").write_text("Raspberry Pi reference 2025-11-24 (faked by the test)\n")
    shim = root / "usr/local/sbin/apt-get"
    shim.write_text(APT_SHIM)
    shim.chmod(0o755)
    numpy = subprocess.run(["chroot", root, "dpkg-query", "-W", "-f", "${Version}", "python3-numpy"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    numpy = re.sub(r"^\d+:", "", numpy).split("-")[0].split("+")[0]
    src = root / "tmp/layerwatch-src"
    for name in ("pyproject.toml", "README.md"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, src / name)
    for name in ("appliance", "scripts", "systemd", "udev", "models"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the aarch64 wheels for the chroot's Python, downloaded here, with apt's numpy held (as install.sh does)
    version = "import sys; print('%d%d' % sys.version_info[:2])"
    python = subprocess.run(["chroot", root, "python3", "-c", version], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    wheels = root / "wheels"
    (tmp_path / "pins.txt").write_text(f"numpy=={numpy}\n")
    platforms = []
    for tag in ("manylinux_2_36", "manylinux_2_35", "manylinux_2_34", "manylinux_2_31", "manylinux_2_28",
                "manylinux_2_27", "manylinux_2_24", "manylinux_2_17", "manylinux2014"):  # fmt: skip
        platforms += ["--platform", f"{tag}_aarch64"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheels, *platforms,
                    "--python-version", python, "--implementation", "cp", "--abi", f"cp{python}",
                    "--only-binary=:all:", "-c", tmp_path / "pins.txt", f"{REPO}[litert,cloud]",
                    "setuptools>=77", "wheel"], check=True, timeout=900)  # fmt: skip
    env = ["env", "PIP_NO_INDEX=1", "PIP_FIND_LINKS=/wheels", "PIP_DISABLE_PIP_VERSION_CHECK=1",
           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]  # fmt: skip
    install = subprocess.run(["chroot", root, *env, "bash", "/tmp/layerwatch-src/scripts/install.sh"],
                             capture_output=True, text=True, timeout=3600)  # fmt: skip
    print(install.stdout[-3000:])
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    out = install.stdout
    assert "platform: raspios" in out
    assert f"numpy kept at apt's {numpy}" in out
    assert "apt: python3-venv python3-pip python3-picamera2 python3-lgpio" in out
    assert "python3-picamera2" in (root / "var/log/apt-shim.log").read_text()
    link = root / "opt/layerwatch/venv"
    assert link.is_symlink() and os.readlink(link).startswith("venvs/0.1.0-")
    assert "include-system-site-packages = true" in (link / "pyvenv.cfg").read_text()
    assert (root / "usr/local/sbin/layerwatch-update").is_file()
    check = subprocess.run(["chroot", root, *env, "layerwatch", "check-config"],  # /usr/local/bin's link
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert check.returncode == 0 and "configuration OK" in check.stdout, check.stdout + check.stderr
    # apt's picamera2 (the stand-in) and apt's numpy, seen through the venv
    probe = (
        "import picamera2, numpy, cv2, onnxruntime\n"
        "print(picamera2.__file__, numpy.__version__, numpy.__file__)"
    )
    seen = subprocess.run(["chroot", root, "/opt/layerwatch/venv/bin/python", "-c", probe],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert seen.returncode == 0, seen.stderr
    assert "/usr/lib/python3/dist-packages/picamera2" in seen.stdout
    assert f" {numpy} /usr/lib/python3/dist-packages/numpy" in seen.stdout
    # the update command on the same system (no systemd in a chroot: switched, not restarted)
    old = os.readlink(link)
    env_host = {**os.environ, "PYTHON": sys.executable}
    made = subprocess.run([REPO / "scripts/make-update-bundle.sh", "--out", root / "tmp/bundle"],
                          env=env_host, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert made.returncode == 0, made.stderr
    update = subprocess.run(["chroot", root, *env, "/usr/local/sbin/layerwatch-update",
                             "/tmp/bundle/layerwatch-update.tar"], capture_output=True, text=True,
                            timeout=1800)  # fmt: skip
    print(update.stdout[-2000:])
    assert update.returncode == 0, update.stdout[-3000:] + update.stderr[-3000:]
    assert "systemd is not running: not restarted" in update.stdout
    assert os.readlink(link) != old and (root / "opt/layerwatch" / old).is_dir()  # the previous one kept
    assert "include-system-site-packages = true" in (link / "pyvenv.cfg").read_text()
    again = subprocess.run(["chroot", root, "/opt/layerwatch/venv/bin/python", "-c", probe],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0 and f" {numpy} /usr/lib/python3/dist-packages/numpy" in again.stdout
