"""elastix transform parameters -> ITK transforms and transform files.

elastix (both engines) reports its result as a chain of TransformParameters maps,
one per stage, composed so that the first stage acts first on a point of the
fixed image: T(x) = T_n(...T_1(T_0(x))). Every transform here maps physical LPS
points of the fixed (reference) image to the moving image, which is ITK's
resampling convention and what Slicer expects of an ITK transform file.

Linear chains (translation, rigid, similarity, affine) collapse to one 4x4 matrix
written as an ITK AffineTransform; anything else becomes a displacement field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RegistrationError
from ..runtime.files import atomic_path, write_text
from .parameter_files import ParameterMap


def _floats(parameters: ParameterMap, key: str) -> np.ndarray:
    return np.array([float(v) for v in parameters[key]], dtype=float)


def _euler_matrix(angles: np.ndarray, compute_zyx: bool) -> np.ndarray:
    # Same convention as itk::Euler3DTransform, which elastix's EulerTransform wraps.
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx if compute_zyx else rz @ rx @ ry


def _versor_matrix(versor: np.ndarray) -> np.ndarray:
    x, y, z = versor
    w = math.sqrt(max(0.0, 1.0 - (x * x + y * y + z * z)))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def stage_matrix(parameters: ParameterMap) -> np.ndarray | None:
    """4x4 LPS matrix of one linear elastix stage, or None if the stage is not linear."""
    kind = parameters["Transform"][0]
    values = _floats(parameters, "TransformParameters")
    if kind == "TranslationTransform":
        matrix = np.eye(4)
        matrix[:3, 3] = values[:3]
        return matrix
    center = _floats(parameters, "CenterOfRotationPoint") if "CenterOfRotationPoint" in parameters else np.zeros(3)
    if kind == "EulerTransform":
        zyx = parameters.get("ComputeZYX", ("false",))[0] == "true"
        linear, translation = _euler_matrix(values[:3], zyx), values[3:6]
    elif kind == "SimilarityTransform":
        linear, translation = values[6] * _versor_matrix(values[:3]), values[3:6]
    elif kind == "AffineTransform":
        linear, translation = values[:9].reshape(3, 3), values[9:12]
    else:
        return None
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = center + translation - linear @ center
    return matrix


def chain_matrix(chain: list[ParameterMap]) -> np.ndarray | None:
    """One 4x4 LPS matrix for a chain of linear stages (first stage acts first), else None."""
    total = np.eye(4)
    for parameters in chain:
        if parameters.get("HowToCombineTransforms", ("Compose",))[0] != "Compose":
            return None  # additive combination is not a plain composition
        matrix = stage_matrix(parameters)
        if matrix is None:
            return None
        total = matrix @ total
    return total


def write_linear_transform(matrix: np.ndarray, path: str | Path) -> Path:
    """Write a 4x4 LPS matrix as an ITK text transform file (.tfm), atomically.

    The file holds ``AffineTransform_double_3_3``; SimpleITK, ITK and Slicer read it
    (Slicer converts it to RAS itself).
    """
    matrix = np.asarray(matrix, dtype=float)
    numbers = [*matrix[:3, :3].ravel(), *matrix[:3, 3]]
    text = (
        "#Insight Transform File V1.0\n"
        "#Transform 0\n"
        "Transform: AffineTransform_double_3_3\n"
        f"Parameters: {' '.join(repr(float(v)) for v in numbers)}\n"
        "FixedParameters: 0 0 0\n"
    )
    write_text(path, text)
    return Path(path)


def read_linear_transform(path: str | Path) -> np.ndarray:
    """Read a .tfm written by :func:`write_linear_transform` (or any single affine ITK text file)."""
    fields = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            fields[key.strip()] = value.split()
    kind = fields.get("Transform", ["?"])[0]
    if not kind.startswith(("AffineTransform", "MatrixOffsetTransformBase")):
        raise RegistrationError(f"{path}: not a single affine ITK transform (found {kind})")
    values = np.array([float(v) for v in fields["Parameters"]])
    center = np.array([float(v) for v in fields["FixedParameters"]])
    linear, translation = values[:9].reshape(3, 3), values[9:12]
    matrix = np.eye(4)
    matrix[:3, :3] = linear
    matrix[:3, 3] = center + translation - linear @ center
    return matrix


def itk_affine(matrix: np.ndarray) -> Any:
    """An ``itk.AffineTransform[D, 3]`` for a 4x4 LPS matrix."""
    import itk

    transform = itk.AffineTransform[itk.D, 3].New()
    transform.SetMatrix(itk.matrix_from_array(np.ascontiguousarray(matrix[:3, :3], dtype=float)))
    transform.SetTranslation([float(v) for v in matrix[:3, 3]])
    return transform


def itk_displacement_field_transform(field: Any) -> Any:
    """An ``itk.DisplacementFieldTransform[D, 3]`` for a vector image of displacements."""
    import itk

    # DisplacementFieldTransform needs double vectors; transformix gives float ones.
    field_d = itk.Image[itk.Vector[itk.D, 3], 3].New()
    field_d.SetRegions(field.GetLargestPossibleRegion())
    field_d.CopyInformation(field)
    field_d.Allocate()
    itk.array_view_from_image(field_d)[...] = itk.array_view_from_image(field)
    transform = itk.DisplacementFieldTransform[itk.D, 3].New()
    transform.SetDisplacementField(field_d)
    return transform


def write_itk_transform(transform: Any, path: str | Path) -> Path:
    """Write any ITK transform (e.g. a displacement field as .h5), atomically."""
    import itk

    with atomic_path(path) as tmp:
        itk.transformwrite([transform], str(tmp), compression=True)
    return Path(path)


def load_transform(path: str | Path) -> Any:
    """An ITK transform from a file the ``register`` command wrote (.tfm: linear, .h5: displacement field)."""
    import itk

    path = Path(path)
    if not path.exists():
        raise InputError(path, "transform file not found")
    if path.suffix == ".tfm":
        return itk_affine(read_linear_transform(path))
    transforms = itk.transformread(str(path))
    return transforms[0] if len(transforms) == 1 else transforms
