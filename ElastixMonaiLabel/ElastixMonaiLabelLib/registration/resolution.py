"""Resolution matching before registration: compare like with like.

A thick-slice FLAIR (say 1 x 1 x 5 mm) against a 1 mm T1: mutual information
between a sharp and a slice-blurred image does not peak exactly at the true
alignment, and the error lands along the slice axis (0.3-0.7 mm at 5 mm slices
here). Smoothing the sharper image along each physical axis to the other's
resolution removes that bias. Only the registration sees the smoothed copies;
the output is resampled from the original moving image.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
# Below this ratio of resolutions the images are treated as alike and left as they are.
MIN_RATIO = 1.25


def _direction(image: Any) -> np.ndarray:
    return np.array(image.GetDirection()).reshape(3, 3)


def resolution_along_axes(image: Any, other: Any) -> np.ndarray:
    """Resolution (mm) of ``other`` along each index axis of ``image``.

    Each axis of ``image`` takes the spacing of the axis of ``other`` paired with it,
    one to one, by direction (the pairing with the largest sum of |cosines|, so a
    45 degree tie cannot give two axes the same partner and lose the slice axis).
    Pairing axes (rather than mixing spacings by the angle between the grids) keeps
    the smoothing, and so the registration's result, the same when a header says the
    head sits a few degrees differently: with mixing, a 10 degree header change
    between two tilted 5.5 mm series changed the in-plane smoothing by up to 1 mm and
    the result by 0.05-0.1 mm (benchmarks/registration.py --real).
    """
    cosines = np.abs(_direction(image).T @ _direction(other))  # [axis of image, axis of other]
    best = max(itertools.permutations(range(3)), key=lambda pairing: sum(cosines[axis, pairing[axis]] for axis in range(3)))
    return np.array(other.GetSpacing(), dtype=float)[list(best)]


def smoothing_sigmas(image: Any, other: Any) -> np.ndarray:
    """Gaussian sigma (mm) per index axis of ``image`` that brings it to ``other``'s resolution."""
    own = np.array(image.GetSpacing())
    target = resolution_along_axes(image, other)
    coarser = target > own * MIN_RATIO
    return np.where(coarser, np.sqrt(np.maximum(target**2 - own**2, 0.0)) * FWHM_TO_SIGMA, 0.0)


def smooth_to_match(image: Any, other: Any) -> Any:
    """``image`` smoothed to ``other``'s resolution where ``other`` is coarser; else ``image`` itself."""
    import itk
    from scipy import ndimage

    sigmas_mm = smoothing_sigmas(image, other)
    if not sigmas_mm.any():
        return image
    sigmas_voxels = sigmas_mm / np.array(image.GetSpacing())
    smoothed = ndimage.gaussian_filter(itk.array_view_from_image(image), sigma=sigmas_voxels[::-1], mode="nearest")
    result = itk.image_from_array(smoothed.astype(np.float32, copy=False))
    result.CopyInformation(image)
    return result


def match_resolution(fixed: Any, moving: Any) -> tuple[Any, Any]:
    """(fixed, moving), each smoothed along the axes where the other is coarser."""
    return smooth_to_match(fixed, moving), smooth_to_match(moving, fixed)


def pyramid_schedule(image: Any, levels: int, base_mm: float) -> list[int]:
    """Shrink factors per level and index axis (elastix's pyramid schedule layout).

    Level k of ``levels`` aims at a resolution of 2^(levels-1-k) x ``base_mm``; an axis
    whose spacing is already that coarse is not shrunk, and the last level is the image
    itself. For isotropic images of one spacing this is elastix's default schedule;
    5.5 mm slices are no longer thinned to 22 mm at the coarsest level, which lost the
    capture of 25 degree misalignments on real thick-slice series.
    """
    spacing = np.array(image.GetSpacing(), dtype=float)
    return [
        1 if level == levels - 1 else max(1, int(np.floor(2.0 ** (levels - 1 - level) * base_mm / s + 1e-6)))
        for level in range(levels)
        for s in spacing
    ]


def is_coarser(image: Any, other: Any) -> bool:
    """True when ``image`` is clearly coarser than ``other`` (voxel volume, by MIN_RATIO per axis)."""
    return float(np.prod(image.GetSpacing())) > float(np.prod(other.GetSpacing())) * MIN_RATIO
