"""The core's one NIfTI codec, numpy alone: read (header only, or whole) and write NIfTI files.

Why numpy and not nibabel or itk: 3D Slicer ships numpy and scipy but neither itk nor nibabel,
and the Slicer module must work without installing anything (its self-test runs that way in
Slicer's CI). So the files the module exchanges (inputs for the elastix executables, the 4D
case it uploads, the label maps it receives and submits) are read and written here, and the
rest of the core uses the same code for NIfTI: the multimodal case contract
(:mod:`.multimodal`), the checks :mod:`.images` adds to ITK's reader (NaN voxels, truncated
files), and the server's checks of what it stores. One reader, one set of rules and messages.

Why :mod:`.images` still reads images with itk: the core's internal image type is an ITK image
(what elastix takes), and ITK reads every format a user may hand over (NRRD, MetaImage, NIfTI,
MGH...); this module reads NIfTI, the format the project's own files use.

What is read and written: single-file NIfTI-1 and NIfTI-2 (read; NIfTI-1 written), plain or
gzip-compressed (told apart by content, not by name), scalar integer or float voxels, a 3D
volume or a 4D channels-last stack (also stored as (x, y, z, 1, c)), the scanner-space sform
and qform (both written; sform preferred on reading, as nibabel and ITK do). The header alone
is read without decompressing the voxels (:func:`read_header`), for channel names and size
checks before any voxel is loaded.

Arrays are in Slicer's order, (k, j, i) (and (c, k, j, i) for a 4D stack), matrices are
Slicer's IJK-to-RAS, which is also NIfTI's convention, so nothing is transposed or flipped.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..runtime.files import atomic_path

HEADER_SIZE = 348
DATA_OFFSET = 352  # header + the 4-byte "no extension" flag
# NIfTI datatype codes <-> numpy dtypes (little-endian when written).
DATATYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}
CODES = {np.dtype(kind).str[1:]: code for code, kind in DATATYPES.items()}
# Voxel types NIfTI has but a volume for registration or segmentation cannot use.
UNUSABLE_DATATYPES = {1: "binary", 32: "complex64", 128: "RGB24", 1536: "float128", 1792: "complex128",
                      2048: "complex256", 2304: "RGBA32"}
XFORM_SCANNER = 1
UNITS_MM = 2


@dataclass(frozen=True)
class _Layout:
    """Where NIfTI-1 and NIfTI-2 keep the fields read here: (byte offset, numpy kind)."""

    size: int
    data_offset: int
    dim: tuple[int, str]
    datatype: tuple[int, str]
    pixdim: tuple[int, str]
    vox_offset: tuple[int, str]
    scaling: tuple[int, str]
    descrip: int
    xform_codes: tuple[int, str]
    quatern: tuple[int, str]
    qoffset: tuple[int, str]
    srow: tuple[int, str]


_LAYOUTS = {
    1: _Layout(348, 352, (40, "i2"), (70, "i2"), (76, "f4"), (108, "f4"), (112, "f4"), 148, (252, "i2"), (256, "f4"),
               (268, "f4"), (280, "f4")),
    2: _Layout(540, 544, (16, "i8"), (12, "i2"), (104, "f8"), (168, "i8"), (176, "f8"), 240, (344, "i4"), (352, "f8"),
               (376, "f8"), (400, "f8")),
}


@dataclass(frozen=True)
class NiftiHeader:
    """What a NIfTI header says, read without the voxels.

    ``shape`` is the stored one, (x, y, z[, t, c...]) as the header's ``dim`` lists it (nibabel's
    ``shape``); :attr:`volume_shape` is the project's reading of it (see :func:`volume_shape`).
    ``dtype`` is None for voxel types the core does not read (colour, complex...).
    """

    path: Path
    version: int
    shape: tuple[int, ...]
    datatype: int
    dtype: np.dtype | None
    ijk_to_ras: np.ndarray
    descrip: str
    data_offset: int
    slope: float
    intercept: float

    @property
    def volume_shape(self) -> tuple[int, ...]:
        return volume_shape(self.shape)

    @property
    def channels(self) -> int:
        """Channels of the stack (1 for a 3D volume)."""
        shape = self.volume_shape
        return shape[3] if len(shape) == 4 else 1


@dataclass
class NiftiImage:
    """Voxels in Slicer's order ((k, j, i), or (c, k, j, i) for a 4D stack), IJK-to-RAS, the descrip text."""

    array: np.ndarray
    ijk_to_ras: np.ndarray
    descrip: str = ""


