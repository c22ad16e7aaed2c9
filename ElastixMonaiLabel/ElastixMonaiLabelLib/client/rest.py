"""A small MONAI Label REST client: stdlib only, Python 3.11-3.13 (no ``cgi``), no monailabel import.

Used by the Slicer module (monailabel cannot be installed into Slicer) and the command
line. Every failure is a :class:`ServerError` that says what went wrong: server down,
timeout, or the HTTP status with the server's own message.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

from ..errors import ElastixMonaiLabelError
from ..runtime.files import atomic_path


# The access token a client sends when none is given explicitly (the server reads its own from --conf auth_token).
TOKEN_ENVIRONMENT_VARIABLE = "ELASTIXMONAILABEL_TOKEN"


class ServerError(ElastixMonaiLabelError):
    """The server could not be reached, timed out, or answered with an error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        return (type(self), (str(self), self.status))


def normalize_url(url: str) -> str:
    """'localhost:8000' -> 'http://localhost:8000'; trailing slashes removed."""
    url = url.strip()
    if not url:
        raise ServerError("no server address given")
    if "://" not in url:
        url = "http://" + url
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ServerError(f"not a server address: {url!r} (expected e.g. http://127.0.0.1:8000)")
    return url.rstrip("/")


def _encode_multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    boundary = f"----elastixmonailabel{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        )
    for name, path in files.items():
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(header.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def decode_multipart(body: bytes, content_type: str) -> dict[str, tuple[dict[str, str], bytes]]:
    """Parts of a multipart reply by field name: (headers, payload)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition") or part.get_filename() or f"part{len(parts)}"
        headers = {key.lower(): str(value) for key, value in part.items()}
        parts[name] = (headers, part.get_payload(decode=True) or b"")
    return parts


@dataclass
class InferResult:
    """A segmentation returned by the server: the label file written locally, and its params."""

    label_path: Path
    params: dict[str, Any]


_EPOCH = re.compile(r"Epoch(?::\s*|\[)(\d+)(?:/(\d+))?")
# The exception a failed training ended with, as the last lines of its log show it ("main.TrainingFailed: training
# segmentation failed: training needs at least 2 labelled images..."), and this project's app's own prefix of it.
_EXCEPTION_LINE = re.compile(r"^\s*[\w.]*(?:Error|Exception|Failed|Failure)\w*: (.+)$")
_APP_PREFIX = re.compile(r"^training \S+ failed: ")


def _failure_reason(details: list[str]) -> str | None:
    """Why a training failed: the message of the last exception line in its log, or None."""
    for line in reversed(details):
        match = _EXCEPTION_LINE.match(line)
        if match:
            return _APP_PREFIX.sub("", match.group(1)).strip()
    return None


def training_progress(status: Any, max_epochs: int | None = None) -> tuple[float | None, str]:
    """(fraction done or None, one line for people) from a GET /train/ answer.

    MONAI Label puts the training log's last lines in ``details``; the last
    'Epoch: E/N' (or ignite's 'Epoch[E]') there says how far it got, and for a
    failed training the last exception line says why (kept in the message).
    """
    if not isinstance(status, dict) or not status:
        return None, "no training has run on this server"
    state = str(status.get("status", "unknown")).upper()
    epoch, total = None, max_epochs
    details = [str(d) for d in status.get("details") or []]
    for line in reversed(details):
        match = _EPOCH.search(line)
        if match and epoch is None:
            epoch = int(match.group(1))
        if match and match.group(2):  # ignite's 'Epoch[E]' lines do not say the total
            total = int(match.group(2))
            break
    if state == "DONE":
        return 1.0, "training finished"
    if state in ("SUBMITTED", "QUEUED"):
        return 0.0, "training queued"
    if state == "RUNNING":
        if epoch is not None and total:
            return min(epoch / total, 1.0), f"training: epoch {epoch} of {total}"
        return None, "training started"
    reason = _failure_reason(details) if state in ("ERROR", "FAILED") else None
    return None, f"training {state.lower()}" + (f" at epoch {epoch}" if epoch is not None else "") + (
        f": {reason}" if reason else "")


class MonaiLabelClient:
    """Talks to one MONAI Label server."""

    def __init__(self, url: str, timeout: float = 60.0, token: str | None = None) -> None:
        """``token``: the server's access token (``--conf auth_token``), sent as ``Authorization: Bearer``;
        default ``$ELASTIXMONAILABEL_TOKEN``, none when unset."""
        self.url = normalize_url(url)
        self.timeout = timeout
        self.token = token if token is not None else (os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None)

    # -- transport ---------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, query: dict[str, Any] | None = None, body: bytes | None = None,
        content_type: str | None = None, timeout: float | None = None,
    ) -> tuple[bytes, str]:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        request = urllib.request.Request(url, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            raise ServerError(f"{method} {path} failed: HTTP {error.code}: {self._server_message(error)}", error.code) from error
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise ServerError(f"{self.url} did not answer within {timeout or self.timeout:g} s") from error
            raise ServerError(f"cannot reach the MONAI Label server at {self.url} ({reason}); is it running?") from error
        except (socket.timeout, TimeoutError) as error:
            raise ServerError(f"{self.url} did not answer within {timeout or self.timeout:g} s") from error
        except ConnectionError as error:
            raise ServerError(f"connection to {self.url} failed ({error})") from error

    @staticmethod
    def _server_message(error: urllib.error.HTTPError) -> str:
        text = error.read().decode(errors="replace").strip()
        try:
            detail = json.loads(text)
            if isinstance(detail, dict):
                detail = detail.get("detail", detail)
            return detail if isinstance(detail, str) else json.dumps(detail)
        except json.JSONDecodeError:
            return text[:500] or error.reason

    def _json(self, method: str, path: str, **kwargs) -> Any:
        body, _ = self._request(method, path, **kwargs)
        return json.loads(body) if body.strip() else None

    # -- API ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """GET /info/: models (with labels and channels), trainers, strategies, datastore summary."""
        return self._json("GET", "/info/")

    def datastore(self) -> dict[str, Any]:
        return self._json("GET", "/datastore/", query={"output": "all"})

    def upload_image(self, path: str | Path, image_id: str | None = None, params: dict[str, Any] | None = None) -> str:
        """PUT /datastore/image: add an image (e.g. a 4D multimodal stack) and return its id."""
        body, content_type = _encode_multipart({"params": json.dumps(params or {})}, {"file": Path(path)})
        reply = self._json("PUT", "/datastore/image", query={"image": image_id}, body=body, content_type=content_type)
        return reply["image"] if isinstance(reply, dict) and "image" in reply else image_id

    def download_image(self, image_id: str, out_path: str | Path) -> Path:
        """GET /datastore/image: the image file of a datastore entry, written atomically to ``out_path``."""
        body, _ = self._request("GET", "/datastore/image", query={"image": image_id})
        out_path = Path(out_path)
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(body)
        return out_path

    def infer(
        self, model: str, image_id: str, out_path: str | Path, params: dict[str, Any] | None = None,
        file: str | Path | None = None, timeout: float | None = None,
    ) -> InferResult:
        """POST /infer/{model}: run a model on a datastore image (or an uploaded ``file``).

        The label image is written to ``out_path`` (atomically); params hold label names etc.
        """
        files = {"file": Path(file)} if file else {}
        body, content_type = _encode_multipart({"params": json.dumps(params or {})}, files)
        payload, reply_type = self._request(
            "POST", f"/infer/{urllib.parse.quote(model)}", query={"image": image_id, "output": "all"},
            body=body, content_type=content_type, timeout=timeout,
        )
        if not reply_type.startswith("multipart/"):
            raise ServerError(f"infer {model}: expected a multipart reply with image and params, got {reply_type or 'nothing'}")
        parts = decode_multipart(payload, reply_type)
        params_part = parts.get("params")
        image_part = next((p for name, p in parts.items() if name != "params"), None)
        if image_part is None or params_part is None:
            raise ServerError(f"infer {model}: the reply lacks the label image or its params (parts: {', '.join(parts)})")
        out_path = Path(out_path)
        with atomic_path(out_path) as tmp:
            tmp.write_bytes(image_part[1])
        return InferResult(out_path, json.loads(params_part[1] or b"{}"))

    def save_label(self, image_id: str, label_path: str | Path, tag: str = "final", params: dict[str, Any] | None = None) -> Any:
        """PUT /datastore/label: store a (corrected) label for an image."""
        body, content_type = _encode_multipart({"params": json.dumps(params or {})}, {"label": Path(label_path)})
        return self._json("PUT", "/datastore/label", query={"image": image_id, "tag": tag}, body=body, content_type=content_type)

    def train_start(self, model: str, params: dict[str, Any] | None = None) -> Any:
        return self._json("POST", f"/train/{urllib.parse.quote(model)}", body=json.dumps(params or {}).encode(),
                          content_type="application/json")

    def train_stop(self) -> Any:
        return self._json("DELETE", "/train/")

    def train_status(self, check_if_running: bool = False) -> Any:
        return self._json("GET", "/train/", query={"check_if_running": str(check_if_running).lower()})

    def wait_for_training(self, timeout: float = 3600.0, poll: float = 2.0) -> dict[str, Any]:
        """Block until the training task is no longer queued or running; return its last status."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            status = self.train_status()
            if not isinstance(status, dict) or status.get("status") not in ("SUBMITTED", "QUEUED", "RUNNING"):
                return status
            if time.monotonic() > deadline:
                raise ServerError(f"training still {status.get('status', 'running').lower()} after {timeout:g} s")
            time.sleep(poll)

    def next_sample(self, strategy: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST /activelearning/{strategy}: the image the strategy picks next."""
        return self._json("POST", f"/activelearning/{urllib.parse.quote(strategy)}", body=json.dumps(params or {}).encode(),
                          content_type="application/json")
