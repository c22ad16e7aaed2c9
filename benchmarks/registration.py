"""Co-registration speed and accuracy at 1 mm: brain-rigid against elastix's default rigid map.

Run: .venv/bin/python benchmarks/registration.py [--subjects 3] [--spacing 1] [--out benchmark-output]

Generated subjects (T2 and FLAIR misaligned from T1 by known rigid motions of 5-10 degrees
and 5-10 mm). For every case, in the same process and interleaved: itk-elastix with its
default 'rigid' parameter map (the baseline; time includes its result image), the
project's default preset through the core (time includes resampling and the report), and
ANTsPy's 'Rigid' when antspyx is installed. Errors are measured over brain voxels against
the known transform. The machine is shared and noisy: only ratios within one run mean much.
The last line is machine-readable.

With --real DIR (the shared real-data folder, e.g. ../shared/data/real): pose consistency
on real scans instead. The clinical TCGA case's T1ce, T2 and FLAIR (0.9 x 0.9 x 5.5 mm, each
on its own matrix) are registered onto its T1, then again as copies moved by known
header-only rigid motions (up to 10 degrees and 10 mm, fixed seed; exact, no resampling).
A registration that does not depend on the starting pose gives the first result composed
with the motion; the distance between the two over the reference's head voxels is the
consistency. Both the project's default preset and itk-elastix's default rigid map run in
the same process, interleaved. --brats adds the BraTS case's t1c/t2w/t2f -> t1n (1 mm),
reported separately. Last line:
rigid_consistency: worst_mean_mm=A worst_p95_mm=B baseline_worst_mean_mm=C time_ratio_vs_elastix_default=R data=real
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib.registration.transforms import chain_matrix  # noqa: E402
from ElastixMonaiLabelLib.synthetic.evaluation import moved_by_header, pose_consistency, registration_error  # noqa: E402
from ElastixMonaiLabelLib.errors import InputError  # noqa: E402
from ElastixMonaiLabelLib.segmentation.foreground import object_mask  # noqa: E402
from ElastixMonaiLabelLib.data.geometry import image_centre, voxel_points  # noqa: E402
from ElastixMonaiLabelLib.data.images import read_volume  # noqa: E402
from ElastixMonaiLabelLib.registration.itk_images import register_modality  # noqa: E402
from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject, random_rigid, rigid_matrix  # noqa: E402


def elastix_default_rigid(fixed, moving):
    import itk

    parameter_object = itk.ParameterObject.New()
    parameter_object.AddParameterMap(parameter_object.GetDefaultParameterMap("rigid"))
    _, transform_parameters = itk.elastix_registration_method(fixed, moving, parameter_object=parameter_object, log_to_console=False)
    chain = [
        {key: tuple(value) for key, value in dict(transform_parameters.GetParameterMap(i)).items()}
        for i in range(transform_parameters.GetNumberOfParameterMaps())
    ]
    return chain_matrix(chain)


def brain_rigid(fixed, moving, preset=None):
    return register_modality(fixed, moving, name="moving", preset=preset).matrix


def ants_rigid(fixed_path, moving_path):
    import ants
    import itk

    result = ants.registration(ants.image_read(str(fixed_path)), ants.image_read(str(moving_path)), type_of_transform="Rigid")
    transform = itk.transformread(result["fwdtransforms"][0])[0]
    return transform  # maps fixed points to moving points, like elastix's


REAL_SERIES = {
    # name: (folder under --real, reference file, moving files)
    "tcga": ("tcga-fg-6692", "TCGA-FG-6692_t1.nii.gz", ("TCGA-FG-6692_t1ce.nii.gz", "TCGA-FG-6692_t2.nii.gz", "TCGA-FG-6692_flair.nii.gz")),
    "brats": ("brats-preprocessed/BraTS-GLI-99999-000", "BraTS-GLI-99999-000-t1n.nii.gz",
              ("BraTS-GLI-99999-000-t1c.nii.gz", "BraTS-GLI-99999-000-t2w.nii.gz", "BraTS-GLI-99999-000-t2f.nii.gz")),
}


def head_points(reference, stride: int) -> np.ndarray:
    """LPS points of the reference's head (or brain, when skull-stripped): its largest bright region."""
    import itk

    array = itk.array_from_image(reference)
    lo, hi = np.percentile(array, [1, 99])
    return voxel_points(reference, object_mask(array, lo + 0.1 * (hi - lo)))[::stride]