def volume_shape(stored: tuple[int, ...]) -> tuple[int, ...]:
    """(x, y, z) or (x, y, z, c) from a header's dims: trailing 1s dropped, NIfTI's vector layout (x, y, z, 1, c)
    read as the channels-last stack it is. Anything else keeps its length (and is refused by the callers)."""
    shape = [max(int(d), 1) for d in stored]
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    if len(shape) == 5 and shape[3] == 1:
        shape = [*shape[:3], shape[4]]
    return tuple(shape)


def non_finite_problem(values: np.ndarray) -> str | None:
    """'contains N NaN or infinite voxels' for float voxels that are not all finite, else None."""
    if not np.issubdtype(np.asarray(values).dtype, np.floating):
        return None
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    return f"contains {bad} NaN or infinite voxels" if bad else None


# What a cut or corrupted gzip stream raises (BadGzipFile is an OSError: caught before other OSErrors).
_DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile)


def _damaged(path: Path, detail: object) -> InputError:
    return InputError(path, f"unreadable: truncated or damaged NIfTI file ({detail})")


def _quaternion(rotation: np.ndarray) -> tuple[np.ndarray, float]:
    """(b, c, d) and qfac of a 3x3 direction matrix (nifti1_io's mat44_to_quatern, for orthonormal input)."""
    r = np.array(rotation, dtype=float)
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r[:, 2] = -r[:, 2]
    a = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if a > 0.5:
        a = 0.5 * np.sqrt(a)
        b, c, d = 0.25 * (r[2, 1] - r[1, 2]) / a, 0.25 * (r[0, 2] - r[2, 0]) / a, 0.25 * (r[1, 0] - r[0, 1]) / a
    else:
        xd, yd, zd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2]), 1.0 + r[1, 1] - (r[0, 0] + r[2, 2]), 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * np.sqrt(xd)
            c, d, a = 0.25 * (r[0, 1] + r[1, 0]) / b, 0.25 * (r[0, 2] + r[2, 0]) / b, 0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * np.sqrt(yd)
            b, d, a = 0.25 * (r[0, 1] + r[1, 0]) / c, 0.25 * (r[1, 2] + r[2, 1]) / c, 0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * np.sqrt(zd)
            b, c, a = 0.25 * (r[0, 2] + r[2, 0]) / d, 0.25 * (r[1, 2] + r[2, 1]) / d, 0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return np.array([b, c, d]), qfac


