"""Another process eating CPU beside the service (a Pi that also runs OctoPrint), bounded in time.

:func:`cpu_hog` starts ``ceil(cores)`` child processes: each spins for ``share`` of every 50 ms slice
(1.0 for whole cores, the fraction for the rest) and exits on its own after ``seconds``, so a test that
dies cannot leave one behind for long; the context manager also kills them on the way out.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SPIN = """
import sys, time
share, end = float(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    start = time.monotonic()
    while time.monotonic() - start < 0.05 * share:
        pass
    if share < 1.0:
        time.sleep(0.05 * (1.0 - share))
"""


@contextmanager
def cpu_hog(cores: float = 1.4, seconds: float = 120.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    shares = [1.0] * int(cores) + ([cores - int(cores)] if cores > int(cores) else [])
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN, f"{share:.3f}", f"{seconds:.1f}"])
             for share in shares[: math.ceil(cores)]]  # fmt: skip
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def cpu_seconds(procs: list[subprocess.Popen[bytes]]) -> float:
    """CPU time (user + system, seconds) the hog's processes used so far (0 for one already gone)."""
    total = 0.0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
