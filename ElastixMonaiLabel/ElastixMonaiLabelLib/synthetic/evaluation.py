"""Accuracy figures: registration error against known transforms, Dice against known labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.geometry import apply_matrix


def transform_points(transform: Any, points: np.ndarray) -> np.ndarray:
    """Map (N, 3) LPS points through a 4x4 matrix or any ITK transform."""
    if isinstance(transform, np.ndarray):
        return apply_matrix(transform, points)
    return np.array([transform.TransformPoint([float(c) for c in p]) for p in points])


def registration_error(estimated: Any, truth: Any, points: np.ndarray) -> dict[str, float]:
    """Distances (mm) between where the estimated and the true transform send each point.

    Both transforms map reference points to moving points, so the distance at a
    reference point is the target registration error there.
    """
    distances = np.linalg.norm(transform_points(estimated, points) - transform_points(truth, points), axis=1)
    return {
        "mean_mm": float(distances.mean()),
        "p95_mm": float(np.percentile(distances, 95)),
        "max_mm": float(distances.max()),
    }


def dice_per_label(predicted: np.ndarray, truth: np.ndarray, labels: list[int] | tuple[int, ...]) -> dict[int, float]:
    """Dice per label value; a label absent from both scores 1, absent from one scores 0."""
    scores = {}
    for label in labels:
        p, t = predicted == label, truth == label
        total = int(p.sum() + t.sum())
        scores[int(label)] = 1.0 if total == 0 else 2.0 * int(np.logical_and(p, t).sum()) / total
    return scores


def moved_by_header(image: Any, motion: np.ndarray) -> Any:
    """A copy of ``image`` moved rigidly by ``motion`` (4x4 LPS) through its header alone.

    Only direction and origin change, so the voxels are bit-identical and the motion is
    exact: the voxel that sat at point p now sits at ``motion`` applied to p.
    """
    import itk

    rotation = np.asarray(motion, dtype=float)[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9) or np.linalg.det(rotation) < 0:
        raise ValueError("a header motion must be a proper rotation plus a translation")
    moved = itk.image_duplicator(image)
    direction = rotation @ np.array(image.GetDirection()).reshape(3, 3)
    moved.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    moved.SetOrigin([float(c) for c in apply_matrix(motion, np.array(image.GetOrigin(), dtype=float)[None])[0]])
    return moved


def pose_consistency(original: np.ndarray, after_motion: np.ndarray, motion: np.ndarray, points: np.ndarray) -> dict[str, float]:
    """How far a registration's result depends on where the moving image started.

    ``original`` registers the reference onto the moving image, ``after_motion`` onto
    its copy moved by ``motion`` (see :func:`moved_by_header`). A pose-independent
    registration gives ``after_motion = motion @ original``; the figures are the
    distances (mm) at ``points`` between ``motion^-1 @ after_motion`` and ``original``.
    """
    return registration_error(np.linalg.inv(motion) @ after_motion, original, points)
