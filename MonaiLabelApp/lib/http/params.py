"""Request parameters every endpoint and model of the app reads the same way."""

from __future__ import annotations

from typing import Any

from .errors import InvalidRequest

_YES = ("true", "yes", "1")
_NO = ("false", "no", "0")


def yes_no(value: Any, name: str, default: bool | None = False, auto: bool = False) -> bool | None:
    """A yes/no parameter: true/false (JSON), 1/0, or "true"/"false", "yes"/"no", "1"/"0" (any case).

    Absent (None) gives ``default``; with ``auto``, "auto" gives None (the model decides).
    Anything else is an InvalidRequest (HTTP 422) naming the parameter: a typo never passes for yes or no.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _YES:
            return True
        if text in _NO:
            return False
        if auto and text == "auto":
            return None
    choices = "true, false or auto" if auto else "true or false"
    raise InvalidRequest(f"{name} must be {choices}, not {str(value)[:80]!r}")
