"""Reading, checking and resampling images: one internal type, an ITK image in physical LPS space.

Images are read with ITK, which reads every format a user may hand over (NIfTI, NRRD,
MetaImage...); NIfTI files are also looked at with the core's NIfTI codec (:mod:`.nifti`),
which sees what ITK's reader hides (NaN voxels, a truncated file). Checks happen before any
work starts so that bad input fails fast with a message that names the file and the problem.

:func:`resample` is the core's resampler for ITK images; :func:`.voxels.resample` is the same
operation on Slicer's voxel arrays with scipy, for the Slicer module, whose Python has no itk.
Those two are the only ones: everything else resamples through one of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime.files import atomic_path
from .nifti import non_finite_problem, read_header, read_voxels

INTERPOLATIONS = ("nearest", "linear", "bspline")

# Relative tolerance when two grids must match (header round-off in NIfTI/NRRD).
GRID_TOLERANCE = 1e-4


def _itk():
    import itk  # imported lazily: it takes seconds and not every caller needs it

    return itk


def _read_header(path: Path) -> Any:
    itk = _itk()
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image file")
    image_io = itk.ImageIOFactory.CreateImageIO(str(path), itk.CommonEnums.IOFileMode_ReadMode)
    if image_io is None:
        raise InputError(path, "unreadable: not an image format ITK can read")
    image_io.SetFileName(str(path))
    try:
        image_io.ReadImageInformation()
    except RuntimeError as error:
        raise InputError(path, f"unreadable image header ({_first_line(error)})") from error
    return image_io


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # ITK exceptions start with the source location; the description is last.
    return lines[-1] if lines else type(error).__name__


def check_volume_header(path: str | Path) -> tuple[int, ...]:
    """Return the 3D size of the image in ``path`` or raise a clear InputError."""
    path = Path(path)
    image_io = _read_header(path)
    ndim = image_io.GetNumberOfDimensions()
    size = tuple(int(image_io.GetDimensions(i)) for i in range(ndim))
    if image_io.GetNumberOfComponents() != 1:
        raise InputError(
            path, f"has {image_io.GetNumberOfComponents()} components per voxel (colour or vector image); a scalar volume is needed"
        )
    if ndim > 3 and any(s > 1 for s in size[3:]):
        raise InputError(path, f"is a 4D image of size {size}; a single 3D volume is needed (split the volumes first)")
    size3 = (size + (1, 1, 1))[:3]
    if ndim < 3 or min(size3) < 2:
        raise InputError(path, f"is a 2D image (size {size}); a 3D volume is needed")
    return size3


def read_volume(path: str | Path, *, pixel_type: str = "float") -> Any:
    """Read a 3D scalar volume as an ITK image (float by default), checked.

    Raises InputError for missing/unreadable files, 2D, 4D, vector images and
    NaN or infinite voxels.
    """
    itk = _itk()
    path = Path(path)
    check_volume_header(path)
    itk_type = {"float": itk.F, "uchar": itk.UC, "short": itk.SS, "ushort": itk.US, "int": itk.SI}[pixel_type]
    try:
        image = itk.imread(str(path), itk_type)
    except RuntimeError as error:
        raise InputError(path, f"unreadable ({_first_line(error)})") from error
    if image.GetImageDimension() != 3:
        raise InputError(path, f"has {image.GetImageDimension()} dimensions; a 3D volume is needed")
    check_finite(image, path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_voxels(path)
    return image


def _check_nifti_voxels(path: Path) -> None:
    # ITK's NIfTI reader turns NaN voxels into 0 without a word, and reads a truncated
    # .nii.gz without complaint: look at the stored values themselves (the NIfTI codec).
    problem = non_finite_problem(read_voxels(read_header(path)))
    if problem:
        raise InputError(path, f"{problem}; fix or mask them before registration")


def check_finite(image: Any, source: str | Path) -> None:
    """Raise InputError if the image holds NaN or infinite voxels."""
    problem = non_finite_problem(_itk().array_view_from_image(image))
    if problem:
        raise InputError(source, f"{problem}; fix or mask them before registration")


def read_mask(path: str | Path, reference: Any, reference_name: str | Path) -> Any:
    """Read a binary mask (any non-zero voxel is inside) that must lie on ``reference``'s grid."""
    itk = _itk()
    path = Path(path)
    mask = read_volume(path)
    problem = grid_mismatch(mask, reference)
    if problem:
        raise InputError(path, f"mask is on a different grid than {reference_name}: {problem}")
    array = (itk.array_view_from_image(mask) != 0).astype(np.uint8)
    if not array.any():
        raise InputError(path, "mask is empty (no non-zero voxel)")
    binary = itk.image_from_array(array)
    binary.CopyInformation(mask)
    return binary


def grid_mismatch(a: Any, b: Any, tolerance: float = GRID_TOLERANCE) -> str | None:
    """Describe how the grids of two images differ, or return None when they match."""
    size_a, size_b = tuple(a.GetLargestPossibleRegion().GetSize()), tuple(b.GetLargestPossibleRegion().GetSize())
    if size_a != size_b:
        return f"size {size_a} vs {size_b}"
    spacing_a, spacing_b = np.array(a.GetSpacing()), np.array(b.GetSpacing())
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=0):
        return f"spacing {tuple(spacing_a.round(6))} vs {tuple(spacing_b.round(6))}"
    scale = float(spacing_a.max())
    origin_a, origin_b = np.array(a.GetOrigin()), np.array(b.GetOrigin())
    if not np.allclose(origin_a, origin_b, atol=tolerance * scale * 10):
        return f"origin {tuple(origin_a.round(4))} vs {tuple(origin_b.round(4))}"
    direction_a = np.array(a.GetDirection()).reshape(3, 3)
    direction_b = np.array(b.GetDirection()).reshape(3, 3)
    if not np.allclose(direction_a, direction_b, atol=tolerance):
        return "direction cosines differ"
    return None


def write_volume(image: Any, path: str | Path, *, compress: bool = True) -> Path:
    """Write an ITK image atomically (temporary name, then rename)."""
    itk = _itk()
    path = Path(path)
    with atomic_path(path) as tmp:
        itk.imwrite(image, str(tmp), compression=compress)
    return path


def image_from_array(array: np.ndarray, like: Any) -> Any:
    """Make an ITK image of ``array`` (z, y, x order) with the geometry of ``like``."""
    itk = _itk()
    image = itk.image_from_array(np.ascontiguousarray(array))
    image.CopyInformation(like)
    return image


def resample(image: Any, transform: Any, reference: Any, interpolation: str = "linear", default_value: float = 0) -> Any:
    """Resample ``image`` onto ``reference``'s grid through ``transform`` (reference -> image points; None: the
    identity, i.e. the same scanner space). ``interpolation``: nearest, linear or bspline (cubic)."""
    itk = _itk()
    if interpolation not in INTERPOLATIONS:
        raise InputError("interpolation", f"unknown interpolation {interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
    image_type = type(image)
    if interpolation == "bspline":
        pixel_type = itk.template(image_type)[1][0]
        interpolator = itk.BSplineInterpolateImageFunction[image_type, itk.D, pixel_type].New()
    else:
        kind = itk.NearestNeighborInterpolateImageFunction if interpolation == "nearest" else itk.LinearInterpolateImageFunction
        interpolator = kind[image_type, itk.D].New()
    options = {"transform": transform} if transform is not None else {}
    return itk.resample_image_filter(image, interpolator=interpolator, use_reference_image=True, reference_image=reference,
                                     default_pixel_value=default_value, **options)
