"""Image similarity used in registration reports (engine-independent): the before/after figures and the verdict
both registration paths give (the core's ITK path, :mod:`.itk_images`, and the Slicer module's array path,
:mod:`.voxel_arrays`); each path only hands over its arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

# Similarity is computed on every other voxel along each axis: an eighth of the work, the same figure to three decimals.
SIMILARITY_STRIDE = 2


def normalized_mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, bins: int = 64) -> float:
    """Studholme's NMI, (H(a) + H(b)) / H(a, b): 1 for independent images, 2 for identical ones.

    Intensities are clipped to their 0.5-99.5 percentiles inside ``mask`` so that a
    few outliers do not squeeze the histogram.
    """
    if mask is None:
        mask = np.ones(a.shape, dtype=bool)
    x, y = np.asarray(a)[mask].astype(float), np.asarray(b)[mask].astype(float)
    if x.size == 0:
        raise ValueError("no voxel to compare")

    def scaled(v: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(v, [0.5, 99.5])
        if hi <= lo:
            return np.zeros(v.shape, dtype=np.intp)
        return np.clip(((v - lo) / (hi - lo) * (bins - 1)).round(), 0, bins - 1).astype(np.intp)

    joint = np.bincount(scaled(x) * bins + scaled(y), minlength=bins * bins).reshape(bins, bins).astype(float)
    joint /= joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_joint = entropy(joint)
    return (entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0))) / h_joint if h_joint > 0 else 2.0


def foreground_region(reference: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Where similarity is measured: the reference mask when there is one, else the reference's foreground
    (above 5 % of its 1-99 percentile range)."""
    if mask is not None:
        return np.asarray(mask).astype(bool)
    lo, hi = np.percentile(reference, [1, 99])
    return reference > lo + 0.05 * (hi - lo)


def before_after(reference: np.ndarray, before: np.ndarray, after: np.ndarray,
                 mask: np.ndarray | None) -> tuple[float, float, str]:
    """NMI of the reference with the moving image before (header alignment) and after registration, and the
    region's name. Arrays on one grid (the reference's, every :data:`SIMILARITY_STRIDE`-th voxel)."""
    region = foreground_region(reference, mask)
    return (
        normalized_mutual_information(reference, before, region),
        normalized_mutual_information(reference, after, region),
        "reference mask" if mask is not None else "reference foreground",
    )


def start_displacement_mm(matrix: np.ndarray | None, reference: Any) -> float | None:
    """How far the result moves any point of the reference's field of view from the start
    (scanner geometry), in mm: the largest displacement at the box's corners (for a linear
    map the largest anywhere in the box). None for a deformable result. ``reference``: an ITK
    image or anything with its getters (voxels.VoxelVolume)."""
    if matrix is None:
        return None
    size = np.array(reference.GetLargestPossibleRegion().GetSize()) - 1
    corners = np.array([[i, j, k] for i in (0, size[0]) for j in (0, size[1]) for k in (0, size[2])], dtype=float)
    direction = np.array(reference.GetDirection()).reshape(3, 3) * np.array(reference.GetSpacing())
    points = corners @ direction.T + np.array(reference.GetOrigin())
    moved = points @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.linalg.norm(moved - points, axis=1).max())


def similarity_verdict(before: float, after: float, region: str, matrix: np.ndarray | None, reference: Any) -> dict[str, Any]:
    """The report's similarity fields: NMI before (header alignment) and after, and whether the registration
    improved it. A drop means a wrong local optimum, except when the result barely moved the start (identical
    or already aligned volumes): then interpolation alone lowers NMI (identical images: from its maximum, 2)."""
    displacement = start_displacement_mm(matrix, reference)
    already_aligned = displacement is not None and displacement <= 0.1 * min(reference.GetSpacing())
    return {
        "metric": "normalized_mutual_information",
        "metric_region": region,
        "metric_before": round(before, 5),
        "metric_after": round(after, 5),
        "metric_improved": bool(after >= before - 1e-4 or already_aligned),
        "start_displacement_mm": None if displacement is None else round(displacement, 4),
        "already_aligned": bool(already_aligned),
    }
