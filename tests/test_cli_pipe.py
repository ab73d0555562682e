"""``layerwatch check-config --schema | head`` ends quietly (issue 32 defect 12): a reader that goes away is
no error and prints no traceback."""

from __future__ import annotations

import subprocess
import sys


def test_schema_into_a_pipe_closed_early_is_no_error():
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "check-config", "--schema"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().strip() == b"{"
    proc.stdout.close()  # as `head -1` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, stderr
    assert b"Traceback" not in stderr and b"BrokenPipe" not in stderr
