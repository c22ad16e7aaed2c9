"""Grids for the Slicer-side tests: an oblique, anisotropic IJK-to-RAS, optionally with a mirrored axis."""

import numpy as np


def oblique_matrix(left_handed: bool = False) -> np.ndarray:
    """IJK-to-RAS of an oblique, anisotropic grid (optionally with a mirrored axis)."""
    angles = np.radians([20.0, -35.0, 50.0])
    cx, cy, cz, sx, sy, sz = *np.cos(angles), *np.sin(angles)
    rotation = (np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
                @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]]))
    if left_handed:
        rotation[:, 0] *= -1
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([1.2, 0.9, 3.0])
    matrix[:3, 3] = [10.0, -20.0, 30.0]
    return matrix
