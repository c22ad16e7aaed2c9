"""Exceptions raised by the core.

Every error about user input names the file (or setting) and the problem, so that
the command line, the Slicer module and the server can show it as it is.
"""

from __future__ import annotations

from pathlib import Path


class ElastixMonaiLabelError(Exception):
    """Base class of every error the core raises on purpose."""


class InputError(ElastixMonaiLabelError, ValueError):
    """An input file or setting cannot be used; ``source`` names it."""

    def __init__(self, source: str | Path, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")

    def __reduce__(self):
        # Travels between processes (prepare's workers) with its own arguments.
        return (type(self), (self.source, self.problem))


class RegistrationError(ElastixMonaiLabelError, RuntimeError):
    """elastix ran but failed; the message carries the end of its log."""


class CancelledError(ElastixMonaiLabelError):
    """The user cancelled a running job."""
