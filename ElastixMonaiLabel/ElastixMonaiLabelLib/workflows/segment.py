"""The ``segment`` command: a user's own scans -> co-registration -> a MONAI Label model -> results.

The reference volume (normally the T1) fixes the grid; the other volumes are co-registered
onto it with elastix, stacked as one multimodal case (:mod:`.multimodal`) and segmented by
one of the server's models: a local server that this command starts and stops (127.0.0.1,
a temporary datastore unless one is given), or a running server the user names. Writes into
the output folder (each file atomically):

- ``labels.nii.gz``: the label map on the reference grid, values 1..32 (``labels.csv`` names them);
- ``segmentation.png``: the reference with the labels in FreeSurfer's colours and a legend;
- ``volumes.csv``: mm^3 per structure and the total intracranial volume (as SynthSeg's ``--vol``);
- ``qc.json``: registration similarity per modality, what the model reported (atlas agreement,
  atlases left out, skull-stripping), and every warning;
- ``registered/``: the co-registered volumes, their transforms and reports (see ``register``).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import grid_mismatch, read_volume
from ..data.labels import SYNTHSEG_STRUCTURES
from ..data.modalities import check_modality_names, guess_modality
from ..data.multimodal import case_id, write_case
from ..errors import InputError
from ..registration.engines import make_engine
from ..registration.presets import resolve_preset
from ..runtime.files import ensure_output_dir, write_text
from ..runtime.processes import CancelToken
from ..runtime.progress import ProgressCallback, no_progress, sub_progress
from ..segmentation.atlases import DEFAULT_ATLASES
from .register import RegistrationInputs, modality_name, read_inputs, register_inputs, report_summary

MODELS = ("atlas_registration", "segmentation", "synthseg", "mri_synthseg")
# Adult total intracranial volumes lie well within this range (ml); outside it, look at the scan.
PLAUSIBLE_TIV_ML = (900.0, 2300.0)
# atlas_registration's atlas_agreement (label_fusion.atlas_consensus) below which a result deserves a look.
LOW_ATLAS_AGREEMENT = 0.55


def modality_names(paths: Sequence[str | Path], given: Sequence[str] | None = None) -> list[str]:
    """Channel names for the volumes (reference first): ``given``, else guessed from the file names."""
    if given is not None:
        if len(given) != len(paths):
            raise InputError("--channels", f"{len(given)} names for {len(paths)} volumes; give one name per volume, reference first")
        return check_modality_names(list(given))
    names = []
    for path in paths:
        guess = guess_modality(modality_name(path))
        if guess is None:
            raise InputError(path, "cannot tell its modality from the file name; name every volume with "
                                   "--channels (reference first), e.g. --channels t1,t2,flair")
        names.append(guess)
    try:
        return check_modality_names(names)
    except InputError as error:
        raise InputError("file names", f"{error.problem} (guessed {', '.join(names)}); name them with --channels") from error


def structure_volumes(labels: np.ndarray, voxel_mm3: float) -> dict[str, float]:
    """Volume (mm^3) of each of the 32 structures, and 'total intracranial' (their sum, CSF included, as SynthSeg)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).ravel(), minlength=len(SYNTHSEG_STRUCTURES) + 1)
    volumes = {s.name: float(counts[s.value]) * voxel_mm3 for s in SYNTHSEG_STRUCTURES}
    return {"total intracranial": float(sum(volumes.values())), **volumes}


