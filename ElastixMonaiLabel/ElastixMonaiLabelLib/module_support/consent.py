"""The user's consent to upload images to a server, remembered per server.

Nothing leaves the computer before the user said yes for that server. A server is
identified by scheme, host and port ('localhost:8000' and 'http://localhost:8000/'
are one server; another port is another server). The record is a small JSON file
in the application's settings folder, written atomically.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from pathlib import Path

from ..client.rest import normalize_url
from ..runtime.files import write_text


def server_key(url: str) -> str:
    """'localhost:8000/' -> 'http://localhost:8000'; the default port written out."""
    parts = urllib.parse.urlsplit(normalize_url(url))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


class ConsentStore:
    """Which servers the user allowed to receive images."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}  # a damaged record means asking again, never assuming consent
        return data if isinstance(data, dict) else {}

    def granted(self, url: str) -> bool:
        return server_key(url) in self._read()

    def grant(self, url: str) -> None:
        data = self._read()
        data[server_key(url)] = {"granted": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps(data, indent=2) + "\n")

    def revoke(self, url: str) -> None:
        data = self._read()
        if data.pop(server_key(url), None) is not None:
            write_text(self.path, json.dumps(data, indent=2) + "\n")

    def servers(self) -> list[str]:
        return sorted(self._read())
