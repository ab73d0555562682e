"""Logging: to the journal (systemd-python's JournalHandler) when running under systemd and the
library is installed, else plain lines on stderr. Secrets never reach a log line: config secrets
are ``SecretStr``, URLs are masked before they are logged (:mod:`appliance.sources.redact`), and
:mod:`appliance.service.log_redaction` masks registered secrets in every record as a last line."""

from __future__ import annotations

import logging
import os
import sys

from appliance.service import log_redaction


def setup_logging(level: str = "info") -> None:
    log_redaction.install()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    handler: logging.Handler | None = None
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler  # type: ignore

            handler = JournalHandler(SYSLOG_IDENTIFIER="layerwatch")
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        except ImportError:
            handler = None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    for noisy in ("botocore", "urllib3", "paho"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
