"""The demo: sample subject -> co-registration -> overlay picture and accuracy figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.geometry import voxel_points
from ..data.images import resample
from ..registration.presets import default_preset
from ..runtime.files import ensure_output_dir, write_text
from ..runtime.processes import CancelToken
from ..runtime.progress import ProgressCallback
from ..segmentation.atlases import DEFAULT_ATLASES
from ..synthetic.evaluation import registration_error
from ..synthetic.sample_data import SubjectSpec, generate_subject
from .register import Registered, RegistrationInputs, read_inputs, register_inputs

# Seed 13 makes the sample subject from label map 14, which no atlas of the default model is made from.
DEMO_SEED = 13


def run_demo(
    out: str | Path,
    *,
    seed: int = DEMO_SEED,
    spacing_mm: float = 1.0,
    segment: bool = True,
    atlases: int = DEFAULT_ATLASES,
    cancel: CancelToken | None = None,
    progress_bar: Callable[[str], tuple[Any, ProgressCallback]] | None = None,
) -> dict[str, Any]:
    """Run the demo into ``out`` and return its summary (also written to ``summary.json``).

    With ``segment``, a local MONAI Label server (this project's app, 127.0.0.1) segments
    the co-registered stack; the default seed's label map is not one of the atlases.
    """
    out = ensure_output_dir(out).resolve()  # the server runs elsewhere: it is handed absolute paths only
    subject_dir, registered_dir = out / "subject", out / "registered"
    steps = 5 if segment else 3
    print(f"1/{steps} generating a sample subject ({spacing_mm:g} mm, FLAIR with 5 mm slices) in {subject_dir}")
    subject = generate_subject(SubjectSpec(seed=seed, spacing_mm=spacing_mm, thick_slice_mm={"flair": 5.0}), subject_dir)

    print(f"2/{steps} co-registering T2 and FLAIR to T1 with elastix (preset {default_preset().name})")
    inputs = read_inputs(subject_dir / "t1.nii.gz", [subject_dir / "t2.nii.gz", subject_dir / "flair.nii.gz"])
    bar, update = progress_bar("registering") if progress_bar else (None, None)
    try:
        registered = register_inputs(inputs, registered_dir, progress=update, cancel=cancel)
    finally:
        if bar is not None:
            bar.close()

    print(f"3/{steps} measuring the error against the known misalignment and drawing overlays")
    summary = {"subject": str(subject_dir), "registered": str(registered_dir),
               "modalities": _measure(subject_dir, subject, inputs, registered, out / "overlay.png")}
    summary["overlay"] = str(out / "overlay.png")
    if segment:
        summary["segmentation"] = _segment_through_server(out, subject_dir, inputs, registered, atlases, steps)
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"\nDone. Outputs in {out.resolve()}:")
    print(f"  {(out / 'overlay.png').resolve()}  (before/after overlays)")
    if segment:
        print(f"  {Path(summary['segmentation']['picture']).resolve()}  (segmentation with names and colours)")
        print(f"  {Path(summary['segmentation']['label_map']).resolve()}  (label map, values 1..32, see labels in summary.json)")
    print(f"  {registered_dir.resolve()}  (registered volumes, transforms, reports)")
    print(f"  {subject_dir.resolve()}  (sample subject and its ground truth)")
    return summary


def _measure(subject_dir: Path, subject: dict[str, Any], inputs: RegistrationInputs, registered: list[Registered],
             picture: Path) -> dict[str, Any]:
    """Step 3: each modality's error against the known misalignment (brain voxels), and the before/after overlays."""
    import itk

    from .figures import overlay_figure

    brain = itk.array_from_image(itk.imread(str(subject_dir / "brain_mask.nii.gz"))) > 0
    points = voxel_points(inputs.reference, brain)
    rows, measured = [], {}
    for moving, done in zip(inputs.moving, registered):
        modality, report, truth = moving.name, done.result.report, subject["modalities"][moving.name]
        error = registration_error(np.array(report["matrix_lps"]), np.array(truth["matrix_lps"]), points)
        rows.append((modality.upper(), resample(moving.image, None, inputs.reference, "linear"), done.result.registered))
        measured[modality] = {
            "misalignment_rotation_deg": round(truth["rotation_deg"], 2),
            "misalignment_translation_mm": round(float(np.linalg.norm(truth["translation_mm"])), 2),
            "error_mean_mm": round(error["mean_mm"], 3),
            "error_p95_mm": round(error["p95_mm"], 3),
            "time_s": report["time_total_s"],
            "files": {key: str(path) for key, path in done.files.items()},
        }
        print(
            f"    {modality}: misaligned by {measured[modality]['misalignment_rotation_deg']} deg / "
            f"{measured[modality]['misalignment_translation_mm']} mm; after registration the error over "
            f"brain voxels is {error['mean_mm']:.2f} mm mean, {error['p95_mm']:.2f} mm p95 ({report['time_total_s']:.1f} s)"
        )
    overlay_figure(inputs.reference, rows, picture, title="T1 (green) vs modality (magenta): before | after")
    return measured


def _segment_through_server(
    out: Path, subject_dir: Path, inputs: RegistrationInputs, registered: list[Registered], atlases: int, steps: int
) -> dict[str, Any]:
    """Steps 4-5: the co-registered stack -> local MONAI Label server -> label map and picture."""
    import itk

    from ..synthetic.evaluation import dice_per_label
    from .figures import segmentation_figure
    from ..data.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values
    from ..data.multimodal import write_case
    from ..client.local_server import LocalServer

    datastore = out / "datastore"
    channels = {"t1": inputs.reference}
    channels.update((moving.name, done.result.registered) for moving, done in zip(inputs.moving, registered))
    write_case(channels, ensure_output_dir(datastore) / "demo-case.nii.gz")
    print(f"4/{steps} starting a local MONAI Label server (127.0.0.1) on {datastore}")
    server = LocalServer(datastore, conf={"atlases": str(atlases)})
    try:
        client = server.start()
        print(f"    {server.url}: models {', '.join(client.info()['models'])}")
        print(f"5/{steps} segmenting the 3-channel case with the atlas_registration model ({atlases} atlases)")
        result = client.infer("atlas_registration", "demo-case", out / "segmentation.nii.gz")
    finally:
        server.stop()
    labels = itk.imread(str(result.label_path))
    truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(subject_dir / "labels.nii.gz"))))
    dice = dice_per_label(itk.array_from_image(labels), truth, [s.value for s in SYNTHSEG_STRUCTURES])
    mean_dice = float(np.mean(list(dice.values())))
    picture = segmentation_figure(channels["t1"], labels, SYNTHSEG_STRUCTURES, out / "segmentation.png",
                                  title=f"atlas_registration: mean Dice {mean_dice:.2f} against the sample's labels")
    print(f"    mean Dice over the 32 structures: {mean_dice:.3f} ({result.params['latencies']['total']:.0f} s on the server)")
    return {
        "label_map": str(result.label_path),
        "picture": str(picture),
        "mean_dice": round(mean_dice, 3),
        "dice": {s.name: round(dice[s.value], 3) for s in SYNTHSEG_STRUCTURES},
        "labels": result.params["label_table"],
    }
