"""One check for the project's shell scripts: bash parses it and, where shellcheck is installed (apt:
shellcheck; scripts/test.sh installs it), shellcheck has nothing to say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def assert_shell_script_clean(script: Path) -> None:
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, syntax.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt: shellcheck)")
    proc = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
