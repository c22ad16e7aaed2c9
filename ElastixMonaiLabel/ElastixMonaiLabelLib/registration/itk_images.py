"""Co-registration of brain MRI modalities onto one reference with elastix.

One reference (fixed) volume, any number of moving modalities. For each modality
the result holds the volume resampled onto the reference grid, the transform
(reference LPS points -> moving LPS points: linear as a 4x4 matrix, otherwise a
displacement field) and a report. :func:`save_result` writes them as
``<name>_registered.nii.gz``, ``<name>_to_<reference>.tfm`` (or ``.h5``) and
``<name>_registration.json``.
"""

from __future__ import annotations

import json
import platform
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .transforms import (
    chain_matrix,
    itk_affine,
    itk_displacement_field_transform,
    read_linear_transform,
    write_itk_transform,
    write_linear_transform,
)
from .engines import LogCallback, make_engine
from ..errors import InputError
from ..runtime.files import ensure_output_dir, write_text
from ..data.images import read_mask, read_volume, write_volume
from .parameter_files import ParameterMap
from .presets import Preset, default_preset, get_preset, stages_are_linear
from .resolution import is_coarser, match_resolution, pyramid_schedule
from ..runtime.processes import CancelToken
from .similarity import normalized_mutual_information, similarity_verdict

ProgressCallback = Callable[[float, str], None]

INTERPOLATORS = {0: "nearest", 1: "linear", 3: "bspline"}
_RESOLUTION_LINE = re.compile(r"^Resolution:\s*(\d+)")


@dataclass
class ModalityResult:
    """Registration of one moving modality onto the reference."""

    name: str
    registered: Any
    transform: Any
    matrix: np.ndarray | None
    report: dict[str, Any]
    transform_chain: list[ParameterMap] = field(repr=False, default_factory=list)

    @property
    def is_linear(self) -> bool:
        return self.matrix is not None


def resample(image: Any, transform: Any, reference: Any, interpolation: str = "linear", default_value: float = 0) -> Any:
    """Resample ``image`` onto ``reference``'s grid through ``transform`` (reference -> image points)."""
    import itk

    image_type = type(image)
    interpolators = {
        "nearest": itk.NearestNeighborInterpolateImageFunction,
        "linear": itk.LinearInterpolateImageFunction,
        "bspline": itk.BSplineInterpolateImageFunction,
    }
    if interpolation not in interpolators:
        raise InputError("interpolation", f"unknown interpolation {interpolation!r}; choose one of {', '.join(interpolators)}")
    if interpolation == "bspline":
        pixel_type = itk.template(image_type)[1][0]
        interpolator = itk.BSplineInterpolateImageFunction[image_type, itk.D, pixel_type].New()
    else:
        interpolator = interpolators[interpolation][image_type, itk.D].New()
    return itk.resample_image_filter(
        image,
        transform=transform,
        interpolator=interpolator,
        use_reference_image=True,
        reference_image=reference,
        default_pixel_value=default_value,
    )


def warp_labels(labels: Any, transform: Any, reference: Any) -> Any:
    """Propagate a label map onto ``reference``'s grid with nearest-neighbour interpolation.

    Label values are preserved exactly (no value is created that was not in ``labels``).
    """
    return resample(labels, transform, reference, interpolation="nearest", default_value=0)


def load_transform(path: str | Path) -> Any:
    """An ITK transform from a file written by :func:`save_result` (.tfm or .h5)."""
    import itk

    path = Path(path)
    if not path.exists():
        raise InputError(path, "transform file not found")
    if path.suffix == ".tfm":
        return itk_affine(read_linear_transform(path))
    transforms = itk.transformread(str(path))
    return transforms[0] if len(transforms) == 1 else transforms


def _foreground(reference_array: np.ndarray, mask_array: np.ndarray | None) -> np.ndarray:
    if mask_array is not None:
        return mask_array.astype(bool)
    lo, hi = np.percentile(reference_array, [1, 99])
    return reference_array > lo + 0.05 * (hi - lo)