def volumes_csv(subject: str, volumes: dict[str, float]) -> str:
    """SynthSeg's ``--vol`` layout: a header row, then one row per subject (so several files concatenate)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", *volumes])
    writer.writerow([subject, *(f"{v:.1f}" for v in volumes.values())])
    return buffer.getvalue()


def labels_csv() -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["value", "name", "freesurfer_id", "r", "g", "b"])
    for s in SYNTHSEG_STRUCTURES:
        writer.writerow([s.value, s.name, s.freesurfer_id, *s.color])
    return buffer.getvalue()


def quality_warnings(registrations: dict[str, dict], model_report: dict[str, Any], volumes: dict[str, float]) -> list[str]:
    """What in a run deserves a look before the result is trusted."""
    warnings = []
    for name, report in registrations.items():
        if not report.get("metric_improved", True):
            warnings.append(f"{name}: the similarity to the reference went down during registration "
                            f"({report['metric_before']:.3f} -> {report['metric_after']:.3f}); check registered/{name}_registered.nii.gz")
    agreement = model_report.get("atlas_agreement")
    if agreement is not None and agreement < LOW_ATLAS_AGREEMENT:
        warnings.append(f"the atlases agree poorly on this scan (agreement {agreement:.2f}; about 0.7 is usual): "
                        "check segmentation.png")
    for failure in model_report.get("failed_atlases") or []:
        warnings.append(f"atlas {failure['atlas']} was left out: {failure['reason']}")
    tiv_ml = volumes["total intracranial"] / 1000.0
    low, high = PLAUSIBLE_TIV_ML
    if not low <= tiv_ml <= high:
        warnings.append(f"total intracranial volume {tiv_ml:.0f} ml is outside the adult range {low:.0f}-{high:.0f} ml: "
                        "is the whole brain in the field of view, and is it a brain MRI?")
    missing = [name for name, volume in volumes.items() if volume == 0]
    if missing:
        warnings.append(f"structures not found: {', '.join(missing)}")
    return warnings


def segment_scans(
    reference: str | Path,
    moving: Sequence[str | Path],
    out: str | Path,
    *,
    channels: Sequence[str] | None = None,
    model: str = "atlas_registration",
    server: str | None = None,
    datastore: str | Path | None = None,
    atlases: int = DEFAULT_ATLASES,
    preset: str | None = None,
    engine: str = "itk",
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Co-register, segment and write the results into ``out``; return the QC summary (also ``qc.json``).

    ``server``: URL of a running MONAI Label server with this project's app (the case is
    uploaded there); None starts a local one on ``datastore`` (default: a temporary one).
    Each input is read once; the co-registered volumes go to the model from memory (and to
    ``registered/`` on disk).
    """
    if model not in MODELS:
        raise InputError("--model", f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    paths = [Path(reference), *[Path(p) for p in moving]]
    names = modality_names(paths, channels)
    inputs = read_inputs(paths[0], paths[1:])  # checks every input before anything is written
    if inputs.moving:
        resolve_preset(preset)
        make_engine(engine)  # fails now if the executable is missing
    out = ensure_output_dir(out).resolve()
    step = progress or no_progress
    images, registrations = _co_register(inputs, names, out / "registered", preset=preset, engine=engine,
                                         threads=threads, step=step, cancel=cancel)
    if cancel:
        cancel.raise_if_cancelled()
    with tempfile.TemporaryDirectory(prefix="elastix-monailabel-case-", dir=out) as tmp:
        case_file = write_case(images, Path(tmp) / "case.nii.gz")
        image_id = case_id(inputs.reference_name, case_file)
        result = _segment_case(case_file, image_id, model, server, datastore, atlases, out, step, cancel, log)
    labels_image = read_volume(out / "labels.nii.gz", pixel_type="uchar")
    problem = grid_mismatch(labels_image, inputs.reference)
    if problem:
        raise InputError(out / "labels.nii.gz", f"the server returned labels on another grid than the reference ({problem})")
    step(0.95, "writing volumes, picture and QC")
    summary = _write_results(out, inputs, labels_image, {
        "subject": inputs.reference_name,
        "reference": str(paths[0].resolve()),
        "channels": dict(zip(names, (str(p.resolve()) for p in paths))),
        "model": model,
        "server": server or "local (started and stopped by this command)",
        "image_id": image_id,
        "registration": registrations,
        "model_report": result.params.get("report") or {},
    })
    step(1.0, "done")
    return summary


def _co_register(inputs: RegistrationInputs, names: list[str], folder: Path, *, preset: str | None, engine: str,
                 threads: int | None, step: ProgressCallback,
                 cancel: CancelToken | None) -> tuple[dict[str, Any], dict[str, dict]]:
    """The case's channels (reference first, then each moving volume registered onto it, in memory) and each
    registration's summary; the registered volumes, transforms and reports are written into ``folder``."""
    images = {names[0]: inputs.reference}
    registrations: dict[str, dict] = {}
    if inputs.moving:
        step(0.0, f"co-registering {', '.join(names[1:])} to {names[0]}")
        done = register_inputs(inputs, folder, preset=preset, engine=engine, threads=threads,
                               progress=sub_progress(step, 0.0, 0.3), cancel=cancel)
        for name, registered in zip(names[1:], done):
            registrations[name] = report_summary(registered.result.report)
            images[name] = registered.result.registered
    return images, registrations


def _write_results(out: Path, inputs: RegistrationInputs, labels_image: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """volumes.csv, labels.csv, segmentation.png and qc.json (``summary`` completed) into ``out``."""
    import itk

    from .figures import segmentation_figure

    volumes = structure_volumes(itk.array_view_from_image(labels_image), float(np.prod(labels_image.GetSpacing())))
    write_text(out / "volumes.csv", volumes_csv(summary["subject"], volumes))
    write_text(out / "labels.csv", labels_csv())
    picture = segmentation_figure(inputs.reference, labels_image, SYNTHSEG_STRUCTURES, out / "segmentation.png",
                                  title=f"{summary['subject']}: {summary['model']}")
    summary = {
        **summary,
        "total_intracranial_ml": round(volumes["total intracranial"] / 1000.0, 1),
        "warnings": quality_warnings(summary["registration"], summary["model_report"], volumes),
        "files": {"labels": "labels.nii.gz", "label_names": "labels.csv", "picture": picture.name, "volumes": "volumes.csv",
                  "registered": "registered/" if summary["registration"] else None},
    }
    write_text(out / "qc.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _segment_case(
    case_file: Path, image_id: str, model: str, server: str | None, datastore: str | Path | None, atlases: int, out: Path,
    step: ProgressCallback, cancel: CancelToken | None, log: Callable[[str], None],
) -> Any:
    """Upload the case, run ``model`` on it, write ``out/labels.nii.gz``; return the infer result."""
    from ..client.rest import MonaiLabelClient
    from ..client.local_server import LocalServer

    if server is not None:
        client = MonaiLabelClient(server, timeout=1800)
        _check_model(client.info(), model, server)
        log(f"uploading the case to {client.url} as {image_id}")
        client.upload_image(case_file, image_id)
        step(0.4, f"segmenting with {model} on {client.url}")
        return client.infer(model, image_id, out / "labels.nii.gz")

    folder = ensure_output_dir(datastore).resolve() if datastore else Path(tempfile.mkdtemp(prefix=".datastore-", dir=out))
    try:
        # In the datastore before the server starts, so that it is listed from the first request.
        shutil.copyfile(case_file, folder / f"{image_id}.nii.gz")
        step(0.3, "starting a local MONAI Label server")
        server = LocalServer(folder, conf={"atlases": str(atlases)})
        try:
            client = server.start(cancel)
            _check_model(client.info(), model, "the local server")
            step(0.4, f"segmenting with {model}")
            return client.infer(model, image_id, out / "labels.nii.gz")
        finally:
            server.stop()
    finally:
        if not datastore:
            shutil.rmtree(folder, ignore_errors=True)


def _check_model(info: dict[str, Any], model: str, where: str) -> None:
    models = info.get("models") or {}
    if model not in models:
        raise InputError("--model", f"{where} has no model {model!r}; it offers {', '.join(models) or 'none'}"
                         + (" (mri_synthseg needs FreeSurfer's mri_synthseg on the server's PATH)" if model == "mri_synthseg" else ""))
