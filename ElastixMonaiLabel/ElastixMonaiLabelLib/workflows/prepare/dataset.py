"""A whole dataset into the datastore: find the cases, skip those done, run the rest (here, in worker
processes or on a Dask cluster), and write the summary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...data.modalities import canonical_channel
from ...errors import CancelledError, ElastixMonaiLabelError, InputError
from ...runtime.files import ensure_output_dir, write_text
from ...runtime.processes import CancelToken
from ...runtime.progress import ProgressCallback
from ...segmentation.synthseg_tool import SynthSegCommand
from .layouts import CO_REGISTERED_LAYOUTS, DEFAULT_CHANNELS, Case, find_cases
from .runners import Job, run_here, run_in_processes, run_on_dask


class _Tally:
    """The summary's done / failed / cancelled lists, filled as cases finish, with progress "k/n case"."""

    def __init__(self, summary: dict[str, Any], total: int, progress: ProgressCallback | None) -> None:
        self.summary, self.total, self.progress = summary, total, progress
        self.finished = len(summary["skipped"])
        if progress:
            progress(self.finished / total, f"{self.finished}/{total} {'resuming' if self.finished else 'starting'}")

    def record(self, case_id: str, outcome: Any) -> None:
        self.finished += 1
        if isinstance(outcome, CancelledError):
            self.summary["cancelled"].append(case_id)
        elif isinstance(outcome, BaseException):
            reason = str(outcome) if isinstance(outcome, ElastixMonaiLabelError) else f"{type(outcome).__name__}: {outcome}"
            self.summary["failed"][case_id] = reason
        else:
            self.summary["done"].append(case_id)
        if self.progress:
            self.progress(self.finished / self.total, f"{self.finished}/{self.total} {case_id}")


def _is_done(out: Path, case_id: str) -> bool:
    """A case is done when its marker (written last) and its case file exist."""
    return (out / ".prepare" / f"{case_id}.json").exists() and (out / f"{case_id}.nii.gz").exists()


def _channels(layout: str, reference: str, channels: Sequence[str] | None) -> tuple[list[str], str]:
    """The datastore's channel order (the reference first) and the reference's canonical name."""
    wanted = [canonical_channel(c) for c in (channels or DEFAULT_CHANNELS.get(layout, ()))]
    reference = canonical_channel(reference)
    return [reference, *[c for c in wanted if c != reference]], reference


def _atlases(count: int, out: Path, scheduler: str | None) -> list[Any]:
    from ...runtime.resources import cache_dir
    from ...segmentation.atlases import build_atlases

    # Built once into this machine's cache, shared with the server; a remote Dask cluster's workers
    # see only SRC and the datastore, so for them the atlases go into the datastore.
    remote = scheduler is not None and scheduler != "local"
    return build_atlases(out / ".prepare" / "atlases" if remote else cache_dir() / "atlases", count=count)


def _outcomes(jobs: list[Job], scheduler: str | None, workers: int, cancel: CancelToken) -> Iterator[tuple[str, Any]]:
    if scheduler:
        return run_on_dask(jobs, scheduler, workers, cancel)
    if workers <= 1:
        return run_here(jobs, cancel)
    return run_in_processes(jobs, workers, cancel)


def _settle_cancelled(summary: dict[str, Any], jobs: list[Job], out: Path) -> None:
    """Cases never started because of a cancel count as cancelled too, unless they finished after all
    (a running Dask job cannot be interrupted): the marker, written last, tells."""
    seen = set(summary["done"]) | set(summary["failed"]) | set(summary["cancelled"])
    summary["cancelled"] += [job[0].case_id for job in jobs if job[0].case_id not in seen]
    finished_anyway = [c for c in summary["cancelled"] if _is_done(out, c)]
    summary["done"] += finished_anyway
    summary["cancelled"] = [c for c in summary["cancelled"] if c not in finished_anyway]
    summary["done"].sort()
    summary["cancelled"].sort()


def _find(source: Path, layout: str, label_pattern: str | None, workers: int) -> list[Case]:
    if workers < 1:
        raise InputError("workers", f"must be 1 or more, not {workers}")
    cases = find_cases(source, layout, label_pattern)
    if not cases:
        raise InputError(source, f"no case found for layout {layout}")
    return cases


def prepare_dataset(
    source: str | Path,
    out: str | Path,
    *,
    layout: str = "generic",
    reference: str = "t1",
    channels: Sequence[str] | None = None,
    label_pattern: str | None = None,
    atlas_labels: int = 0,
    synthseg: SynthSegCommand | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    preset: str | None = None,
    engine: str = "itk",
    register: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Prepare every case of ``source`` into the datastore ``out``; return (and write) the summary.

    ``label_pattern`` imports label files; ``atlas_labels`` > 0 instead labels each case by
    registration of that many atlases (stored under the ``original`` tag), and ``synthseg``
    runs SynthSeg on each case's reference image (see :mod:`...segmentation.synthseg_tool`; stored as
    ``final``, its volumes and QC tables kept in ``out/synthseg``). ``workers`` > 1 prepares cases in
    parallel processes; ``scheduler`` (a Dask scheduler address, or "local" for a local Dask cluster of
    ``workers`` processes) spreads them over a Dask cluster whose workers see ``source`` and ``out`` at
    the same paths. ``register``: co-register each case's modalities (default: yes, except for layouts
    whose modalities come co-registered, BraTS, which are kept as they are after checking that they
    share one grid). ``progress`` hears "k/n CASE" as cases finish.

    ``cancel`` (e.g. Ctrl-C) stops the run: no new case starts, the cases in flight are
    abandoned (see :func:`.case.prepare_case`), and the summary lists them under ``cancelled``.
    Nothing is created when the arguments are wrong (no case found, unknown layout...).
    """
    # Absolute from here on: worker processes and Dask workers may run in another folder.
    source, out = Path(source).resolve(), Path(out).resolve()
    register = layout not in CO_REGISTERED_LAYOUTS if register is None else register
    channels, reference = _channels(layout, reference, channels)
    cases = _find(source, layout, label_pattern, workers)
    out = ensure_output_dir(out)  # only now: a command that fails on its arguments creates nothing
    summary: dict[str, Any] = {"source": str(source), "layout": layout, "channels": channels,
                               "registration": "co-registered to " + reference if register else
                               "kept as they are (checked to share the reference's grid)",
                               "done": [], "skipped": [c.case_id for c in cases if _is_done(out, c.case_id)],
                               "failed": {}, "cancelled": []}
    todo = [case for case in cases if case.case_id not in summary["skipped"]]
    tally = _Tally(summary, len(cases), progress)
    options = {"preset": preset, "engine": engine, "threads": max(1, (os.cpu_count() or 1) // max(1, workers)),
               "atlases": _atlases(atlas_labels, out, scheduler) if atlas_labels and todo else None,
               "synthseg": synthseg, "register": register}
    jobs = [(case, out, channels, reference, options) for case in todo]
    for case_id, outcome in _outcomes(jobs, scheduler, workers, cancel or CancelToken()):
        tally.record(case_id, outcome)
    _settle_cancelled(summary, jobs, out)
    write_text(out / "prepare_summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
