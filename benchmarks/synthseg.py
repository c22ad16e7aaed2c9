"""Contrast-agnostic segmentation trained from label maps alone: Dice on generated and real scans.

Trains the 1-channel SegResNet with the unattended command (lib.synthseg.train, label maps
training_seg_01..12) for --minutes, or evaluates existing weights (--weights PATH --minutes 0),
then segments every volume as the server does (to the model's grid, network, labels back
onto the volume's own grid, nearest neighbour) and scores it there:
- generated subjects from the held-out maps 13..16, as T1-, T2- and FLAIR-like (5 mm slices)
  volumes, each brought onto the labels' grid with its known misalignment; Dice over the 32
  structures;
- with --real DIR (e.g. ../shared/data/real), real scans against FreeSurfer's aseg: bert's
  skull-stripped brain.nii.gz (FreeSurfer 7.2 and 6.0 runs, 1 mm) and MNE's sample t1.nii.gz
  (whole head) against its aseg_3mm.nii.gz at 3 mm. Dice over 31 structures: label 24 (CSF) is
  EXCLUDED (all extra-cerebral CSF in SynthSeg's maps, a small ventral blob in aseg), and voxels
  that aseg gives a label outside SynthSeg's (vessels, choroid plexus, white-matter
  hypointensities, optic chiasm, corpus callosum) are left out of the count.
Also: the generator's speed on this CPU, and the CPU inference time of the model on a 1 mm
brain with 2 threads (target: under 30 s).

Run with the server's environment (torch, MONAI):
    .venv-server/bin/python benchmarks/synthseg.py --weights MonaiLabelApp/weights/synthseg.pt --minutes 0 \
        --real ../shared/data/real
Last line: synthseg: mean_dice_t1=A mean_dice_t2=B mean_dice_flair=C mean_dice_real=R resolution_mm=X train_minutes=M device=D
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "ElastixMonaiLabel"), str(ROOT / "MonaiLabelApp")]

from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_FREESURFER_IDS, SYNTHSEG_STRUCTURES, freesurfer_to_values  # noqa: E402
from ElastixMonaiLabelLib.runtime.resources import resource_path  # noqa: E402
from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject, label_map_paths  # noqa: E402
from lib.synthseg.synthesis import SynthSegGenerator  # noqa: E402
from lib.synthseg.training import (  # noqa: E402
    SynthSegTrainingConfig,
    load_label_maps,
    load_model,
    model_info,
    segment_file,
)

PRIORS = resource_path("SynthSeg", "priors")
NAMES = {s.value: s.name for s in SYNTHSEG_STRUCTURES}
CSF_VALUE = next(s.value for s in SYNTHSEG_STRUCTURES if s.freesurfer_id == 24)
ALL_VALUES = list(range(1, len(SYNTHSEG_STRUCTURES) + 1))
REAL_VALUES = [v for v in ALL_VALUES if v != CSF_VALUE]
# (case, image, FreeSurfer labels) under --real; each compared on the labels' grid.
REAL_CASES = (("bert-fs7.2", "brain.nii.gz", "aseg.nii.gz"), ("bert-fs6.0", "brain.nii.gz", "aseg.nii.gz"),
              ("mne-sample", "t1.nii.gz", "aseg_3mm.nii.gz"))


def generator_speed(spacing: float, count: int = 4) -> float:
    """Synthetic volumes per second of the batched generator on this CPU (label maps already loaded)."""
    maps = load_label_maps(label_map_paths()[:2], SynthSegTrainingConfig(spacing_mm=spacing), "cpu")
    generator = SynthSegGenerator(PRIORS, spacing, "cpu", strip_prob=0.25, translation_mm=10.0)
    generator(maps[:1])  # warm-up
    started = time.perf_counter()
    for index in range(count):
        generator(maps[index % len(maps)][None])
    return count / (time.perf_counter() - started)


def on_label_grid(subject: dict, folder: Path, modality: str) -> Path:
    """The modality resampled onto the T1 grid with its known (true) misalignment undone."""
    from ElastixMonaiLabelLib.registration.transforms import itk_affine
    from ElastixMonaiLabelLib.data.images import read_volume, write_volume
    from ElastixMonaiLabelLib.data.images import resample

    entry = subject["modalities"][modality]
    if modality == "t1":
        return folder / entry["file"]
    reference = read_volume(folder / subject["modalities"]["t1"]["file"])
    moved = resample(read_volume(folder / entry["file"]), itk_affine(np.array(entry["matrix_lps"])), reference)
    return write_volume(moved, folder / f"{modality}_on_t1.nii.gz")


def score(name: str, predicted: np.ndarray, freesurfer: np.ndarray, values: list[int], ignore_other_labels: bool) -> float:
    truth = freesurfer_to_values(freesurfer)
    if ignore_other_labels:  # aseg's extra labels (vessels, choroid plexus, CC...) are not SynthSeg's: not counted
        counted = (freesurfer == 0) | np.isin(freesurfer, SYNTHSEG_FREESURFER_IDS)
        predicted, truth = predicted[counted], truth[counted]
    dice = dice_per_label(predicted, truth, values)
    mean = float(np.mean(list(dice.values())))
    worst = sorted(dice.items(), key=lambda item: item[1])[:3]
    print(f"{name}: mean Dice {mean:.3f}; lowest " + ", ".join(f"{NAMES[v]} {d:.2f}" for v, d in worst), flush=True)
    return mean


def evaluate_generated(model, spacing: float, device: str, subjects: int) -> dict[str, list[float]]:
    import nibabel

    held_out = label_map_paths()[12:]
    scores: dict[str, list[float]] = {"t1": [], "t2": [], "flair": []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(subjects):
            label_map = held_out[index % len(held_out)]
            folder = Path(tmp) / f"subject-{index}"
            subject = generate_subject(SubjectSpec(seed=100 + index, spacing_mm=1.0, label_map=str(label_map),
                                                   thick_slice_mm={"flair": 5.0}), folder)
            freesurfer = np.asarray(nibabel.load(str(folder / "labels.nii.gz")).dataobj).astype(np.int64)
            for modality in scores:
                predicted = segment_file(model, on_label_grid(subject, folder, modality), spacing, device)
                scores[modality].append(score(f"{label_map.name} {modality}", predicted, freesurfer, ALL_VALUES, False))
    return scores


def evaluate_real(model, spacing: float, device: str, folder: Path) -> list[float]:
    import nibabel

    scores = []
    for case, image, labels in REAL_CASES:
        image_path, labels_path = folder / case / image, folder / case / labels
        if not (image_path.is_file() and labels_path.is_file()):
            print(f"{case}: not under {folder}, skipped")
            continue
        reference = nibabel.load(str(labels_path))
        predicted = segment_file(model, image_path, spacing, device, onto=labels_path)
        freesurfer = np.asarray(reference.dataobj).astype(np.int64)
        scores.append(score(f"{case} {image} vs {labels} (31 structures, CSF excluded)", predicted, freesurfer,
                            REAL_VALUES, True))
    if not scores:
        raise SystemExit(f"error: no real case found under {folder} (expected {', '.join(c for c, _, _ in REAL_CASES)})")
    return scores


def cpu_inference_seconds(weights: Path, spacing: float, volume: Path) -> float:
    """Wall time of one 1 mm volume, file to labels on its grid, on the CPU with 2 threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model = load_model(weights, "cpu")
        started = time.perf_counter()
        segment_file(model, volume, spacing, "cpu")
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training time (default 20; 0 with --weights)")
    parser.add_argument("--weights", "--model", type=Path, default=None, help="evaluate these weights (with their JSON)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmark-output" / "synthseg", help="training output folder")
    parser.add_argument("--spacing", type=float, default=2.0, help="model resolution in mm when training (default 2)")
    parser.add_argument("--filters", type=int, default=8, help="SegResNet width when training (default 8)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size when training (default 1)")
    parser.add_argument("--subjects", type=int, default=2, help="generated subjects from held-out label maps (default 2)")
    parser.add_argument("--real", type=Path, default=None, help="folder of real scans (bert-fs7.2, bert-fs6.0, mne-sample)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    for spacing in (1.0, 2.0):
        print(f"generator: {generator_speed(spacing):.2f} volumes/s at {spacing:g} mm "
              f"(CPU, {torch.get_num_threads()} threads, batched generator, label maps loaded)", flush=True)

    weights = args.weights
    if weights is None:
        if args.minutes <= 0:
            raise SystemExit("error: give --weights PATH, or --minutes > 0 to train")
        from lib.synthseg.train import main as train

        train(["--out", str(args.out), "--minutes", str(args.minutes), "--device", args.device, "--spacing",
               str(args.spacing), "--filters", str(args.filters), "--batch-size", str(args.batch_size), "--restart"])
        weights = args.out / "synthseg.pt"
    elif args.minutes > 0:
        raise SystemExit("error: --weights evaluates existing weights: use --minutes 0 with it")
    if not weights.is_file():
        raise SystemExit(f"error: {weights}: no such weights file")
    info = model_info(weights)
    spacing, train_minutes = float(info["spacing_mm"]), float(info.get("minutes", 0.0))
    print(f"weights {weights}: {info.get('network')}, {spacing:g} mm, {info.get('iterations')} iterations, "
          f"{train_minutes:.1f} training minutes on {info.get('device')}", flush=True)
    model = load_model(weights, args.device)

    scores = evaluate_generated(model, spacing, args.device, args.subjects)
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    real = float("nan")
    if args.real:
        real = float(np.mean(evaluate_real(model, spacing, args.device, args.real)))

    brain = args.real / "bert-fs7.2" / "brain.nii.gz" if args.real else None
    if brain is None or not brain.is_file():
        brain = Path(tempfile.mkdtemp()) / "t1"
        generate_subject(SubjectSpec(seed=7, spacing_mm=1.0, modalities=("t1",)), brain)
        brain = brain / "t1.nii.gz"
    seconds = cpu_inference_seconds(weights, spacing, brain)
    print(f"cpu_inference: {seconds:.1f} s for {brain.name} (1 mm) on 2 CPU threads; target 30 s, "
          f"ratio {seconds / 30:.2f}", flush=True)
    print(f"synthseg: mean_dice_t1={means['t1']:.3f} mean_dice_t2={means['t2']:.3f} mean_dice_flair={means['flair']:.3f} "
          f"mean_dice_real={real:.3f} resolution_mm={spacing:g} train_minutes={train_minutes:.1f} device={args.device}")


if __name__ == "__main__":
    main()
