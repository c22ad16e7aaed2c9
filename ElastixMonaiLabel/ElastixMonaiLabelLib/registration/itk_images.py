"""Co-registration of ITK images with elastix: the core's path (command line, server, notebooks).

One reference (fixed) volume, one moving modality at a time. The result holds the volume
resampled onto the reference grid, the transform (reference LPS points -> moving LPS points:
linear as a 4x4 matrix, otherwise a displacement field) and the report
(:mod:`.report`). What happens around elastix (parameter maps, roles, progress, final
interpolation) is :mod:`.stages`, shared with the Slicer module's path (:mod:`.voxel_arrays`);
files in and out are :mod:`..workflows.register`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.images import resample
from ..runtime.processes import CancelToken
from ..runtime.progress import ProgressCallback
from .engines import LogCallback, make_engine
from .parameter_files import ParameterMap
from .presets import Preset, resolve_preset
from .report import registration_report
from .resolution import match_resolution
from .similarity import SIMILARITY_STRIDE, before_after
from .stages import elastix_stages, final_interpolation, log_handler, swap_roles
from .transforms import chain_matrix, itk_affine, itk_displacement_field_transform


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


@dataclass
class _ElastixOutcome:
    chain: list[ParameterMap]
    matrix: np.ndarray | None
    transform: Any
    swapped: bool
    seconds: float


def warp_labels(labels: Any, transform: Any, reference: Any) -> Any:
    """Propagate a label map onto ``reference``'s grid with nearest-neighbour interpolation.

    Label values are preserved exactly (no value is created that was not in ``labels``).
    """
    return resample(labels, transform, reference, interpolation="nearest", default_value=0)


def similarity_before_after(reference: Any, moving: Any, registered: Any, mask: Any) -> tuple[float, float, str]:
    """NMI between reference and moving before (header alignment) and after registration, on every
    :data:`.similarity.SIMILARITY_STRIDE`-th voxel of the reference (see :func:`.similarity.before_after`)."""
    import itk

    step = SIMILARITY_STRIDE
    stride = (slice(None, None, step),) * 3
    coarse = itk.Image[itk.F, 3].New()
    coarse.SetRegions([(n + step - 1) // step for n in reference.GetLargestPossibleRegion().GetSize()])
    coarse.SetSpacing([step * s for s in reference.GetSpacing()])
    coarse.SetOrigin(reference.GetOrigin())
    coarse.SetDirection(reference.GetDirection())
    mask_array = itk.array_view_from_image(mask)[stride] if mask is not None else None
    return before_after(
        itk.array_view_from_image(reference)[stride],
        itk.array_view_from_image(resample(moving, None, coarse, "linear")),
        itk.array_view_from_image(registered)[stride],
        mask_array,
    )


def _run_elastix(runner: Any, stages: list[ParameterMap], reference: Any, moving: Any, masks: tuple[Any, Any], *,
                 match_resolutions: bool, threads: int | None, on_line: Callable[[str], None],
                 cancel: CancelToken | None) -> _ElastixOutcome:
    """elastix on the two images (roles swapped for a coarser moving image, see :func:`.stages.swap_roles`) ->
    its chain, the linear matrix or the displacement field, as a transform of reference points."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="elastix-monailabel-") as tmp:
        workdir = Path(tmp)
        fixed_input, moving_input = match_resolution(reference, moving) if match_resolutions else (reference, moving)
        swapped = swap_roles(stages, reference, moving, masked=any(m is not None for m in masks))
        if swapped:
            fixed_input, moving_input = moving_input, fixed_input
            masks = masks[::-1]
        chain = runner.register(
            fixed_input, moving_input, elastix_stages(stages, fixed_input, moving_input, masks[0] is not None),
            workdir=workdir, fixed_mask=masks[0], moving_mask=masks[1], threads=threads, log=on_line, cancel=cancel,
        )
        seconds = time.perf_counter() - started
        matrix = chain_matrix(chain)
        if swapped:
            matrix = np.linalg.inv(matrix)
        if matrix is not None:
            transform = itk_affine(matrix)
        else:
            transform = itk_displacement_field_transform(runner.displacement_field(chain, reference, workdir=workdir))
    return _ElastixOutcome(chain, matrix, transform, swapped, seconds)


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
    progress: ProgressCallback | None = None,
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
    slices. ``preset``: a Preset, a name or parameter file path(s); None: the default preset.
    """
    preset = resolve_preset(preset)
    runner = make_engine(engine, **(engine_options or {}))
    stages = preset.parameter_maps()
    if cancel:
        cancel.raise_if_cancelled()
    started = time.perf_counter()
    message = f"registering {name}"
    outcome = _run_elastix(runner, stages, reference, moving, (reference_mask, moving_mask),
                           match_resolutions=match_resolutions, threads=threads,
                           on_line=log_handler(stages, log, progress, message), cancel=cancel)
    registered = resample(moving, outcome.transform, reference, final_interpolation(stages))
    report = registration_report(
        name, preset.name, outcome.chain, engine=runner.name, engine_version=runner.version(), threads=threads,
        resolution_matched=match_resolutions, roles_swapped=outcome.swapped, started=started,
        elastix_seconds=outcome.seconds, similarity=similarity_before_after(reference, moving, registered, reference_mask),
        matrix=outcome.matrix, reference=reference,
    )
    if progress:
        progress(1.0, message)
    return ModalityResult(name, registered, outcome.transform, outcome.matrix, report, outcome.chain)
