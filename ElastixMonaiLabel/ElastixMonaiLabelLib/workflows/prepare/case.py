"""One case into the datastore: co-registered (or checked to share one grid), labelled, written, marked done."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...data.datastore_names import check_image_id
from ...data.images import grid_mismatch, read_volume, write_volume
from ...data.label_maps import label_map_on_grid
from ...data.multimodal import write_case
from ...errors import InputError
from ...registration.itk_images import register_modality
from ...runtime.files import ensure_output_dir, write_text
from ...runtime.processes import CancelToken
from ...segmentation.synthseg_tool import SynthSegCommand, run_synthseg
from ..register import report_summary
from .layouts import Case

def _kept_as_they_are(case: Case, channels: Sequence[str], reference: str, fixed: Any) -> dict[str, Any]:
    """The case's modalities unchanged, after checking that they really share the reference's grid."""
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


def _co_registered(case: Case, channels: Sequence[str], reference: str, fixed: Any, options: dict[str, Any],
                   cancel: CancelToken | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each channel registered onto the reference (``options``: preset, engine, threads), and the reports' summaries."""
    images, reports = {reference: fixed}, {}
    for channel in channels:
        if channel == reference:
            continue
        _check(cancel)
        result = register_modality(fixed, read_volume(case.modalities[channel]), name=channel, cancel=cancel, **options)
        images[channel] = result.registered
        reports[channel] = report_summary(result.report)
    return images, reports


def _label(case: Case, out: Path, reference: str, fixed: Any, channels: dict[str, Any], *, engine: str,
           threads: int | None, atlases: Sequence[Any] | None,
           synthseg: SynthSegCommand | None) -> tuple[Any, str | None, Path | None]:
    """The case's label on the reference grid, its tag and the file it came from (None, None, None: no label)."""
    label_file = case.labels
    if synthseg is not None:
        label_file = run_synthseg(synthseg, case.modalities[reference], out / "synthseg", case.case_id,
                                  threads=threads or 1).labels
    label, tag = (label_map_on_grid(label_file, fixed), "final") if label_file else (None, None)
    if atlases:
        from ...segmentation.atlases import segment_with_atlases

        # Model output, not a reviewed label: MONAI Label's "original" tag.
        label, tag = segment_with_atlases(channels, atlases, engine=engine, threads=threads)[0], "original"
    return label, tag, label_file


def remove_partial_files(out: Path, case_id: str) -> None:
    """Remove what a case's killed process was writing (a local Dask cluster stops its workers on a cancel).

    Writes are atomic (runtime.files.atomic_path): a file being written has a temporary name beside its final
    one, which the writer removes when it fails but a killed process leaves behind. Call only when no process
    can still be writing the case.
    """
    for pattern in (f".{case_id}.nii.gz.partial-*", f"labels/*/.{case_id}.nii.gz.partial-*",
                    f".prepare/.{case_id}.json.partial-*"):
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def _check(cancel: CancelToken | None) -> None:
    if cancel is not None:
        cancel.raise_if_cancelled()


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
    started = time.perf_counter()
    check_image_id(case.case_id, f"case {case.case_id!r}")  # the datastore's id rule: the case file stays inside out
    missing = [c for c in channels if c not in case.modalities]
    if missing:
        found = ", ".join(f"{k}={v.name}" for k, v in case.modalities.items()) or "nothing"
        raise InputError(case.case_id, f"missing modality {', '.join(missing)} (found {found})")
    fixed = read_volume(case.modalities[reference])
    if register:
        options = {"preset": preset, "engine": engine, "threads": threads}
        images, reports = _co_registered(case, channels, reference, fixed, options, cancel)
    else:
        images = _kept_as_they_are(case, channels, reference, fixed)
        reports = {channel: "kept as it is: already on the reference grid" for channel in channels if channel != reference}
    ordered = {channel: images[channel] for channel in channels}
    _check(cancel)
    label, tag, label_file = _label(case, out, reference, fixed, ordered, engine=engine, threads=threads,
                                    atlases=atlases, synthseg=synthseg)
    _check(cancel)  # last chance: from here on the case is written
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
