"""What part of a scan is the subject: the head (or brain) mask, skull-stripped or not, the box to work in.

Real scans come as whole heads with neck and a large field of view (conformed 256 mm
volumes), as skull-stripped brains on a zero background (BraTS, FreeSurfer's brainmask),
or as a few thick clinical slices. Atlas registration needs to know which: a whole-head
atlas registered onto a bare brain starts from the wrong centre of gravity and leaves
elastix sampling outside the image; a neck that the atlas lacks drags the start too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

# A brain without skull (brain, cerebellum and the CSF around them) holds 1.0-2.0 l in adults;
# a head, even with a few thick slices, holds well over 2.5 l.
SKULL_STRIPPED_MAX_LITRES = 2.4
# Skull-stripping leaves the background exactly at one value (0); a scanner leaves noise.
SKULL_STRIPPED_MIN_BACKGROUND = 0.3
# Whole heads are cut this far below the top of the head (mm): the brain stem stays, the neck goes.
HEAD_DEPTH_MM = 190.0
MARGIN_MM = 6.0
# Foreground: above this fraction of the robust maximum (the 99th percentile inside the object).
FOREGROUND_FRACTION = 0.1
# Masks are computed on a coarse copy (at least this spacing): fast at 1 mm, same box.
COARSE_MM = 2.0


@dataclass(frozen=True)
class Foreground:
    """The subject inside a scan: whether it is skull-stripped and the index box to work in."""

    skull_stripped: bool
    volume_ml: float
    box: tuple[slice, slice, slice]  # (k, j, i) slices of the image array
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> dict[str, Any]:
        return {
            "skull_stripped": self.skull_stripped,
            "foreground_ml": round(self.volume_ml, 1),
            "box_kji": [[s.start, s.stop] for s in self.box],
            "notes": list(self.notes),
        }


def _strides(spacing_kji: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...]:
    # Coarse enough to be quick, fine enough to keep at least 16 voxels along every axis.
    return tuple(max(1, min(int(COARSE_MM // s), n // 16)) for s, n in zip(spacing_kji, shape))


def object_mask(array: np.ndarray, threshold: float) -> np.ndarray:
    """The largest connected region above ``threshold``, holes filled."""
    mask = ndimage.binary_closing(array > threshold, iterations=2)
    labelled, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labelled == int(np.argmax(sizes)))


def superior_axis(image: Any) -> tuple[int, float]:
    """(array axis closest to superior, +1 if the index grows towards superior else -1)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)  # columns: index axes i, j, k in LPS
    index_axis = int(np.argmax(np.abs(direction[2, :])))
    return 2 - index_axis, float(np.sign(direction[2, index_axis]))


def find_foreground(image: Any, skull_stripped: bool | None = None) -> Foreground:
    """Inspect an ITK image: skull-stripped or whole head (``skull_stripped`` forces it), and its box."""
    import itk

    array = itk.array_view_from_image(image)
    spacing = np.array(image.GetSpacing())[::-1]
    strides = _strides(spacing, array.shape)
    coarse = np.asarray(array[:: strides[0], :: strides[1], :: strides[2]], dtype=np.float32)
    coarse_spacing = spacing * np.array(strides)
    voxel_ml = float(np.prod(coarse_spacing)) / 1000.0
    lowest = float(coarse.min())
    above = coarse > lowest
    if not above.any():
        raise ValueError("the image is constant: no subject in it")
    robust_max = float(np.percentile(coarse[above], 99))
    mask = object_mask(coarse, lowest + FOREGROUND_FRACTION * (robust_max - lowest))
    volume_ml = float(mask.sum()) * voxel_ml
    background_at_minimum = float(np.mean(coarse[~mask] <= lowest)) if (~mask).any() else 0.0
    notes = []
    if skull_stripped is None:
        nonzero_ml = float(object_mask(coarse, lowest).sum()) * voxel_ml
        skull_stripped = nonzero_ml < SKULL_STRIPPED_MAX_LITRES * 1000 and background_at_minimum > SKULL_STRIPPED_MIN_BACKGROUND
        notes.append(f"{'skull-stripped' if skull_stripped else 'whole head'} (detected: {nonzero_ml / 1000:.2f} l above the "
                     f"background, {100 * background_at_minimum:.0f}% of the background at its minimum)")
    else:
        notes.append(f"{'skull-stripped' if skull_stripped else 'whole head'} (as told)")
    if not skull_stripped:
        mask = _without_neck(mask, image, coarse_spacing, notes)
    box = _box(mask, coarse_spacing, strides, array.shape)
    return Foreground(bool(skull_stripped), volume_ml, box, tuple(notes))


def _without_neck(mask: np.ndarray, image: Any, spacing: np.ndarray, notes: list[str]) -> np.ndarray:
    axis, sign = superior_axis(image)
    occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    if not len(occupied):
        return mask
    depth = int(round(HEAD_DEPTH_MM / spacing[axis]))
    top = occupied[-1] if sign > 0 else occupied[0]
    keep = np.zeros(mask.shape[axis], dtype=bool)
    if sign > 0:
        keep[max(0, top - depth + 1) : top + 1] = True
    else:
        keep[top : top + depth] = True
    if keep[occupied].all():
        return mask
    notes.append(f"cut {int(np.sum(~keep[occupied]) * spacing[axis])} mm of neck below {HEAD_DEPTH_MM:g} mm from the top of the head")
    shape = [1, 1, 1]
    shape[axis] = -1
    return mask & keep.reshape(shape)


def _box(mask: np.ndarray, spacing: np.ndarray, strides: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """Bounding box of ``mask`` (coarse) with a margin, in full-resolution indices."""
    if not mask.any():
        return tuple(slice(0, n) for n in shape)  # type: ignore[return-value]
    slices = []
    for axis in range(3):
        occupied = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(np.ceil(MARGIN_MM / spacing[axis]))
        start = max(0, (occupied[0] - margin) * strides[axis])
        stop = min(shape[axis], (occupied[-1] + 1 + margin) * strides[axis])
        slices.append(slice(int(start), int(stop)))
    return tuple(slices)  # type: ignore[return-value]


def crop(image: Any, box: tuple[slice, slice, slice]) -> Any:
    """The part of an ITK image inside ``box`` ((k, j, i) slices), in the same physical place."""
    import itk

    from ..data.geometry import image_ijk_to_lps

    array = np.ascontiguousarray(itk.array_view_from_image(image)[box])
    cropped = itk.image_from_array(array)
    corner_ijk = np.array([box[2].start, box[1].start, box[0].start], dtype=float)
    cropped.SetSpacing(image.GetSpacing())
    cropped.SetDirection(image.GetDirection())
    cropped.SetOrigin((image_ijk_to_lps(image) @ np.append(corner_ijk, 1.0))[:3].tolist())
    return cropped


def paste(values: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, ...]) -> np.ndarray:
    """``values`` (the box's array) placed into a zero array of ``shape``."""
    full = np.zeros(shape, dtype=values.dtype)
    full[box] = values
    return full
