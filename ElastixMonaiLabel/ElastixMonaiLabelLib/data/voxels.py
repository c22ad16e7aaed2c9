"""A volume as Slicer hands it over: a voxel array (k, j, i) and its IJK-to-RAS matrix, numpy only.

Slicer's Python has numpy and scipy but no itk, so the module moves volumes in this form
(``slicer.util.arrayFromVolume`` and the node's IJK-to-RAS). :class:`VoxelVolume` also answers
the few ITK image getters (spacing, origin, direction in LPS, size) that the core's grid and
resolution helpers read, so images.grid_mismatch and resolution.smoothing_sigmas take it as
they take an ITK image: one implementation of those rules, not two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .geometry import decompose_ijk_to_ras, ijk_to_lps
from .nifti import read_nifti, write_nifti


class _Region:
    def __init__(self, size: tuple[int, ...]) -> None:
        self._size = size

    def GetSize(self) -> tuple[int, ...]:  # noqa: N802 - ITK's name
        return self._size


@dataclass
class VoxelVolume:
    """Voxels in (k, j, i) order and the 4x4 IJK-to-RAS matrix (world coordinates)."""

    array: np.ndarray
    ijk_to_ras: np.ndarray

    def __post_init__(self) -> None:
        self.ijk_to_ras = np.asarray(self.ijk_to_ras, dtype=float)
        if np.ndim(self.array) != 3:
            raise ValueError(f"a 3D voxel array is needed, got shape {np.shape(self.array)}")

    # ITK image getters (LPS), for the core's helpers written against ITK images.
    def GetSpacing(self) -> tuple[float, ...]:  # noqa: N802
        return tuple(decompose_ijk_to_ras(self.ijk_to_ras)[0])

    def GetOrigin(self) -> tuple[float, ...]:  # noqa: N802
        return tuple(decompose_ijk_to_ras(self.ijk_to_ras)[2])

    def GetDirection(self) -> np.ndarray:  # noqa: N802
        return decompose_ijk_to_ras(self.ijk_to_ras)[1]

    def GetLargestPossibleRegion(self) -> _Region:  # noqa: N802
        return _Region(tuple(int(n) for n in reversed(np.shape(self.array))))

    @property
    def ijk_to_lps(self) -> np.ndarray:
        spacing, direction, origin = decompose_ijk_to_ras(self.ijk_to_ras)
        return ijk_to_lps(spacing, direction, origin)

    def write(self, path: str | Path, dtype=np.float32) -> Path:
        return write_nifti(path, np.asarray(self.array, dtype=dtype), self.ijk_to_ras)

    @classmethod
    def read(cls, path: str | Path) -> VoxelVolume:
        image = read_nifti(path)
        if image.array.ndim != 3:
            from ..errors import InputError

            raise InputError(path, f"has {image.array.shape[0]} channels; a single 3D volume is needed")
        return cls(image.array, image.ijk_to_ras)

    def strided(self, step: int) -> VoxelVolume:
        """Every ``step``-th voxel along each axis, on the matching coarser grid."""
        matrix = self.ijk_to_ras.copy()
        matrix[:3, :3] *= step
        return VoxelVolume(self.array[::step, ::step, ::step], matrix)


def _kji(matrix: np.ndarray) -> np.ndarray:
    # The same affine map written for arrays indexed (k, j, i) instead of (i, j, k).
    swap = np.eye(4)[[2, 1, 0, 3]]
    return swap @ matrix @ swap


def resample(moving: VoxelVolume, reference: VoxelVolume, matrix_lps: np.ndarray | None = None, order: int = 1,
             default: float = 0.0) -> np.ndarray:
    """``moving`` on ``reference``'s grid through ``matrix_lps`` (reference LPS points -> moving LPS points,
    ITK's resampling convention; identity when None). ``order``: 0 nearest, 1 linear, 3 cubic spline.

    :func:`.images.resample` for voxel arrays, with scipy: Slicer's Python has no itk (see :mod:`.images`)."""
    from scipy import ndimage

    transform = np.eye(4) if matrix_lps is None else np.asarray(matrix_lps, dtype=float)
    index_map = _kji(np.linalg.inv(moving.ijk_to_lps) @ transform @ reference.ijk_to_lps)
    return ndimage.affine_transform(
        np.asarray(moving.array, dtype=np.float32), index_map[:3, :3], offset=index_map[:3, 3],
        output_shape=np.shape(reference.array), order=order, mode="constant", cval=default,
    )


def smoothed(volume: VoxelVolume, sigmas_mm: np.ndarray) -> VoxelVolume:
    """``volume`` smoothed by Gaussian sigmas (mm, per index axis i, j, k), as resolution.smooth_to_match does."""
    if not np.any(sigmas_mm):
        return volume
    from scipy import ndimage

    sigmas_voxels = np.asarray(sigmas_mm) / np.array(volume.GetSpacing())
    array = ndimage.gaussian_filter(np.asarray(volume.array, dtype=np.float32), sigma=sigmas_voxels[::-1], mode="nearest")
    return VoxelVolume(array, volume.ijk_to_ras)
