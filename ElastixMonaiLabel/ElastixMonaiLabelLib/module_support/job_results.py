"""What the Slicer module does with its background jobs once they end, and where their progress shows.

The widget polls its jobs.JobBoard from a timer; every job that finished in one poll has its callback run here,
each on its own: one that fails is reported and the next still runs (a job finished in the same poll is never
lost), and a cancelled job is told apart from a failed one (cancelling is not an error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..errors import CancelledError

# The panel's sections: each job role's progress shows in its own section (inputs has no progress bar).
SECTIONS = {"sample": "inputs", "registration": "registration", "connection": "segmentation",
            "segmentation": "segmentation", "submit": "segmentation", "next sample": "segmentation",
            "training": "training", "stop training": "training"}


def section_of(role: str) -> str:
    """The section of the panel that shows ``role``'s progress ("inputs", "registration", "segmentation", "training")."""
    return SECTIONS[role]


def deliver(finished: Iterable[tuple[str, Any, Callable[[Any], Any]]], on_failure: Callable[[str, Exception], Any],
            on_cancelled: Callable[[str], Any]) -> None:
    """Run ``on_done(job)`` for each (role, job, on_done) of ``finished`` (jobs.JobBoard.poll's second list), each on
    its own: a callback that raises CancelledError (the Logic's result of a cancelled job) calls ``on_cancelled(role)``,
    any other exception ``on_failure(role, error)``; either way the next callback runs."""
    for role, job, on_done in finished:
        try:
            on_done(job)
        except CancelledError:
            on_cancelled(role)
        except Exception as error:  # noqa: BLE001 - shown by on_failure; the other jobs' callbacks must still run
            on_failure(role, error)
