"""Dataset preparation: a folder of cases in a known layout -> a MONAI Label datastore.

Each case's modalities are co-registered to the reference modality (elastix, core
presets) and written as one 4D case file (see :mod:`.multimodal`) named after the case;
label files found beside them (SynthSeg outputs, FreeSurfer-id label maps) are resampled
onto the reference grid, mapped to the label table's values 1..32 and stored as the
case's final label (``labels/final/<case>.nii.gz``, MONAI Label's local datastore layout).

Resumable: a case is done when its marker ``.prepare/<case>.json`` exists, written last;
an interrupted case is simply prepared again, and nothing half-written carries a final
name. The summary (``prepare_summary.json``) lists cases done, skipped and failed with
the reason.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.datastore_names import check_image_id
from ..errors import CancelledError, ElastixMonaiLabelError, InputError
from ..runtime.files import ensure_output_dir, write_text
from ..data.images import read_volume, write_volume, image_from_array
from ..data.labels import freesurfer_to_values
from ..data.multimodal import canonical_channel, write_case
from ..runtime.processes import CancelToken
from ..segmentation.synthseg_tool import SynthSegCommand, run_synthseg

LAYOUTS = ("brats2021", "brats2023", "oasis3", "generic")
DEFAULT_CHANNELS = {
    "brats2021": ("t1", "t1ce", "t2", "flair"),
    "brats2023": ("t1", "t1ce", "t2", "flair"),
    "oasis3": ("t1", "t2", "flair"),
    "generic": ("t1", "t2", "flair"),
}
# Layouts whose modalities come co-registered on one grid (BraTS: SRI24, 1 mm): kept as they are
# unless registration is asked for. Re-registering them moves them 1-2 mm away from the BraTS
# alignment, which is not the mutual-information optimum.
CO_REGISTERED_LAYOUTS = ("brats2021", "brats2023")
_NIFTI = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)


@dataclass
class Case:
    case_id: str
    modalities: dict[str, Path] = field(default_factory=dict)
    labels: Path | None = None
    problems: list[str] = field(default_factory=list)


def _stem(path: Path) -> str:
    return _NIFTI.sub("", path.name)


def _brats(folder: Path, separator: str) -> list[Case]:
    cases = []
    for case_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        case = Case(case_dir.name)
        for path in sorted(case_dir.iterdir()):
            if not _NIFTI.search(path.name):
                continue
            suffix = _stem(path).rsplit(separator, 1)[-1]
            if "seg" in suffix.lower():
                continue  # label files (BraTS tumour seg, SynthSeg outputs) are not channels
            case.modalities.setdefault(canonical_channel(suffix), path)
        cases.append(case)
    return cases


_OASIS = re.compile(r"^(sub-[^_]+)_(ses-[^_]+)_.*?([^_]+)$")


def _oasis3(folder: Path) -> list[Case]:
    cases: dict[str, Case] = {}
    for path in sorted(folder.rglob("*.nii*")):
        match = _OASIS.match(_stem(path))
        if not match or not _NIFTI.search(path.name) or "seg" in match.group(3).lower():
            continue
        case_id = f"{match.group(1)}_{match.group(2)}"
        modality = canonical_channel(match.group(3))
        case = cases.setdefault(case_id, Case(case_id))
        if modality in case.modalities:
            case.problems.append(f"several {modality} files ({case.modalities[modality].name}, {path.name}); the first is used")
        else:
            case.modalities[modality] = path
    return list(cases.values())


def _generic(folder: Path, label_pattern: str | None) -> list[Case]:
    cases = []
    for case_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        case = Case(case_dir.name)
        labels = set(case_dir.glob(label_pattern)) if label_pattern else set()
        for path in sorted(case_dir.iterdir()):
            if _NIFTI.search(path.name) and path not in labels and "seg" not in _stem(path).lower():
                token = re.split(r"[_\-.]", _stem(path))[-1]
                case.modalities.setdefault(canonical_channel(token), path)
        cases.append(case)
    return cases


def find_cases(source: str | Path, layout: str, label_pattern: str | None = None) -> list[Case]:
    """Cases of a dataset folder in a known layout, with their modality files and labels."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(source, "dataset folder not found")
    if layout == "brats2021":
        cases = _brats(source, "_")
    elif layout == "brats2023":
        cases = _brats(source, "-")
    elif layout == "oasis3":
        cases = _oasis3(source)
    elif layout == "generic":
        cases = _generic(source, label_pattern)
    else:
        raise InputError("layout", f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if label_pattern:
        for case in cases:
            folder = next(iter(case.modalities.values())).parent if case.modalities else source / case.case_id
            found = sorted(folder.glob(label_pattern)) or sorted(folder.glob(f"{case.case_id}*{label_pattern.lstrip('*')}"))
            case.labels = found[0] if found else None
    return cases


def label_map_on_grid(label_path: Path, reference: Any) -> Any:
    """A FreeSurfer-id label map (any grid, e.g. SynthSeg's 1 mm one) on the reference grid, values 1..32."""
    import itk

    from ..registration.itk_images import resample
    from ..registration.transforms import itk_affine

    labels = read_volume(label_path, pixel_type="short")
    # Same scanner space as the reference: resample through the identity, nearest neighbour.
    on_grid = itk.array_from_image(resample(labels, itk_affine(np.eye(4)), reference, "nearest", default_value=-1))
    outside = float(np.mean(on_grid < 0))
    if outside > 0.5:
        raise InputError(label_path, f"label map covers only {100 * (1 - outside):.0f}% of the reference image: wrong grid or wrong case")
    values = freesurfer_to_values(np.where(on_grid < 0, 0, on_grid))
    if not values.any():
        raise InputError(label_path, "no SynthSeg/FreeSurfer structure id in this label map")
    return image_from_array(values, reference)


def _kept_as_they_are(case: Case, channels: Sequence[str], reference: str, fixed: Any) -> dict[str, Any]:
    """The case's modalities unchanged, after checking that they really share the reference's grid."""
    from ..data.images import grid_mismatch

    images = {reference: fixed}
    for channel in channels:
        if channel == reference:
            continue
        image = read_volume(case.modalities[channel])
        problem = grid_mismatch(image, fixed)
        if problem:
            raise InputError(case.modalities[channel], f"is not on the grid of {case.modalities[reference].name} ({problem}); "
                                                       "this layout's modalities should come co-registered: use --register")
        images[channel] = image
    return images


def prepare_case(
    case: Case, out: Path, channels: Sequence[str], reference: str, *, preset: str | None = None, engine: str = "itk",
    threads: int | None = None, atlases: Sequence[Any] | None = None, synthseg: SynthSegCommand | None = None,
    register: bool = True, cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Co-register one case (or, with ``register=False``, check that it is already on one grid) and
    write it (and its label) into the datastore; return its record.

    Labels come from the case's label file, or from ``atlases`` (registration), or from
    running ``synthseg`` on the reference image (its outputs are kept in ``out/synthseg``).
    ``cancel`` abandons the case between steps (the elastix executable at once): nothing
    is written under a final name and the case has no marker, so a rerun prepares it.
    """
    from ..registration.itk_images import register_modality

    def check_cancel() -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()

    started = time.perf_counter()
    check_image_id(case.case_id, f"case {case.case_id!r}")  # the datastore's id rule: the case file stays inside out
    missing = [c for c in channels if c not in case.modalities]
    if missing:
        found = ", ".join(f"{k}={v.name}" for k, v in case.modalities.items()) or "nothing"
        raise InputError(case.case_id, f"missing modality {', '.join(missing)} (found {found})")
    fixed = read_volume(case.modalities[reference])
    reports: dict[str, Any] = {}
    if register:
        images = {reference: fixed}
        for channel in channels:
            if channel == reference:
                continue
            check_cancel()
            result = register_modality(fixed, read_volume(case.modalities[channel]), name=channel, preset=preset, engine=engine,
                                       threads=threads, cancel=cancel)
            images[channel] = result.registered
            reports[channel] = {k: result.report[k] for k in ("metric_before", "metric_after", "metric_improved", "time_total_s")}
    else:
        images = _kept_as_they_are(case, channels, reference, fixed)
        reports = {channel: "kept as it is: already on the reference grid" for channel in channels if channel != reference}
    ordered = {channel: images[channel] for channel in channels}
    label_file = case.labels
    check_cancel()
    if synthseg is not None:
        label_file = run_synthseg(synthseg, case.modalities[reference], out / "synthseg", case.case_id,
                                  threads=threads or 1).labels
    label, tag = (label_map_on_grid(label_file, fixed), "final") if label_file else (None, None)
    if atlases:
        from ..segmentation.atlases import segment_with_atlases

        # Model output, not a reviewed label: MONAI Label's "original" tag.
        label, tag = segment_with_atlases(ordered, atlases, engine=engine, threads=threads)[0], "original"
    check_cancel()  # last chance: from here on the case is written
    write_case(ordered, out / f"{case.case_id}.nii.gz")
    if label is not None:
        write_volume(label, ensure_output_dir(out / "labels" / tag) / f"{case.case_id}.nii.gz")
    record = {
        "case": case.case_id,
        "channels": list(channels),
        "files": {k: str(v) for k, v in case.modalities.items()},
        "label_file": str(label_file) if label_file else None,
        "label_tag": tag,
        "registration": reports,
        "warnings": case.problems,
        "time_s": round(time.perf_counter() - started, 2),
    }
    write_text(ensure_output_dir(out / ".prepare") / f"{case.case_id}.json", json.dumps(record, indent=2) + "\n")
    return record


class _EventCancelToken(CancelToken):
    """A cancel token that a worker process reads from an event its parent sets."""

    def __init__(self, event: Any) -> None:
        self._event = event


_WORKER_CANCEL: CancelToken | None = None


def _init_worker(event: Any) -> None:
    """Worker processes leave Ctrl-C to the parent, which cancels them through ``event``."""
    global _WORKER_CANCEL
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_CANCEL = _EventCancelToken(event)


def _prepare_case_job(job: tuple[Case, Path, Sequence[str], str, dict[str, Any]]) -> dict[str, Any]:
    case, out, channels, reference, options = job
    return prepare_case(case, out, channels, reference, **options, cancel=_WORKER_CANCEL)


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
    progress: Callable[[int, int, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Prepare every case of ``source`` into the datastore ``out``; return (and write) the summary.

    ``label_pattern`` imports label files; ``atlas_labels`` > 0 instead labels each case by
    registration of that many atlases (stored under the ``original`` tag), and ``synthseg``
    runs SynthSeg on each case's reference image (see :mod:`.synthseg_tool`; stored as
    ``final``, its volumes and QC tables kept in ``out/synthseg``). ``workers`` > 1 prepares cases in parallel processes; ``scheduler`` (a Dask scheduler address, or
    "local" for a local Dask cluster of ``workers`` processes) spreads them over a Dask
    cluster whose workers see ``source`` and ``out`` at the same paths. ``register``: co-register
    each case's modalities (default: yes, except for layouts whose modalities come co-registered,
    BraTS, which are kept as they are after checking that they share one grid).

    ``cancel`` (e.g. Ctrl-C) stops the run: no new case starts, the cases in flight are
    abandoned (see :func:`prepare_case`), and the summary lists them under ``cancelled``.
    Nothing is created when the arguments are wrong (no case found, unknown layout...).
    """
    # Absolute from here on: worker processes and Dask workers may run in another folder.
    source, out = Path(source).resolve(), Path(out).resolve()
    if register is None:
        register = layout not in CO_REGISTERED_LAYOUTS
    wanted = [canonical_channel(c) for c in (channels or DEFAULT_CHANNELS.get(layout, ()))]
    reference = canonical_channel(reference)
    channels = [reference, *[c for c in wanted if c != reference]]  # the reference is channel 0
    if workers < 1:
        raise InputError("workers", f"must be 1 or more, not {workers}")
    cases = find_cases(source, layout, label_pattern)
    if not cases:
        raise InputError(source, f"no case found for layout {layout}")
    out = ensure_output_dir(out)  # only now: a command that fails on its arguments creates nothing
    summary: dict[str, Any] = {"source": str(source), "layout": layout, "channels": channels,
                               "registration": "co-registered to " + reference if register else
                               "kept as they are (checked to share the reference's grid)",
                               "done": [], "skipped": [], "failed": {}, "cancelled": []}
    todo = []
    for case in cases:
        if (out / ".prepare" / f"{case.case_id}.json").exists() and (out / f"{case.case_id}.nii.gz").exists():
            summary["skipped"].append(case.case_id)
        else:
            todo.append(case)
    finished = len(summary["skipped"])
    if progress:
        progress(finished, len(cases), "resuming" if finished else "starting")
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    atlases = None
    if atlas_labels and todo:
        from ..segmentation.atlases import build_atlases

        from ..runtime.resources import cache_dir

        # Built once into this machine's cache, shared with the server; a remote Dask cluster's workers
        # see only SRC and the datastore, so for them the atlases go into the datastore.
        remote = scheduler is not None and scheduler != "local"
        atlases = build_atlases(out / ".prepare" / "atlases" if remote else cache_dir() / "atlases", count=atlas_labels)
    options = {"preset": preset, "engine": engine, "threads": threads, "atlases": atlases, "synthseg": synthseg,
               "register": register}
    jobs = [(case, out, channels, reference, options) for case in todo]

    def record(case_id: str, outcome: Any) -> None:
        nonlocal finished
        finished += 1
        if isinstance(outcome, CancelledError):
            summary["cancelled"].append(case_id)
        elif isinstance(outcome, BaseException):
            summary["failed"][case_id] = str(outcome) if isinstance(outcome, ElastixMonaiLabelError) else f"{type(outcome).__name__}: {outcome}"
        else:
            summary["done"].append(case_id)
        if progress:
            progress(finished, len(cases), case_id)

    cancel = cancel or CancelToken()
    if scheduler:
        for case_id, outcome in _run_on_dask(jobs, scheduler, workers, cancel):
            record(case_id, outcome)
    elif workers <= 1:
        for job in jobs:
            if cancel.cancelled:
                break
            try:
                record(job[0].case_id, prepare_case(job[0], *job[1:4], **job[4], cancel=cancel))
            except Exception as error:  # one bad case must not stop the others
                record(job[0].case_id, error)
    else:
        for case_id, outcome in _run_in_processes(jobs, workers, cancel):
            record(case_id, outcome)
    # Cases never started because of a cancel count as cancelled too, unless they finished after all
    # (a running Dask job cannot be interrupted): the marker, written last, tells.
    seen = set(summary["done"]) | set(summary["failed"]) | set(summary["cancelled"])
    summary["cancelled"] += [job[0].case_id for job in jobs if job[0].case_id not in seen]
    finished_anyway = [c for c in summary["cancelled"] if (out / ".prepare" / f"{c}.json").exists() and (out / f"{c}.nii.gz").exists()]
    summary["done"] += finished_anyway
    summary["cancelled"] = [c for c in summary["cancelled"] if c not in finished_anyway]
    summary["done"].sort()
    summary["cancelled"].sort()
    write_text(out / "prepare_summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _run_in_processes(jobs: list[tuple], workers: int, cancel: CancelToken):
    """Yield (case id, record or exception) as worker processes finish the jobs; on cancel, the
    workers abandon their cases (their token is an event set here) and queued jobs never start."""
    # Spawned, not forked: forking a process whose ITK thread pool is running can kill the child.
    context = multiprocessing.get_context("spawn")
    event = context.Event()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(event,)) as pool:
        futures = {pool.submit(_prepare_case_job, job): job[0].case_id for job in jobs}
        pending = set(futures)
        while pending:
            # Polled rather than blocking, so that a Ctrl-C (a flag set by the signal handler) is seen.
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                if future.cancelled():
                    continue
                try:
                    yield futures[future], future.result()
                except Exception as error:
                    yield futures[future], error
            if cancel.cancelled and not event.is_set():
                event.set()
                for future in pending:
                    future.cancel()  # queued jobs; running ones end with CancelledError


def local_cluster(workers: int):
    """A Dask cluster of worker processes on this machine, reachable from it alone: scheduler, workers and
    dashboard listen on the loopback interface (Dask's default is every interface, dashboard on port 8787)."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                        host="127.0.0.1", dashboard_address="127.0.0.1:0")


def _run_on_dask(jobs: list[tuple], scheduler: str, workers: int, cancel: CancelToken | None = None):
    """Yield (case id, record or exception) as a Dask cluster finishes the jobs. On cancel, jobs not
    started are cancelled and running ones are left (a local cluster's workers are stopped)."""
    try:
        from dask.distributed import Client, wait as dask_wait
    except ImportError as error:
        raise InputError("scheduler", "Dask is not installed: pip install 'dask[distributed]'") from error
    cancel = cancel or CancelToken()
    cluster = None
    if scheduler == "local":
        # Its processes inherit an ignored SIGINT: Ctrl-C is the parent's to handle (it cancels the jobs
        # and closes the cluster), not a KeyboardInterrupt traceback in every worker.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            cluster = local_cluster(workers)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
    try:
        with Client(cluster if cluster is not None else scheduler, timeout="10s") as client:
            futures = {client.submit(_prepare_case_job, job, pure=False): job[0].case_id for job in jobs}
            pending = set(futures)
            while pending and not cancel.cancelled:
                try:
                    done, pending = dask_wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                pending = set(pending)
                for future in done:
                    try:
                        yield futures[future], future.result()
                    except Exception as error:
                        yield futures[future], error
            if pending:
                client.cancel(list(pending))
    except OSError as error:
        raise InputError("scheduler", f"cannot reach the Dask scheduler at {scheduler} ({error})") from error
    finally:
        if cluster is not None:
            cluster.close()