def _similarity_report(reference: Any, moving: Any, registered: Any, mask: Any) -> tuple[float, float, str]:
    """NMI between reference and moving before (header alignment) and after registration.

    Computed on every other voxel along each axis: an eighth of the work, the same
    figure to three decimals.
    """
    import itk

    stride = (slice(None, None, 2),) * 3
    coarse = itk.Image[itk.F, 3].New()
    coarse.SetRegions([(n + 1) // 2 for n in reference.GetLargestPossibleRegion().GetSize()])
    coarse.SetSpacing([2 * s for s in reference.GetSpacing()])
    coarse.SetOrigin(reference.GetOrigin())
    coarse.SetDirection(reference.GetDirection())
    reference_array = itk.array_view_from_image(reference)[stride]
    mask_array = itk.array_view_from_image(mask)[stride] if mask is not None else None
    region = _foreground(reference_array, mask_array)
    before = itk.array_view_from_image(resample(moving, itk_affine(np.eye(4)), coarse, "linear"))
    after = itk.array_view_from_image(registered)[stride]
    name = "reference mask" if mask is not None else "reference foreground"
    return (
        normalized_mutual_information(reference_array, before, region),
        normalized_mutual_information(reference_array, after, region),
        name,
    )


def _adapt_sampler(stages: list[ParameterMap], has_fixed_mask: bool) -> list[ParameterMap]:
    # elastix's "Random" sampler gives up inside a small mask on coarse levels;
    # "RandomSparseMask" draws the same kind of samples from the mask's voxel list.
    if not has_fixed_mask:
        return stages
    return [
        {**stage, "ImageSampler": ("RandomSparseMask",)} if stage.get("ImageSampler") == ("Random",) else stage
        for stage in stages
    ]


_SCHEDULED_PYRAMIDS = {"RecursiveImagePyramid", "SmoothingImagePyramid", "ShrinkingImagePyramid"}
_SCHEDULE_KEYS = ("ImagePyramidSchedule", "FixedImagePyramidSchedule", "MovingImagePyramidSchedule")


def _pyramid_schedules(stages: list[ParameterMap], fixed: Any, moving: Any) -> list[ParameterMap]:
    """Give each stage's pyramids a schedule in physical units (see :func:`.resolution.pyramid_schedule`).

    The base resolution is the coarser of the two images' finest spacings (the resolution
    both share once matched), so a 0.45 mm in-plane T2 does not leave a 1 mm T1 unshrunk
    at the coarse levels. Only for elastix's schedule-driven pyramids, and only where the
    preset sets no schedule itself.
    """
    base = float(max(min(fixed.GetSpacing()), min(moving.GetSpacing())))
    adapted = []
    for stage in stages:
        kinds = [stage.get(f"{role}ImagePyramid", ("",))[0].removeprefix(role) for role in ("Fixed", "Moving")]
        if any(key in stage for key in _SCHEDULE_KEYS) or not all(kind in _SCHEDULED_PYRAMIDS for kind in kinds):
            adapted.append(stage)
            continue
        levels = _levels(stage)
        adapted.append({
            **stage,
            "FixedImagePyramidSchedule": tuple(str(f) for f in pyramid_schedule(fixed, levels, base)),
            "MovingImagePyramidSchedule": tuple(str(f) for f in pyramid_schedule(moving, levels, base)),
        })
    return adapted


def elastix_stages(stages: list[ParameterMap], fixed: Any, moving: Any, has_fixed_mask: bool) -> list[ParameterMap]:
    """The parameter maps elastix gets for ``fixed`` and ``moving`` (both engines, both code paths)."""
    return _pyramid_schedules(_adapt_sampler(stages, has_fixed_mask), fixed, moving)


def _levels(stage: ParameterMap) -> int:
    return int(stage.get("NumberOfResolutions", ("3",))[0])  # elastix's own default is 3


def _final_interpolation(stages: list[ParameterMap]) -> str:
    order = int(stages[-1].get("FinalBSplineInterpolationOrder", ("3",))[0])
    return INTERPOLATORS.get(order, "bspline")


class _ProgressFromLog:
    """Turns elastix's "Resolution: k" log lines into a fraction of one modality."""

    def __init__(self, stages: list[ParameterMap], report: Callable[[float], None]) -> None:
        self.levels = [_levels(stage) for stage in stages]
        self.total = float(sum(self.levels))
        self.done = 0
        self.report = report

    def __call__(self, line: str) -> None:
        if _RESOLUTION_LINE.match(line.strip()):
            self.done += 1
            self.report(min(self.done - 1, self.total) / self.total)


def register_modality(
    reference: Any,
    moving: Any,
    *,
    name: str,
    preset: Preset | str | None = None,
    engine: str = "itk",
    reference_mask: Any = None,
    moving_mask: Any = None,
    threads: int | None = None,
    log: LogCallback | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
    engine_options: Mapping[str, Any] | None = None,
    match_resolutions: bool = True,
) -> ModalityResult:
    """Register one moving volume onto the reference (ITK images in, result in memory).

    With ``match_resolutions`` (default) elastix sees both images smoothed to their
    common resolution (see :mod:`.resolution`); the output is resampled from the
    original moving image. For linear presets without masks, a moving image coarser
    than the reference (thick slices) is registered as the fixed image and the
    matrix is inverted, which is exact and removes the bias of interpolating thick
    slices.
    """
    preset = preset if isinstance(preset, Preset) else (get_preset(preset) if preset else default_preset())
    runner = make_engine(engine, **(engine_options or {}))
    stages = preset.parameter_maps()
    if cancel:
        cancel.raise_if_cancelled()

    line_handlers = [h for h in (log, _ProgressFromLog(stages, progress) if progress else None) if h]

    def on_line(line: str) -> None:
        for handler in line_handlers:
            handler(line)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="elastix-monailabel-") as tmp:
        workdir = Path(tmp)
        fixed_input, moving_input = match_resolution(reference, moving) if match_resolutions else (reference, moving)
        # With no masks, a coarser moving image (thick slices) is registered as the fixed
        # image: samples then sit on its voxel centres and only the sharp image is
        # interpolated, so there is no slice-interpolation bias; inverting is exact
        # for linear maps. (A mask would become a moving mask, which elastix uses to
        # reject samples, not to select them: then the roles stay.)
        swap = stages_are_linear(stages) and is_coarser(moving, reference) and reference_mask is None and moving_mask is None
        if swap:
            fixed_input, moving_input = moving_input, fixed_input
        masks = (moving_mask, reference_mask) if swap else (reference_mask, moving_mask)
        parameter_maps = elastix_stages(stages, fixed_input, moving_input, masks[0] is not None)
        chain = runner.register(
            fixed_input, moving_input, parameter_maps, workdir=workdir,
            fixed_mask=masks[0], moving_mask=masks[1], threads=threads, log=on_line, cancel=cancel,
        )
        elastix_seconds = time.perf_counter() - started
        matrix = chain_matrix(chain)
        if swap:
            matrix = np.linalg.inv(matrix)
        if matrix is not None:
            transform = itk_affine(matrix)
        else:
            transform = itk_displacement_field_transform(runner.displacement_field(chain, reference, workdir=workdir))
    registered = resample(moving, transform, reference, _final_interpolation(stages))
    total_seconds = time.perf_counter() - started

    report = {
        "modality": name,
        "preset": preset.name,
        "stages": [stage["Transform"][0] for stage in chain],
        "engine": runner.name,
        "engine_version": runner.version(),
        "threads": threads,
        "resolution_matched": bool(match_resolutions),
        "roles_swapped": bool(swap),
        "time_registration_s": round(elastix_seconds, 3),
        "time_total_s": round(total_seconds, 3),
        **similarity_verdict(*_similarity_report(reference, moving, registered, reference_mask), matrix, reference),
        "transform_kind": "linear" if matrix is not None else "displacement_field",
        "matrix_lps": matrix.tolist() if matrix is not None else None,
        "platform": platform.platform(),
    }
    if progress:
        progress(1.0)
    return ModalityResult(name, registered, transform, matrix, report, chain)


def transform_file_name(name: str, reference_name: str, linear: bool) -> str:
    return f"{name}_to_{reference_name}.{'tfm' if linear else 'h5'}"


def save_result(result: ModalityResult, out_dir: str | Path, reference_name: str) -> dict[str, Path]:
    """Write one modality's volume, transform and report (each atomically); return their paths."""
    out_dir = ensure_output_dir(out_dir)
    paths = {
        "volume": out_dir / f"{result.name}_registered.nii.gz",
        "transform": out_dir / transform_file_name(result.name, reference_name, result.is_linear),
        "report": out_dir / f"{result.name}_registration.json",
    }
    write_volume(result.registered, paths["volume"])
    if result.is_linear:
        write_linear_transform(result.matrix, paths["transform"])
    else:
        write_itk_transform(result.transform, paths["transform"])
    report = {**result.report, "files": {key: path.name for key, path in paths.items()}}
    write_text(paths["report"], json.dumps(report, indent=2) + "\n")
    return paths


def modality_name(path: str | Path) -> str:
    """A short name from a file name: 'sub-01_T2w.nii.gz' -> 'sub-01_T2w'."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".mgz", ".hdr", ".img"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def register_files(
    reference_path: str | Path,
    moving_paths: list[str | Path],
    out_dir: str | Path,
    *,
    preset: str | None = None,
    engine: str = "itk",
    reference_mask_path: str | Path | None = None,
    moving_mask_paths: list[str | Path | None] | None = None,
    threads: int | None = None,
    log: LogCallback | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    engine_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Path]]:
    """Register files onto a reference file and write the outputs to ``out_dir``.

    Every input, the preset, the engine and the output folder are checked before
    any registration starts, so bad input writes nothing.
    """
    chosen = get_preset(preset) if preset else default_preset()
    make_engine(engine, **(engine_options or {}))  # fails now if the executable is missing
    reference = read_volume(reference_path)
    reference_mask = read_mask(reference_mask_path, reference, reference_path) if reference_mask_path else None
    moving_mask_paths = moving_mask_paths or [None] * len(moving_paths)
    if len(moving_mask_paths) != len(moving_paths):
        raise InputError("moving masks", f"{len(moving_mask_paths)} masks for {len(moving_paths)} moving volumes")
    names = [modality_name(p) for p in moving_paths]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise InputError(moving_paths[names.index(duplicates.pop())], "two moving volumes have the same file name")
    moving = []
    for path, mask_path in zip(moving_paths, moving_mask_paths):
        image = read_volume(path)
        moving.append((image, read_mask(mask_path, image, path) if mask_path else None))
    out_dir = ensure_output_dir(out_dir)

    reference_name = modality_name(reference_path)
    written = []
    for index, ((image, mask), name) in enumerate(zip(moving, names)):
        def step(fraction: float, index: int = index, name: str = name) -> None:
            if progress:
                progress((index + fraction) / len(moving), f"{name} -> {reference_name}")

        step(0.0)
        result = register_modality(
            reference, image, name=name, preset=chosen, engine=engine, reference_mask=reference_mask,
            moving_mask=mask, threads=threads, log=log, progress=step, cancel=cancel, engine_options=engine_options,
        )
        result.report["reference_file"] = str(Path(reference_path).resolve())
        result.report["moving_file"] = str(Path(moving_paths[index]).resolve())
        written.append(save_result(result, out_dir, reference_name))
    return written

