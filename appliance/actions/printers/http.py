"""What the OctoPrint and Moonraker clients share: base URL, ``X-Api-Key``, error mapping.

Its own module so that ``requests`` (about 5 MB of the service's peak memory) is imported only when a
printer is configured: :func:`appliance.actions.printers.build_printer` imports the clients lazily.
"""

from __future__ import annotations

from typing import Any

import requests

from appliance.errors import PrinterError, PrinterRefusedError
from appliance.service.log_redaction import register_secret


class HttpPrinter:
    """What the OctoPrint and Moonraker clients share: base URL, X-Api-Key, error mapping."""

    name = "printer"

    def __init__(
        self, url: str, api_key: str | None, timeout_s: float, session: requests.Session | None = None
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        if api_key:
            register_secret(api_key)
            self.session.headers["X-Api-Key"] = api_key

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.Timeout:
            raise PrinterError(f"{self.name}: no answer within {self.timeout_s:.0f} s") from None
        except requests.RequestException as exc:
            raise PrinterError(f"{self.name}: {type(exc).__name__} (server unreachable)") from None
        if response.status_code >= 500:
            raise PrinterError(f"{self.name}: HTTP {response.status_code} on {method} {path}")
        if response.status_code >= 400:
            raise PrinterRefusedError(f"{self.name}: HTTP {response.status_code} on {method} {path}")
        return response

    def json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            data = self.request("GET", path, **kwargs).json()
        except ValueError:
            raise PrinterError(f"{self.name}: {path} did not answer JSON") from None
        if not isinstance(data, dict):
            raise PrinterError(f"{self.name}: {path} did not answer a JSON object")
        return data
