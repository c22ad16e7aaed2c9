"""Co-registration speed and accuracy at 1 mm: brain-rigid against elastix's default rigid map.

Run: .venv/bin/python benchmarks/registration.py [--subjects 3] [--spacing 1] [--out benchmark-output]

Generated subjects (T2 and FLAIR misaligned from T1 by known rigid motions of 5-10 degrees
and 5-10 mm). For every case, in the same process and interleaved: itk-elastix with its
default 'rigid' parameter map (the baseline; time includes its result image), the
project's default preset through the core (time includes resampling and the report), and
ANTsPy's 'Rigid' when antspyx is installed. Errors are measured over brain voxels against
the known transform. The machine is shared and noisy: only ratios within one run mean much.
The last line is machine-readable.
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

from ElastixMonaiLabelLib.elastix_transforms import chain_matrix  # noqa: E402
from ElastixMonaiLabelLib.evaluation import registration_error  # noqa: E402
from ElastixMonaiLabelLib.geometry import voxel_points  # noqa: E402
from ElastixMonaiLabelLib.registration import register_modality  # noqa: E402
from ElastixMonaiLabelLib.sampledata import SubjectSpec, generate_subject  # noqa: E402


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


def brain_rigid(fixed, moving):
    return register_modality(fixed, moving, name="moving").matrix


def ants_rigid(fixed_path, moving_path):
    import ants
    import itk

    result = ants.registration(ants.image_read(str(fixed_path)), ants.image_read(str(moving_path)), type_of_transform="Rigid")
    transform = itk.transformread(result["fwdtransforms"][0])[0]
    return transform  # maps fixed points to moving points, like elastix's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--spacing", type=float, default=1.0)
    parser.add_argument("--first-seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("benchmark-output") / "registration")
    args = parser.parse_args()

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
    brain_rigid(fixed, moving)

    results = {name: {"time": [], "mean": [], "p95": []} for name in methods}
    print(f"{'case':16s} {'method':22s} {'time_s':>7s} {'mean_mm':>8s} {'p95_mm':>7s}")
    for index, (name, folder, modality, fixed, moving, truth, points) in enumerate(cases):
        order = list(methods) if index % 2 == 0 else list(reversed(methods))  # interleave against drift
        for method in order:
            started = time.perf_counter()
            if method == "ants_rigid":
                estimate = ants_rigid(folder / "t1.nii.gz", folder / f"{modality}.nii.gz")
            else:
                estimate = methods[method](fixed, moving)
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
