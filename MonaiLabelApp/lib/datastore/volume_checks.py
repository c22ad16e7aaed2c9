"""What the server stores must be usable: images and labels are checked before anything is kept.

An image (datastore upload, or a file sent to /infer) must be a readable NIfTI file
(.nii or .nii.gz, told apart by content, not by the client's file name), 3D or the
project's 4D channels-last stack, with a usable affine, finite voxels and a size within
the server's limits (read from the header before any voxel is loaded). A label must
be a readable NIfTI on exactly the image's grid, with whole values from the label table.
Every refusal is an HTTP 4xx whose message names the problem.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import HTTPException

from ElastixMonaiLabelLib.data.multimodal import channel_names
from ElastixMonaiLabelLib.data.nifti import NiftiHeader, read_header, read_nifti, read_voxels
from ElastixMonaiLabelLib.errors import InputError

from ..http.errors import TooLarge

# Affine entries (mm) within which a label's grid counts as the image's (header round-off).
GRID_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class VolumeLimits:
    """How large an image the server accepts: voxels over all channels (``--conf max_voxels``, read by
    lib.configs), and channels."""

    max_voxels: int
    max_channels: int = 16


@dataclass(frozen=True)
class CheckedImage:
    suffix: str  # ".nii.gz" or ".nii", from the content
    shape: tuple[int, ...]
    channels: list[str]


def refuse(status: int, source: str, problem: str) -> HTTPException:
    return HTTPException(status_code=status, detail=f"{source}: {problem}")


def nifti_suffix(path: str | Path, source: str) -> str:
    """'.nii.gz' or '.nii' from the file's first bytes; 422 for anything else (empty, text, PNG...)."""
    path = Path(path)
    with path.open("rb") as stream:
        head = stream.read(352)
    if not head:
        raise refuse(422, source, "the file is empty")
    suffix = ".nii"
    if head[:2] == b"\x1f\x8b":
        suffix = ".nii.gz"
        try:
            with gzip.open(path, "rb") as stream:
                head = stream.read(352)
        except (OSError, EOFError) as error:
            raise refuse(422, source, f"damaged gzip data ({error})") from error
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        raise refuse(422, source, "is a PNG picture; the server takes NIfTI volumes (.nii, .nii.gz)")
    nifti1 = len(head) >= 348 and head[344:348] == b"n+1\x00"
    nifti2 = head[4:8] == b"n+2\x00"
    if not (nifti1 or nifti2):
        raise refuse(422, source, "is not a NIfTI file (.nii or .nii.gz: no NIfTI header found)")
    return suffix


def _header(path: str | Path, source: str) -> NiftiHeader:
    """The file's header (the core's NIfTI codec, numpy: the same reader as the Slicer module and the command line)."""
    try:
        return read_header(path)
    except InputError as error:
        raise refuse(422, source, f"unreadable NIfTI header ({error.problem})") from error


def _read_values(path: str | Path, source: str) -> np.ndarray:
    """Every voxel as float32, checked: a scalar voxel type, not truncated, finite."""
    try:
        return np.asarray(read_nifti(path).array, dtype=np.float32)
    except InputError as error:  # voxel type, truncated or damaged data, NaN: the codec's message says which
        raise refuse(422, source, error.problem) from error


def _check_affine(header: NiftiHeader, source: str) -> None:
    affine = np.asarray(header.ijk_to_ras, dtype=float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise refuse(422, source, "its header's voxel-to-world matrix is not usable (zero, infinite or NaN spacing)")


def check_image_file(path: str | Path, limits: VolumeLimits, source: str = "image") -> CheckedImage:
    """A usable case file: NIfTI, 3D or 4D channels-last, within the limits, finite; else a 4xx."""
    suffix = nifti_suffix(path, source)
    header = _header(path, source)
    shape = header.shape
    spatial = shape[:3]
    if len(shape) == 5 and shape[3] == 1:
        shape = (*shape[:3], shape[4])  # NIfTI's (x, y, z, t=1, c) vector layout: the same stack
    if len(shape) < 3 or len(shape) > 4:
        raise refuse(422, source, f"has {len(shape)} dimensions {shape}; a 3D volume or a 4D channels-last stack is needed")
    if min(spatial) < 2:
        raise refuse(422, source, f"is a 2D image (size {shape}); a 3D volume is needed")
    channels = shape[3] if len(shape) == 4 else 1
    voxels = int(np.prod(np.array(shape, dtype=np.float64)))
    if channels > limits.max_channels:
        raise InputError(source, f"has {channels} channels; this server takes at most {limits.max_channels}")
    if voxels > limits.max_voxels:
        raise TooLarge(f"{source}: {'x'.join(map(str, shape))} = {voxels:,} voxels is more than this server's limit "
                       f"of {limits.max_voxels:,} (--conf max_voxels)")
    _check_affine(header, source)
    try:
        names = channel_names(header)
    except InputError as error:
        raise refuse(422, source, error.problem) from error
    _read_values(path, source)
    return CheckedImage(suffix, shape, names)


def check_label_file(path: str | Path, image_path: str | Path, values: Iterable[int], source: str = "label") -> str:
    """A usable label for the image: NIfTI on the image's grid, whole values in ``values`` (0 is background).

    Returns the label's suffix ('.nii.gz' or '.nii'); raises a 4xx otherwise.
    """
    allowed = {0, *values}
    suffix = nifti_suffix(path, source)
    reference = read_header(image_path)
    label = _header(path, source)
    shape = tuple(label.shape)
    if len(shape) > 3 and all(n == 1 for n in shape[3:]):
        shape = shape[:3]
    if shape != tuple(reference.shape[:3]):
        raise refuse(422, source, f"size {shape} differs from the image's {tuple(reference.shape[:3])}: "
                                  "a label must be on the image's grid")
    _check_affine(label, source)
    if not np.allclose(label.ijk_to_ras, reference.ijk_to_ras, atol=GRID_TOLERANCE_MM):
        raise refuse(422, source, "its voxel-to-world matrix differs from the image's: a label must be on the image's "
                                  f"grid (label {np.round(label.ijk_to_ras, 3).tolist()}, image "
                                  f"{np.round(reference.ijk_to_ras, 3).tolist()})")
    data = _read_values(path, source)
    if not np.array_equal(data, np.round(data)):
        raise refuse(422, source, "holds fractional values; a label map has whole values")
    found = set(np.unique(data).astype(np.int64).tolist())
    unknown = sorted(found - allowed)
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise refuse(422, source, f"holds values {shown}, not in the label table (0..{max(allowed)}; see /info label_names)")
    return suffix


def same_image(a: str | Path, b: str | Path) -> bool:
    """True when two NIfTI files hold the same volume: same bytes, or same header grid, names and voxels."""
    import filecmp

    if filecmp.cmp(a, b, shallow=False):
        return True
    try:
        first, second = read_header(a), read_header(b)
        return (first.shape == second.shape and np.allclose(first.ijk_to_ras, second.ijk_to_ras, atol=GRID_TOLERANCE_MM)
                and channel_names(first) == channel_names(second)
                and np.array_equal(read_voxels(first), read_voxels(second)))
    except Exception:  # an unreadable stored file is not the same image
        return False
