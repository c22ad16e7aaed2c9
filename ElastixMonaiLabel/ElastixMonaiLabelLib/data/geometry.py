"""Geometry at the Slicer boundary: the one place where LPS and RAS meet.

ITK and elastix work in physical LPS space. Slicer holds a volume as a voxel array
(k, j, i order, as ``slicer.util.arrayFromVolume`` returns it) plus a 4x4
IJK-to-RAS matrix, and linear transforms as 4x4 RAS matrices. The functions here
convert between the two exactly, oblique directions and anisotropic spacing included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# diag(-1, -1, 1, 1): flips x and y; its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
RAS_TO_LPS = LPS_TO_RAS


def ijk_to_lps(spacing, direction, origin) -> np.ndarray:
    """4x4 matrix mapping voxel indices (i, j, k) to physical LPS coordinates."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(np.asarray(spacing, dtype=float))
    matrix[:3, 3] = np.asarray(origin, dtype=float)
    return matrix


def image_ijk_to_lps(image: Any) -> np.ndarray:
    """IJK-to-LPS matrix of an ITK image."""
    return ijk_to_lps(
        tuple(image.GetSpacing()), np.array(image.GetDirection()).reshape(3, 3), tuple(image.GetOrigin())
    )


def image_ijk_to_ras(image: Any) -> np.ndarray:
    """IJK-to-RAS matrix of an ITK image, as Slicer's ``GetIJKToRASMatrix`` gives it."""
    return LPS_TO_RAS @ image_ijk_to_lps(image)


def decompose_ijk_to_ras(ijk_to_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split an IJK-to-RAS matrix into LPS (spacing, direction 3x3, origin) for ITK."""
    lps = RAS_TO_LPS @ np.asarray(ijk_to_ras, dtype=float)
    columns = lps[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"IJK-to-RAS matrix has a zero column: {ijk_to_ras.tolist()}")
    return spacing, columns / spacing, lps[:3, 3].copy()


def image_to_slicer(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """ITK image -> (voxel array in k, j, i order, IJK-to-RAS 4x4), for a Slicer volume node."""
    import itk

    return itk.array_from_image(image), image_ijk_to_ras(image)


def image_from_slicer(array: np.ndarray, ijk_to_ras: np.ndarray) -> Any:
    """(voxel array in k, j, i order, IJK-to-RAS 4x4) from a Slicer volume node -> ITK image."""
    import itk

    array = np.asarray(array)
    if array.ndim != 3:
        raise ValueError(f"a 3D voxel array is needed, got shape {array.shape}")
    spacing, direction, origin = decompose_ijk_to_ras(ijk_to_ras)
    image = itk.image_from_array(np.ascontiguousarray(array))
    image.SetSpacing(spacing.tolist())
    image.SetOrigin(origin.tolist())
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    return image


def grid_like(like: Any, spacing, extent_mm=None) -> Any:
    """An empty float ITK image with ``like``'s direction and physical corner, at ``spacing``.

    It covers ``extent_mm`` (default: ``like``'s own extent); the corner of the first voxel
    stays where ``like``'s is, so the two images cover the same box.
    """
    import math

    import itk

    spacing = np.array([float(s) for s in spacing])
    own_spacing = np.array(like.GetSpacing())
    if extent_mm is None:
        extent_mm = own_spacing * np.array(like.GetLargestPossibleRegion().GetSize())
    image = itk.Image[itk.F, 3].New()
    image.SetRegions([max(2, int(math.ceil(e / s - 1e-6))) for e, s in zip(extent_mm, spacing)])
    direction = np.array(like.GetDirection()).reshape(3, 3)
    corner = np.array(like.GetOrigin()) - direction @ (own_spacing / 2)
    image.SetOrigin((corner + direction @ (spacing / 2)).tolist())
    image.SetSpacing(spacing.tolist())
    image.SetDirection(like.GetDirection())
    image.Allocate()
    return image


def lps_to_ras_transform(matrix_lps: np.ndarray) -> np.ndarray:
    """A 4x4 transform acting on LPS points, rewritten to act on RAS points."""
    return LPS_TO_RAS @ np.asarray(matrix_lps, dtype=float) @ RAS_TO_LPS


def ras_to_lps_transform(matrix_ras: np.ndarray) -> np.ndarray:
    """A 4x4 transform acting on RAS points, rewritten to act on LPS points."""
    return RAS_TO_LPS @ np.asarray(matrix_ras, dtype=float) @ LPS_TO_RAS


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous matrix to an (N, 3) array of points."""
    points = np.asarray(points, dtype=float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def image_centre(image: Any) -> np.ndarray:
    """LPS point at the middle of the image's voxel grid."""
    middle = (np.array(image.GetLargestPossibleRegion().GetSize(), dtype=float) - 1) / 2
    return apply_matrix(image_ijk_to_lps(image), middle[None])[0]


def voxel_points(image: Any, mask: np.ndarray | None = None) -> np.ndarray:
    """Physical LPS coordinates (N, 3) of the voxels of ``image`` (where ``mask``, in k, j, i order)."""
    size = tuple(image.GetLargestPossibleRegion().GetSize())
    if mask is None:
        kji = np.indices(size[::-1]).reshape(3, -1).T
    else:
        kji = np.argwhere(mask)
    return apply_matrix(image_ijk_to_lps(image), kji[:, ::-1].astype(float))


def from_parent_under(registration_ras: np.ndarray, parent_to_world: np.ndarray | None = None) -> np.ndarray:
    """The "from parent" matrix of a registration transform placed between a volume and its own parent transform.

    ``registration_ras`` maps reference points to moving points in world RAS (the registration
    ran on world coordinates, the parent's effect included); ``parent_to_world`` is the linear
    parent transform the moving volume already had (None: none). The volume then goes under
    the registration transform, which goes under that parent, so the parent is kept and the
    volume lands aligned: W . R_to_parent = M^-1 . W, i.e. R_from_parent = W^-1 . M . W.
    """
    matrix = np.asarray(registration_ras, dtype=float)
    if parent_to_world is None:
        return matrix
    parent = np.asarray(parent_to_world, dtype=float)
    return np.linalg.inv(parent) @ matrix @ parent
