"""The app's errors and the HTTP status each is answered with: the one table of the app's statuses.

Infer tasks, trainers, the datastore and the routes raise these (or the core's
``InputError`` -> 422 and ``RegistrationError`` -> 422) and never choose a status
themselves; ``lib.http.guard.status_and_message`` turns any error into a status and a
message, MONAI Label's and unexpected ones included.

They are FastAPI ``HTTPException``\\ s, so that FastAPI and MONAI Label's own endpoints,
which call into the app's datastore and tasks, answer them with their status as they are,
and the message a client reads is the error's own (``detail``).
"""

from __future__ import annotations

from typing import ClassVar

from fastapi import HTTPException


class AppError(HTTPException):
    """An error the app raises on purpose; ``status`` is the HTTP status it is answered with."""

    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(status_code=self.status, detail=message)


class BadRequest(AppError):
    """The request itself is malformed: a name that breaks the naming rules, a field that is not JSON."""

    status = 400


class Forbidden(AppError):
    """Allowed to no one: a path outside the datastore, a model writing a reviewed (final) label."""

    status = 403


class NotFound(AppError):
    """What the request names does not exist: an image, a label, a model, a trainer, a strategy, a session."""

    status = 404


class SwitchedOff(AppError):
    """A MONAI Label feature this server runs without (e.g. sessions, MONAI_LABEL_SESSIONS=false)."""

    status = 406


class Conflict(AppError):
    """The server's state forbids it now: reviewed data would be lost, or too few labels to train on."""

    status = 409


class ModelNotReady(Conflict):
    """A model has no usable weights yet (not trained, or its weights on the server do not load)."""


class TooLarge(AppError):
    """More than this server accepts (``--conf max_voxels``, ``--conf max_upload_mb``)."""

    status = 413


class InvalidRequest(AppError):
    """A request value that cannot be used (a parameter, a missing image...). Problems with a named
    file or setting are the core's ``InputError`` (also 422, "source: problem")."""

    status = 422


class ToolFailed(AppError):
    """A program the server runs for a model (SynthSeg) failed; the message carries the end of its output."""

    status = 502


class ModelFailed(AppError):
    """A model failed on an image for a reason that is not the input's (the server log has the traceback)."""

    status = 500
