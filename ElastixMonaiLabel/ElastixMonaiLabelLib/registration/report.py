"""The report of one registration, built the same way by both registration paths.

:mod:`.itk_images` (the core's ITK path) and :mod:`.voxel_arrays` (the Slicer module's array
path) write the same keys; the command line prints them, ``register`` writes them beside the
registered volume, the Slicer module shows them.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

from .parameter_files import ParameterMap
from .similarity import similarity_verdict


def registration_report(
    name: str,
    preset: str,
    chain: list[ParameterMap],
    *,
    engine: str,
    engine_version: str,
    threads: int | None,
    resolution_matched: bool,
    roles_swapped: bool,
    started: float,
    elastix_seconds: float,
    similarity: tuple[float, float, str],
    matrix: np.ndarray | None,
    reference: Any,
) -> dict[str, Any]:
    """The report of registering ``name`` onto ``reference``.

    Args:
        preset: the preset's name.
        chain: elastix's TransformParameters maps, one per stage.
        engine, engine_version: which elastix ran.
        started: ``time.perf_counter()`` when the registration started; the total time runs to now.
        elastix_seconds: the time elastix itself took.
        similarity: (NMI before, NMI after, region) from :func:`.similarity.before_after`.
        matrix: the 4x4 LPS matrix of a linear result, None for a displacement field.
        reference: the reference image (ITK image or voxels.VoxelVolume) the verdict measures displacement on.
    """
    return {
        "modality": name,
        "preset": preset,
        "stages": [stage["Transform"][0] for stage in chain],
        "engine": engine,
        "engine_version": engine_version,
        "threads": threads,
        "resolution_matched": bool(resolution_matched),
        "roles_swapped": bool(roles_swapped),
        "time_registration_s": round(elastix_seconds, 3),
        "time_total_s": round(time.perf_counter() - started, 3),
        **similarity_verdict(*similarity, matrix, reference),
        "transform_kind": "linear" if matrix is not None else "displacement_field",
        "matrix_lps": matrix.tolist() if matrix is not None else None,
        "platform": platform.platform(),
    }
