"""The web console in Debian's headless Chromium, driven by Playwright: how every console test opens it.

``bypass_csp``: Playwright's string predicates use ``eval``, which the console's Content-Security-Policy
forbids (the CSP header itself is asserted in the API tests). Generous timeouts: a cold Chromium on a busy
2-core machine can take long to start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

#: the marks of a console test module: the shipped model, and Debian's chromium
CONSOLE_MARKS = [
    pytest.mark.usefixtures("shipped_model"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)"),
]


def launch(pw: Any) -> Any:
    """Debian's Chromium, headless (close it in a ``finally``)."""
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, timeout=120000)


def new_page(browser: Any, viewport: dict[str, int] = PHONE) -> Any:
    """A page of ``viewport`` size at scale 1, the console's CSP bypassed, 60 s timeouts."""
    page = browser.new_page(viewport=viewport, device_scale_factor=1, bypass_csp=True)
    page.set_default_timeout(60000)
    return page
