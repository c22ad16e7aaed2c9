"""Progress reports: one shape across the core, ``progress(fraction, message)``.

``fraction`` runs from 0 to 1 over the whole task, or is None when a step has no estimate
(a message only); ``message`` says what is being done ("t2 -> t1", "3/10 case-007"). The
command line turns these calls into a progress bar or ``--events`` lines, the Slicer module
into its progress bar (through a job's ``report``, which also carries elastix's log lines:
:class:`JobReport`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

ProgressCallback = Callable[[float | None, str], None]


class JobReport(Protocol):
    """A background job's report (runtime.jobs.ThreadJob): a :data:`ProgressCallback` that also takes the
    kind of line, ``report(None, line, "log")`` for a log line, so that one callable feeds both."""

    def __call__(self, fraction: float | None, message: str = "", kind: str = "progress") -> None: ...


def no_progress(fraction: float | None, message: str) -> None:
    """A :data:`ProgressCallback` that reports nothing."""


def sub_progress(progress: ProgressCallback | None, start: float, end: float, message: str | None = None) -> ProgressCallback:
    """The progress of one step that covers ``start``..``end`` of the whole: the step reports 0..1, ``progress``
    sees ``start``..``end``; ``message``, when given, replaces the step's own messages."""
    if progress is None:
        return no_progress

    def report(fraction: float | None, text: str) -> None:
        progress(None if fraction is None else start + fraction * (end - start), text if message is None else message)

    return report
