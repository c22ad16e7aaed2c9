"""Whole-brain segmentation of REAL scans against FreeSurfer's aseg: Dice per structure, time, pictures.

Run (real data by path argument; nothing from it enters the repository):

    .venv/bin/python benchmarks/real_segmentation.py --data ../shared/data/real

Cases (see that folder's README):
- skull-stripped: FreeSurfer's "bert" (``bert-fs7.2``, ``bert-fs6.0``: ``brain.nii.gz`` at 1 mm against
  ``aseg.nii.gz``, compared at 1 mm);
- whole head: MNE's "sample" (``mne-sample/t1.nii.gz`` at 1 mm, neck and all, against ``aseg_3mm.nii.gz``;
  the 1 mm result is compared at 3 mm, nearest neighbour);
- pictures only (no reference labels): the BraTS case (skull-stripped, tumour) and the TCGA case (5.5 mm slices).

Dice is over SynthSeg's structures WITHOUT label 24 (CSF), which means different things in SynthSeg's maps
(all extra-cerebral CSF) and in aseg (a small ventral blob). aseg is FreeSurfer's automatic output, a silver
standard: bert's two FreeSurfer runs agree at about 0.99 foreground Dice. A PNG per case goes to --out; look
at them. Last line:
``real_seg: mean_dice_skull_stripped=A mean_dice_whole_head=B time_s=T model=atlas_registration``
(T: mean time per 1 mm case, loading excluded).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib.segmentation.atlases import (  # noqa: E402
    ATLAS_SPACING_MM,
    DEFAULT_ATLASES,
    build_atlases,
    segment_with_atlases,
)
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label  # noqa: E402
from ElastixMonaiLabelLib.data.images import read_volume  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES, freesurfer_to_values  # noqa: E402

# Dice over every SynthSeg structure but CSF (FreeSurfer id 24), see the docstring.
SCORED = [s for s in SYNTHSEG_STRUCTURES if s.freesurfer_id != 24]


@dataclass
class RealCase:
    name: str
    group: str  # skull_stripped | whole_head | picture
    channels: dict[str, Path]
    truth: Path | None = None
    notes: list[str] = field(default_factory=list)


def find_cases(data: Path) -> list[RealCase]:
    cases = []
    for run in ("bert-fs7.2", "bert-fs6.0"):
        folder = data / run
        if (folder / "brain.nii.gz").exists():
            cases.append(RealCase(run, "skull_stripped", {"t1": folder / "brain.nii.gz"}, folder / "aseg.nii.gz"))
    mne = data / "mne-sample"
    if (mne / "t1.nii.gz").exists():
        cases.append(RealCase("mne-sample", "whole_head", {"t1": mne / "t1.nii.gz"}, mne / "aseg_3mm.nii.gz"))
    for brats in sorted((data / "brats-preprocessed").glob("BraTS-*")):
        files = {suffix: next(iter(brats.glob(f"*-{suffix}.nii.gz")), None) for suffix in ("t1n", "t1c", "t2w", "t2f")}
        if files["t1n"]:
            channels = {"t1": files["t1n"], "t1ce": files["t1c"], "t2": files["t2w"], "flair": files["t2f"]}
            cases.append(RealCase(brats.name, "picture", {k: v for k, v in channels.items() if v}))
    tcga = sorted((data / "tcga-fg-6692").glob("*_t1.nii.gz"))
    if tcga:
        cases.append(RealCase(tcga[0].name.split("_")[0], "picture", {"t1": tcga[0]}, notes=["5.5 mm slices"]))
    return cases


def score(labels, truth_path: Path) -> dict[str, float]:
    """Dice per scored structure, on the reference labels' grid (nearest neighbour when grids differ)."""
    import itk

    from ElastixMonaiLabelLib.registration.transforms import itk_affine
    from ElastixMonaiLabelLib.data.images import resample

    truth_image = read_volume(truth_path, pixel_type="short")
    on_truth_grid = resample(labels, itk_affine(np.eye(4)), truth_image, "nearest")
    predicted = itk.array_from_image(on_truth_grid)
    truth = freesurfer_to_values(itk.array_from_image(truth_image))
    dice = dice_per_label(predicted, truth, [s.value for s in SCORED])
    return {s.name: dice[s.value] for s in SCORED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of real scans (e.g. ../shared/data/real)")
    parser.add_argument("--out", type=Path, default=Path("benchmark-output") / "real_segmentation")
    parser.add_argument("--atlases", type=int, default=DEFAULT_ATLASES)
    parser.add_argument("--atlas-spacing", type=float, default=ATLAS_SPACING_MM)
    parser.add_argument("--preset", default="atlas-deformable")
    parser.add_argument("--cases", default=None, help="comma-separated case names to run (default all)")
    args = parser.parse_args()

    import itk

    from ElastixMonaiLabelLib.workflows.figures import segmentation_figure

    cases = find_cases(args.data)
    if args.cases:
        cases = [c for c in cases if c.name in args.cases.split(",")]
    if not cases:
        sys.exit(f"no real case found in {args.data} (see ../shared/data/real/README.md for the layout)")
    args.out.mkdir(parents=True, exist_ok=True)
    atlases = build_atlases(args.out / "atlases", count=args.atlases, spacing_mm=args.atlas_spacing)
    model = "atlas_registration"
    results, times = {}, []
    for case in cases:
        channels = {name: read_volume(path) for name, path in case.channels.items()}
        started = time.perf_counter()
        labels, report = segment_with_atlases(channels, atlases, preset=args.preset)
        seconds = time.perf_counter() - started
        spacing = min(channels[next(iter(channels))].GetSpacing())
        if case.group != "picture" and spacing <= 1.01:
            times.append(seconds)
        itk.imwrite(labels, str(args.out / f"{case.name}_labels.nii.gz"), compression=True)
        entry = {"group": case.group, "time_s": round(seconds, 1), "report": report}
        title = f"{case.name} ({case.group.replace('_', ' ')}): {model} in {seconds:.0f} s"
        if case.truth is not None:
            dice = score(labels, case.truth)
            entry["dice"] = {k: round(v, 3) for k, v in dice.items()}
            entry["mean_dice"] = round(float(np.mean(list(dice.values()))), 4)
            title += f", mean Dice {entry['mean_dice']:.3f} vs aseg (CSF excluded)"
        segmentation_figure(channels[next(iter(channels))], labels, SYNTHSEG_STRUCTURES, args.out / f"{case.name}.png", title=title)
        results[case.name] = entry
        print(f"{case.name}: {case.group} {entry.get('mean_dice', '-')} in {seconds:.1f} s -> {args.out / (case.name + '.png')}",
              flush=True)

    scored = {name: r for name, r in results.items() if "dice" in r}
    if scored:
        print(f"\n{'structure':32s} " + " ".join(f"{name:>12s}" for name in scored))
        for structure in SCORED:
            print(f"{structure.name:32s} " + " ".join(f"{r['dice'][structure.name]:12.3f}" for r in scored.values()))
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    def group_mean(group: str) -> str:
        values = [r["mean_dice"] for r in results.values() if r["group"] == group and "mean_dice" in r]
        return f"{statistics.mean(values):.3f}" if values else "nan"

    print(f"real_seg: mean_dice_skull_stripped={group_mean('skull_stripped')} mean_dice_whole_head={group_mean('whole_head')} "
          f"time_s={statistics.mean(times) if times else float('nan'):.1f} model={model}")


if __name__ == "__main__":
    main()
