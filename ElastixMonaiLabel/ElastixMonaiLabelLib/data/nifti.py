"""NIfTI-1 files from numpy alone: what Slicer's own Python can read and write without itk or nibabel.

3D Slicer ships numpy and scipy but neither itk nor nibabel, and the Slicer module must work
without installing anything (its self-test runs that way in Slicer's CI). It still exchanges
NIfTI files: inputs for the elastix executables, the 4D case it uploads (the multimodal
contract of multimodal.py: channels-last, names in ``descrip``), the label map it receives and
the one it submits. This module reads and writes exactly that subset: one 3D or 4D
channels-last image, scanner-space sform and qform (both written, sform preferred on reading,
as nibabel does), plain or gzip-compressed.

Arrays are in Slicer's order, (k, j, i) (and (c, k, j, i) for a 4D stack), matrices are
Slicer's IJK-to-RAS, which is also NIfTI's convention, so nothing is transposed or flipped.
"""

from __future__ import annotations

import gzip
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
XFORM_SCANNER = 1
UNITS_MM = 2


@dataclass
class NiftiImage:
    """Voxels in Slicer's order ((k, j, i), or (c, k, j, i) for a 4D stack), IJK-to-RAS, the descrip text."""

    array: np.ndarray
    ijk_to_ras: np.ndarray
    descrip: str = ""


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


def read_nifti(path: str | Path) -> NiftiImage:
    """Read a 3D volume or 4D channels-last stack; errors name the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError as error:
        raise InputError(path, "file not found") from error
    except (OSError, EOFError) as error:
        raise InputError(path, f"unreadable ({error})") from error
    if len(raw) < HEADER_SIZE:
        raise InputError(path, "too short to be a NIfTI file")
    order = "<" if np.frombuffer(raw, "<i4", 1, 0)[0] == HEADER_SIZE else ">"
    if np.frombuffer(raw, order + "i4", 1, 0)[0] != HEADER_SIZE or raw[344:347] not in (b"n+1", b"ni1"):
        raise InputError(path, "not a single-file NIfTI-1 image")

    def get(offset: int, kind: str, count: int = 1) -> np.ndarray:
        return np.frombuffer(raw, order + kind, count, offset)

    dims = [int(v) for v in get(40, "i2", 8)]
    code = int(get(70, "i2")[0])
    if code not in DATATYPES:
        raise InputError(path, f"NIfTI datatype {code} is not supported (scalar integer or float voxels are)")
    shape = [max(d, 1) for d in dims[1:1 + dims[0]]]
    while len(shape) > 3 and shape[-1] == 1:
        shape.pop()
    if len(shape) == 5 and shape[3] == 1:  # a stack stored with its channels on the 5th axis
        shape = [*shape[:3], shape[4]]
    if len(shape) not in (3, 4) or min(shape[:3]) < 2:
        raise InputError(path, f"has size {tuple(shape)}; a 3D volume or a 4D channels-last stack is needed")
    offset = int(get(108, "f4")[0])
    count = int(np.prod(shape))
    kind = np.dtype(order + DATATYPES[code])
    if len(raw) < offset + count * kind.itemsize:
        raise InputError(path, "is truncated: fewer voxels than its header says")
    array = np.frombuffer(raw, kind, count, offset).reshape(tuple(reversed(shape)))
    slope, intercept = (float(v) for v in get(112, "f4", 2))
    if slope not in (0.0, 1.0) or intercept != 0.0:
        array = array.astype(np.float32) * (slope or 1.0) + intercept
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InputError(path, "contains NaN or infinite voxels")
    qform_code, sform_code = (int(v) for v in get(252, "i2", 2))
    pixdim = get(76, "f4", 8).astype(float)
    matrix = np.eye(4)
    if sform_code > 0:
        matrix[:3, :] = get(280, "f4", 12).astype(float).reshape(3, 4)
    elif qform_code > 0:
        matrix[:3, :3] = _quaternion_matrix(get(256, "f4", 3), pixdim[0]) * pixdim[1:4]
        matrix[:3, 3] = get(268, "f4", 3).astype(float)
    else:
        matrix[:3, :3] = np.diag(pixdim[1:4])
    descrip = raw[148:228].split(b"\0")[0].decode("utf-8", errors="replace")
    return NiftiImage(np.array(array, dtype=array.dtype.newbyteorder("=")), matrix, descrip)
