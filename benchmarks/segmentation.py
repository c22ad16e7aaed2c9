"""Accuracy and time of the atlas_registration model at 2 mm on subjects no atlas was made from.

Run: .venv/bin/python benchmarks/segmentation.py [--atlases 12] [--subjects 3] [--spacing 2]

Atlases are synthesised from the first K shipped SynthSeg label maps; test subjects from
other label maps (misaligned T1/T2/FLAIR; the model reads the T1 channel). Prints Dice per
structure (averaged over subjects), the mean, and the time per case. Last line:
``registration_seg: mean_dice=D time_s=T atlases=K``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib.segmentation.atlases import DEFAULT_ATLASES, build_atlases, segment_with_atlases  # noqa: E402
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values  # noqa: E402
from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject, label_map_paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atlases", type=int, default=DEFAULT_ATLASES)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=2.0)
    parser.add_argument("--preset", default="atlas-deformable")
    parser.add_argument("--out", type=Path, default=Path("benchmark-output") / "segmentation")
    args = parser.parse_args()

    import itk

    maps = label_map_paths()
    atlases = build_atlases(args.out / "atlases", count=args.atlases, spacing_mm=args.spacing)
    test_maps = maps[args.atlases : args.atlases + args.subjects]
    dice_rows, times = [], []
    for index, label_map in enumerate(test_maps):
        folder = args.out / f"subject-{label_map.stem.split('.')[0]}-{args.spacing:g}mm"
        if not (folder / "subject.json").exists():
            generate_subject(SubjectSpec(seed=500 + index, spacing_mm=args.spacing, label_map=str(label_map)), folder)
        channels = {name: itk.imread(str(folder / f"{name}.nii.gz"), itk.F) for name in ("t1",)}
        started = time.perf_counter()
        labels, _ = segment_with_atlases(channels, atlases, preset=args.preset)
        times.append(time.perf_counter() - started)
        truth = freesurfer_to_values(itk.array_from_image(itk.imread(str(folder / "labels.nii.gz"))))
        dice = dice_per_label(itk.array_from_image(labels), truth, [s.value for s in SYNTHSEG_STRUCTURES])
        dice_rows.append(dice)
        print(f"{label_map.name}: mean Dice {np.mean(list(dice.values())):.3f} in {times[-1]:.1f} s", flush=True)

    print(f"\n{'structure':32s} Dice")
    for structure in SYNTHSEG_STRUCTURES:
        print(f"{structure.name:32s} {np.mean([row[structure.value] for row in dice_rows]):.3f}")
    mean_dice = float(np.mean([np.mean(list(row.values())) for row in dice_rows]))
    print(f"registration_seg: mean_dice={mean_dice:.3f} time_s={statistics.median(times):.1f} atlases={args.atlases}")


if __name__ == "__main__":
    main()