def real_consistency(args) -> None:
    """Pose consistency of the default preset and elastix's default rigid map on real scans."""
    methods = {
        "elastix_default_rigid": elastix_default_rigid,
        "brain_rigid": lambda fixed, moving: brain_rigid(fixed, moving, args.preset),
    }
    series = ["tcga"] + (["brats"] if args.brats else [])
    rng = np.random.default_rng(args.motion_seed)
    warmed = False
    summary = {}
    print(f"{'series':6s} {'pair':14s} {'motion':>6s} {'method':22s} {'time_s':>7s} {'mean_mm':>8s} {'p95_mm':>7s}")
    for data in series:
        folder, reference_file, moving_files = REAL_SERIES[data]
        folder = args.real / folder
        reference = read_volume(folder / reference_file)
        points = head_points(reference, args.point_stride)
        results = {name: {"time": [], "mean": [], "p95": []} for name in methods}
        for moving_file in moving_files:
            moving = read_volume(folder / moving_file)
            pair = moving_file.split("-")[-1].split("_")[-1].split(".")[0] + "->" + reference_file.split("-")[-1].split("_")[-1].split(".")[0]
            if not warmed:  # the first elastix call of a process pays for loading libraries
                for method in methods.values():
                    method(reference, moving)
                warmed = True
            motions = [rigid_matrix(*random_rigid(rng, args.max_rotation_deg, args.max_translation_mm), image_centre(moving))
                       for _ in range(args.motions)]
            originals = {}
            for index, motion in enumerate([None] + motions):
                image = moving if motion is None else moved_by_header(moving, motion)
                order = list(methods) if index % 2 == 0 else list(reversed(methods))  # interleave against drift
                for method in order:
                    started = time.perf_counter()
                    matrix = methods[method](reference, image)
                    elapsed = time.perf_counter() - started
                    results[method]["time"].append(elapsed)
                    if motion is None:
                        originals[method] = matrix
                        continue
                    figures = pose_consistency(originals[method], matrix, motion, points)
                    results[method]["mean"].append(figures["mean_mm"])
                    results[method]["p95"].append(figures["p95_mm"])
                    print(f"{data:6s} {pair:14s} {index:6d} {method:22s} {elapsed:7.2f} {figures['mean_mm']:8.3f} {figures['p95_mm']:7.3f}",
                          flush=True)
        summary[data] = results
        print()
        for method, figures in results.items():
            print(f"{data} {method:22s} median_time_s={statistics.median(figures['time']):.2f} "
                  f"mean_consistency_mm={np.mean(figures['mean']):.3f} worst_mean_mm={max(figures['mean']):.3f} "
                  f"worst_p95_mm={max(figures['p95']):.3f}")
        print()
    for data in series[1:]:
        ours, base = summary[data]["brain_rigid"], summary[data]["elastix_default_rigid"]
        print(f"rigid_consistency_{data}: worst_mean_mm={max(ours['mean']):.3f} worst_p95_mm={max(ours['p95']):.3f} "
              f"baseline_worst_mean_mm={max(base['mean']):.3f} "
              f"time_ratio_vs_elastix_default={statistics.median(ours['time']) / statistics.median(base['time']):.2f}")
    ours, base = summary["tcga"]["brain_rigid"], summary["tcga"]["elastix_default_rigid"]
    print(f"rigid_consistency: worst_mean_mm={max(ours['mean']):.3f} worst_p95_mm={max(ours['p95']):.3f} "
          f"baseline_worst_mean_mm={max(base['mean']):.3f} "
          f"time_ratio_vs_elastix_default={statistics.median(ours['time']) / statistics.median(base['time']):.2f} data=real")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--first-seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("benchmark-output") / "registration")
    parser.add_argument("--real", type=Path, help="real-data folder (../shared/data/real): pose-consistency benchmark")
    parser.add_argument("--brats", action="store_true", help="with --real: the BraTS case too (1 mm, slower)")
    parser.add_argument("--motions", type=int, default=4, help="with --real: header motions per moving image")
    parser.add_argument("--motion-seed", type=int, default=2024)
    parser.add_argument("--max-rotation-deg", type=float, default=10.0)
    parser.add_argument("--max-translation-mm", type=float, default=10.0)
    parser.add_argument("--point-stride", type=int, default=7, help="with --real: every n-th head voxel is measured")
    parser.add_argument("--preset", help="preset name or parameter file(s) instead of the default (for tuning)")
    args = parser.parse_args()
    if args.real:
        try:
            real_consistency(args)
        except InputError as error:  # a missing or unreadable scan: say which, no traceback
            sys.exit(f"error: {error} (see ../shared/data/real/README.md for the layout)")
        return

    import itk

    import importlib.util

    have_ants = importlib.util.find_spec("ants") is not None  # optional: pip install antspyx
    methods = {"elastix_default_rigid": elastix_default_rigid, "brain_rigid": brain_rigid}
    if have_ants:
        methods["ants_rigid"] = None

    cases = []
    for seed in range(args.first_seed, args.first_seed + args.subjects):
        folder = args.out / f"subject-{seed}-{args.spacing:g}mm"
        if not (folder / "subject.json").exists():
            generate_subject(SubjectSpec(seed=seed, spacing_mm=args.spacing), folder)
        info = json.loads((folder / "subject.json").read_text())
        fixed = itk.imread(str(folder / "t1.nii.gz"), itk.F)
        points = voxel_points(fixed, itk.array_from_image(itk.imread(str(folder / "brain_mask.nii.gz"))) > 0)[::3]
        for modality in ("t2", "flair"):
            cases.append((f"seed{seed}-{modality}", folder, modality, fixed, itk.imread(str(folder / f"{modality}.nii.gz"), itk.F),
                          np.array(info["modalities"][modality]["matrix_lps"]), points))

    # Warm-up: the first elastix call of a process pays for loading libraries.
    _, _, _, fixed, moving, _, _ = cases[0]
    elastix_default_rigid(fixed, moving)
    brain_rigid(fixed, moving, args.preset)

    results = {name: {"time": [], "mean": [], "p95": []} for name in methods}
    print(f"{'case':16s} {'method':22s} {'time_s':>7s} {'mean_mm':>8s} {'p95_mm':>7s}")
    for index, (name, folder, modality, fixed, moving, truth, points) in enumerate(cases):
        order = list(methods) if index % 2 == 0 else list(reversed(methods))  # interleave against drift
        for method in order:
            started = time.perf_counter()
            if method == "ants_rigid":
                estimate = ants_rigid(folder / "t1.nii.gz", folder / f"{modality}.nii.gz")
            else:
                estimate = methods[method](fixed, moving) if method != "brain_rigid" else brain_rigid(fixed, moving, args.preset)
            elapsed = time.perf_counter() - started
            error = registration_error(estimate, truth, points)
            results[method]["time"].append(elapsed)
            results[method]["mean"].append(error["mean_mm"])
            results[method]["p95"].append(error["p95_mm"])
            print(f"{name:16s} {method:22s} {elapsed:7.2f} {error['mean_mm']:8.3f} {error['p95_mm']:7.3f}", flush=True)

    print()
    for method, figures in results.items():
        print(
            f"{method:22s} median_time_s={statistics.median(figures['time']):.2f} "
            f"tre_mean_mm={np.mean(figures['mean']):.3f} tre_p95_mm={np.mean(figures['p95']):.3f} "
            f"worst_p95_mm={max(figures['p95']):.3f}"
        )
    base, ours = results["elastix_default_rigid"], results["brain_rigid"]
    if have_ants:
        ratio = statistics.median(results["ants_rigid"]["time"]) / statistics.median(base["time"])
        print(f"ants_rigid: time_ratio_vs_elastix_default={ratio:.2f}")
    ratio = statistics.median(ours["time"]) / statistics.median(base["time"])
    print(
        f"rigid: time_ratio_vs_elastix_default={ratio:.2f} tre_mean_mm={np.mean(ours['mean']):.3f} "
        f"tre_p95_mm={np.mean(ours['p95']):.3f} baseline_tre_mean_mm={np.mean(base['mean']):.3f}"
    )


if __name__ == "__main__":
    main()