def _quaternion_matrix(bcd: np.ndarray, qfac: float) -> np.ndarray:
    b, c, d = (float(v) for v in bcd)
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    rotation = np.array([
        [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
        [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
        [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ])
    rotation[:, 2] *= -1.0 if qfac < 0 else 1.0
    return rotation


def _header(shape_ijk: tuple[int, ...], dtype: np.dtype, ijk_to_ras: np.ndarray, descrip: str) -> bytes:
    matrix = np.asarray(ijk_to_ras, dtype=float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"IJK-to-RAS matrix has a zero column: {matrix.tolist()}")
    bcd, qfac = _quaternion(matrix[:3, :3] / spacing)
    header = np.zeros(HEADER_SIZE, dtype=np.uint8)
    view = memoryview(header)

    def put(offset: int, kind: str, values) -> None:
        array = np.asarray(values, dtype=kind).ravel()
        view[offset:offset + array.nbytes] = array.tobytes()

    dims = [len(shape_ijk), *shape_ijk] + [1] * (7 - len(shape_ijk))
    put(0, "<i4", HEADER_SIZE)
    put(38, "u1", ord("r"))
    put(40, "<i2", dims)
    put(70, "<i2", CODES[dtype.str[1:]])
    put(72, "<i2", dtype.itemsize * 8)
    put(76, "<f4", [qfac, *spacing, 1, 1, 1, 1])
    put(108, "<f4", DATA_OFFSET)
    put(112, "<f4", [1.0, 0.0])  # scl_slope, scl_inter: stored values are the values
    put(123, "u1", UNITS_MM)
    text = descrip.encode("utf-8")[:79]
    view[148:148 + len(text)] = text
    put(252, "<i2", [XFORM_SCANNER, XFORM_SCANNER])
    put(256, "<f4", [*bcd, *matrix[:3, 3]])
    put(280, "<f4", matrix[:3, :].ravel())
    view[344:348] = b"n+1\0"
    return header.tobytes()


def write_nifti(path: str | Path, array: np.ndarray, ijk_to_ras: np.ndarray, descrip: str = "",
                compress: bool | None = None) -> Path:
    """Write (k, j, i) or (c, k, j, i) voxels atomically; gzip when the name ends in .gz (or ``compress``)."""
    path = Path(path)
    data = np.ascontiguousarray(array)
    if data.ndim not in (3, 4):
        raise ValueError(f"a 3D volume or a 4D stack is needed, got shape {data.shape}")
    if data.dtype.str[1:] not in CODES:
        data = data.astype(np.float32)
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    compress = path.name.endswith(".gz") if compress is None else compress
    header = _header(tuple(reversed(data.shape)), data.dtype, ijk_to_ras, descrip)
    with atomic_path(path) as tmp:
        # Level 1: several times faster than the default for a small loss of size; these files are transient.
        with (gzip.open(tmp, "wb", compresslevel=1) if compress else open(tmp, "wb")) as stream:
            stream.write(header + b"\0\0\0\0")
            stream.write(memoryview(data).cast("B"))
    return path


def _open(path: Path):
    """The file's bytes as a stream, gunzipped when they are gzip (by content: a client's name may lie)."""
    stream = open(path, "rb")
    if stream.read(2) == b"\x1f\x8b":
        stream.close()
        return gzip.open(path, "rb")
    stream.seek(0)
    return stream


def _read_start(path: Path) -> bytes:
    """The first bytes of the (decompressed) file: enough for either header."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image file")
    try:
        with _open(path) as stream:
            return stream.read(_LAYOUTS[2].data_offset)
    except _DAMAGED as error:
        raise _damaged(path, error) from error
    except OSError as error:
        raise InputError(path, f"unreadable ({error})") from error


def _version(start: bytes) -> tuple[int, str] | None:
    """(NIfTI version, byte order) of a single-file NIfTI header, or None."""
    for version, layout in _LAYOUTS.items():
        for order in "<>":
            if len(start) >= layout.size and np.frombuffer(start, order + "i4", 1, 0)[0] == layout.size:
                magic = start[344:348] if version == 1 else start[4:8]
                if magic == (b"n+1\0" if version == 1 else b"n+2\0"):
                    return version, order
    return None


def _affine(get, layout: _Layout, pixdim: np.ndarray) -> np.ndarray:
    """IJK-to-RAS from the sform when set, else the qform, else the voxel sizes (NIfTI's method 1)."""
    qform_code, sform_code = (int(v) for v in get(*layout.xform_codes, 2))
    matrix = np.eye(4)
    if sform_code > 0:
        matrix[:3, :] = get(*layout.srow, 12).astype(float).reshape(3, 4)
    elif qform_code > 0:
        matrix[:3, :3] = _quaternion_matrix(get(*layout.quatern, 3), pixdim[0]) * pixdim[1:4]
        matrix[:3, 3] = get(*layout.qoffset, 3).astype(float)
    else:
        matrix[:3, :3] = np.diag(pixdim[1:4])
    return matrix


def read_header(path: str | Path) -> NiftiHeader:
    """The header of a NIfTI file, without reading (or decompressing) its voxels; errors name the file."""
    path = Path(path)
    start = _read_start(path)
    if len(start) < HEADER_SIZE:
        raise InputError(path, "too short to be a NIfTI file")
    found = _version(start)
    if found is None:
        raise InputError(path, "not a single-file NIfTI-1 or NIfTI-2 image")
    version, order = found
    layout = _LAYOUTS[version]

    def get(offset: int, kind: str, count: int = 1) -> np.ndarray:
        return np.frombuffer(start, order + kind, count, offset)

    dims = [int(v) for v in get(*layout.dim, 8)]
    if not 1 <= dims[0] <= 7:
        raise InputError(path, f"its header gives {dims[0]} dimensions (NIfTI allows 1 to 7)")
    code = int(get(*layout.datatype)[0])
    slope, intercept = (float(v) for v in get(*layout.scaling, 2))
    if not np.isfinite(slope) or slope == 0.0:  # NIfTI: a zero (or unset) slope means "not scaled"
        slope, intercept = 1.0, 0.0
    return NiftiHeader(
        path=path, version=version, shape=tuple(dims[1:1 + dims[0]]), datatype=code,
        dtype=np.dtype(order + DATATYPES[code]) if code in DATATYPES else None,
        ijk_to_ras=_affine(get, layout, get(*layout.pixdim, 8).astype(float)),
        descrip=start[layout.descrip:layout.descrip + 80].split(b"\0")[0].decode("utf-8", errors="replace"),
        data_offset=max(int(get(*layout.vox_offset)[0]), layout.data_offset),
        slope=slope, intercept=intercept if np.isfinite(intercept) else 0.0,
    )


def read_voxels(header: NiftiHeader) -> np.ndarray:
    """The voxels a header describes, (k, j, i) or (c, k, j, i) in the stored type (float32 when the header
    scales them); InputError for an unusable voxel type, a shape that is no volume, a truncated file."""
    path = header.path
    if header.dtype is None:
        kind = UNUSABLE_DATATYPES.get(header.datatype, f"code {header.datatype}")
        raise InputError(path, f"voxel type {kind} is not a scalar number (colour, complex or structured data); "
                               "scalar integer or float voxels are needed")
    shape = header.volume_shape
    if len(shape) not in (3, 4) or min(shape[:3]) < 2:
        raise InputError(path, f"has size {shape}; a 3D volume or a 4D channels-last stack is needed")
    count = int(np.prod(shape))
    try:
        with _open(path) as stream:
            stream.seek(header.data_offset)
            raw = stream.read(count * header.dtype.itemsize)
    except _DAMAGED as error:
        raise _damaged(path, error) from error
    except OSError as error:
        raise InputError(path, f"unreadable ({error})") from error
    if len(raw) < count * header.dtype.itemsize:
        raise _damaged(path, "fewer voxels than its header says")
    array = np.frombuffer(raw, header.dtype, count).reshape(tuple(reversed(shape)))
    if header.slope != 1.0 or header.intercept != 0.0:
        return array.astype(np.float32) * header.slope + header.intercept
    return np.array(array, dtype=array.dtype.newbyteorder("="))


def read_nifti(path: str | Path) -> NiftiImage:
    """Read a 3D volume or 4D channels-last stack, checked (finite voxels); errors name the file and the problem."""
    header = read_header(path)
    array = read_voxels(header)
    problem = non_finite_problem(array)
    if problem:
        raise InputError(header.path, problem)
    return NiftiImage(array, header.ijk_to_ras, header.descrip)
