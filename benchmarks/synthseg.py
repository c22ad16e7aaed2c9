"""Contrast-agnostic segmentation trained from label maps alone: Dice per contrast on unseen label maps.

Trains the 1-channel SegResNet on SynthSeg-style images synthesised from the shipped label maps
(training_seg_01..12), or loads a trained model (--model), then segments generated subjects made
from the held-out maps (13..16) as T1-, T2- and FLAIR-like volumes (the FLAIR with thick slices),
each brought onto the labels' grid with its known misalignment. Also measures the generator's
speed (volumes per second at 1 mm and 2 mm on this machine's CPU).

Run with the server's environment (torch, MONAI):
    .venv-server/bin/python benchmarks/synthseg.py --minutes 20
Last line: synthseg: mean_dice_t1=A mean_dice_t2=B mean_dice_flair=C resolution_mm=R train_minutes=M device=D
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

from ElastixMonaiLabelLib.evaluation import dice_per_label  # noqa: E402
from ElastixMonaiLabelLib.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values  # noqa: E402
from ElastixMonaiLabelLib.resources import resource_path  # noqa: E402
from ElastixMonaiLabelLib.sampledata import SubjectSpec, generate_subject, label_map_paths  # noqa: E402
from lib.synthseg_training import (  # noqa: E402
    SynthSegTrainingConfig,
    label_map_transforms,
    load_model,
    segment_volume,
    train_from_label_maps,
)

PRIORS = resource_path("SynthSeg", "priors")


def generator_speed(spacing: float, count: int = 4) -> float:
    config = SynthSegTrainingConfig(spacing_mm=spacing)
    transform = label_map_transforms(config, PRIORS)
    paths = label_map_paths()
    transform({"label": str(paths[0])})  # warm-up
    started = time.perf_counter()
    for index in range(count):
        transform({"label": str(paths[index % len(paths)])})
    return count / (time.perf_counter() - started)


def to_model_grid(image_path: Path, labels_path: Path, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Image (linear) and labels (nearest) in RAS at the model's spacing, as the training loader sees them."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd

    transform = Compose([
        LoadImaged(keys=["image", "label"], image_only=True), EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS"),
        Spacingd(keys=["image", "label"], pixdim=[spacing] * 3, mode=("bilinear", "nearest")),
    ])
    data = transform({"image": str(image_path), "label": str(labels_path)})
    return np.asarray(data["image"][0]), np.asarray(data["label"][0]).astype(np.int64)


def on_label_grid(subject: dict, folder: Path, modality: str) -> Path:
    """The modality resampled onto the T1 grid with its known (true) misalignment undone."""
    from ElastixMonaiLabelLib.elastix_transforms import itk_affine
    from ElastixMonaiLabelLib.images import read_volume, write_volume
    from ElastixMonaiLabelLib.registration import resample

    entry = subject["modalities"][modality]
    if modality == "t1":
        return folder / entry["file"]
    reference = read_volume(folder / subject["modalities"]["t1"]["file"])
    moved = resample(read_volume(folder / entry["file"]), itk_affine(np.array(entry["matrix_lps"])), reference)
    return write_volume(moved, folder / f"{modality}_on_t1.nii.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training time (default 20)")
    parser.add_argument("--model", type=Path, default=None, help="evaluate this trained model instead of training")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmark-output" / "synthseg.pt", help="where the trained model goes")
    parser.add_argument("--spacing", type=float, default=2.0, help="model resolution in mm (default 2)")
    parser.add_argument("--subjects", type=int, default=2, help="evaluation subjects from held-out label maps (default 2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    for spacing in (1.0, 2.0):
        print(f"generator: {generator_speed(spacing):.2f} volumes/s at {spacing:g} mm (CPU, {torch.get_num_threads()} threads)")

    maps = label_map_paths()
    train_maps, held_out = maps[:12], maps[12:]
    minutes = 0.0
    if args.model is None:
        config = SynthSegTrainingConfig(spacing_mm=args.spacing, max_minutes=args.minutes, device=args.device, seed=0)
        history = train_from_label_maps(train_maps, args.out, PRIORS, config, log=print)
        minutes = history["minutes"]
        print(f"trained {history['iterations']} iterations in {minutes:.1f} min -> {args.out}")
        model_path = args.out
    else:
        model_path = args.model
        import json

        minutes = json.loads(model_path.with_suffix(".json").read_text()).get("minutes", 0.0)
    model = load_model(model_path, args.device)

    names = {s.value: s.name for s in SYNTHSEG_STRUCTURES}
    scores: dict[str, list[float]] = {"t1": [], "t2": [], "flair": []}
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.subjects):
            label_map = held_out[index % len(held_out)]
            folder = Path(tmp) / f"subject-{index}"
            subject = generate_subject(SubjectSpec(seed=100 + index, spacing_mm=1.0, label_map=str(label_map),
                                                   thick_slice_mm={"flair": 5.0}), folder)
            labels_values = folder / "labels_values.nii.gz"
            import nibabel

            fs = nibabel.load(str(folder / "labels.nii.gz"))
            nibabel.save(nibabel.Nifti1Image(freesurfer_to_values(np.asarray(fs.dataobj)), fs.affine), str(labels_values))
            for modality in scores:
                image, truth = to_model_grid(on_label_grid(subject, folder, modality), labels_values, args.spacing)
                predicted = segment_volume(model, image, args.device)
                dice = dice_per_label(predicted, truth, list(range(1, 33)))
                mean = float(np.mean(list(dice.values())))
                scores[modality].append(mean)
                worst = sorted(dice.items(), key=lambda item: item[1])[:3]
                print(f"{label_map.name} {modality}: mean Dice {mean:.3f}; lowest "
                      + ", ".join(f"{names[v]} {d:.2f}" for v, d in worst))
    means = {m: float(np.mean(v)) for m, v in scores.items()}
    print(f"synthseg: mean_dice_t1={means['t1']:.3f} mean_dice_t2={means['t2']:.3f} mean_dice_flair={means['flair']:.3f} "
          f"resolution_mm={args.spacing:g} train_minutes={minutes:.1f} device={args.device}")


if __name__ == "__main__":
    main()
