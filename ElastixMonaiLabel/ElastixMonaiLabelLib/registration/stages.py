"""What both registration paths do around elastix: the parameter maps it gets, the roles of the two
images, progress read from its log, and how its result is resampled.

The core's path (:mod:`.itk_images`, ITK images, either engine) and the Slicer module's path
(:mod:`.voxel_arrays`, voxel arrays and the elastix executables) differ only in how they move
images; every rule below is shared, so the two give the same registration for the same input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..runtime.progress import ProgressCallback
from .parameter_files import ParameterMap
from .presets import stages_are_linear
from .resolution import is_coarser, pyramid_schedule

# elastix's FinalBSplineInterpolationOrder -> the resampler's interpolation.
INTERPOLATORS = {0: "nearest", 1: "linear", 3: "bspline"}
SCHEDULED_PYRAMIDS = {"RecursiveImagePyramid", "SmoothingImagePyramid", "ShrinkingImagePyramid"}
SCHEDULE_KEYS = ("ImagePyramidSchedule", "FixedImagePyramidSchedule", "MovingImagePyramidSchedule")
RESOLUTION_LINE = re.compile(r"^Resolution:\s*(\d+)")


def stage_levels(stage: ParameterMap) -> int:
    """Resolution levels of a stage (elastix's own default is 3)."""
    return int(stage.get("NumberOfResolutions", ("3",))[0])


def adapt_sampler(stages: list[ParameterMap], has_fixed_mask: bool) -> list[ParameterMap]:
    """With a fixed mask, elastix's "Random" sampler becomes "RandomSparseMask".

    "Random" gives up inside a small mask on coarse levels; "RandomSparseMask" draws the same
    kind of samples from the mask's voxel list.
    """
    if not has_fixed_mask:
        return stages
    return [
        {**stage, "ImageSampler": ("RandomSparseMask",)} if stage.get("ImageSampler") == ("Random",) else stage
        for stage in stages
    ]


def pyramid_schedules(stages: list[ParameterMap], fixed: Any, moving: Any) -> list[ParameterMap]:
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
        if any(key in stage for key in SCHEDULE_KEYS) or not all(kind in SCHEDULED_PYRAMIDS for kind in kinds):
            adapted.append(stage)
            continue
        levels = stage_levels(stage)
        adapted.append({
            **stage,
            "FixedImagePyramidSchedule": tuple(str(f) for f in pyramid_schedule(fixed, levels, base)),
            "MovingImagePyramidSchedule": tuple(str(f) for f in pyramid_schedule(moving, levels, base)),
        })
    return adapted


def elastix_stages(stages: list[ParameterMap], fixed: Any, moving: Any, has_fixed_mask: bool) -> list[ParameterMap]:
    """The parameter maps elastix gets for ``fixed`` and ``moving`` (both engines, both code paths)."""
    return pyramid_schedules(adapt_sampler(stages, has_fixed_mask), fixed, moving)


def without_result_image(stages: list[ParameterMap]) -> list[ParameterMap]:
    """The stages with elastix's own resampled image switched off.

    The core resamples with the converted transform itself (same result for both engines, and
    the written transform file is then what produced the volume).
    """
    return [{**stage, "WriteResultImage": ("false",)} for stage in stages]


def swap_roles(stages: list[ParameterMap], reference: Any, moving: Any, masked: bool) -> bool:
    """Whether the moving image is registered as the fixed one (and the matrix inverted).

    With no masks, a coarser moving image (thick slices) is registered as the fixed image:
    samples then sit on its voxel centres and only the sharp image is interpolated, so there
    is no slice-interpolation bias; inverting is exact for linear maps. (A mask would become a
    moving mask, which elastix uses to reject samples, not to select them: then the roles stay.)
    """
    return stages_are_linear(stages) and is_coarser(moving, reference) and not masked


def final_interpolation(stages: list[ParameterMap]) -> str:
    """How the result is resampled: the last stage's FinalBSplineInterpolationOrder (elastix's default 3)."""
    order = int(stages[-1].get("FinalBSplineInterpolationOrder", ("3",))[0])
    return INTERPOLATORS.get(order, "bspline")


class ProgressFromLog:
    """Turns elastix's "Resolution: k" log lines into a fraction of one registration, reported with ``message``."""

    def __init__(self, stages: list[ParameterMap], progress: ProgressCallback, message: str = "") -> None:
        self.levels = [stage_levels(stage) for stage in stages]
        self.total = float(sum(self.levels))
        self.done = 0
        self.progress = progress
        self.message = message

    def __call__(self, line: str) -> None:
        if RESOLUTION_LINE.match(line.strip()):
            self.done += 1
            self.progress(min(self.done - 1, self.total) / self.total, self.message)


def log_handler(stages: list[ParameterMap], log: Callable[[str], None] | None, progress: ProgressCallback | None,
                message: str = "") -> Callable[[str], None]:
    """One callback for elastix's log lines: passed on to ``log`` and read for ``progress``."""
    handlers = [h for h in (log, ProgressFromLog(stages, progress, message) if progress else None) if h]

    def on_line(line: str) -> None:
        for handler in handlers:
            handler(line)

    return on_line


def log_tail(path: Path, lines: int = 15) -> str:
    """The end of an elastix or transformix log, for an error message."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
