"""LPS <-> RAS at the Slicer boundary: exact round trips with oblique, anisotropic grids."""

import itk
import nibabel
import numpy as np
import pytest

from ElastixMonaiLabelLib.data.geometry import (
    LPS_TO_RAS,
    apply_matrix,
    image_from_slicer,
    image_ijk_to_lps,
    image_ijk_to_ras,
    image_to_slicer,
    lps_to_ras_transform,
    ras_to_lps_transform,
    voxel_points,
)
from ElastixMonaiLabelLib.synthetic.sample_data import rotation_matrix


def oblique_image(shape=(7, 9, 11), spacing=(0.7, 1.3, 4.0)):
    rng = np.random.default_rng(0)
    image = itk.image_from_array(rng.normal(size=shape).astype(np.float32))
    image.SetSpacing(spacing)
    image.SetOrigin((-12.5, 30.25, 7.0))
    # Oblique and with an axis flip: direction cosines of a real tilted acquisition.
    direction = rotation_matrix(np.array([0.3, -0.2, 0.5])) @ np.diag([1.0, -1.0, 1.0])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
    return image, direction


def test_image_round_trip_through_slicer_representation_is_exact():
    image, direction = oblique_image()
    array, ijk_to_ras = image_to_slicer(image)
    back = image_from_slicer(array, ijk_to_ras)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.array(back.GetDirection()).reshape(3, 3), direction, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(itk.array_from_image(back), itk.array_from_image(image))


def test_ijk_to_ras_flips_x_and_y_of_lps():
    image, _ = oblique_image()
    lps = image_ijk_to_lps(image)
    ras = image_ijk_to_ras(image)
    np.testing.assert_allclose(ras[:2], -lps[:2])
    np.testing.assert_allclose(ras[2:], lps[2:])


def test_ijk_to_ras_agrees_with_nibabel(tmp_path):
    """An independent reader: nibabel's affine is IJK-to-RAS of the file ITK wrote."""
    image, _ = oblique_image()
    path = tmp_path / "oblique.nii.gz"
    itk.imwrite(image, str(path))
    np.testing.assert_allclose(nibabel.load(str(path)).affine, image_ijk_to_ras(image), atol=1e-5)


def test_voxel_index_maps_to_itk_physical_point():
    image, _ = oblique_image()
    index = (3, 5, 2)
    expected = np.array(image.TransformIndexToPhysicalPoint(index))
    np.testing.assert_allclose(apply_matrix(image_ijk_to_lps(image), np.array([index], float))[0], expected, atol=1e-9)
    mask = np.zeros(itk.array_view_from_image(image).shape, bool)
    mask[index[::-1]] = True
    np.testing.assert_allclose(voxel_points(image, mask)[0], expected, atol=1e-9)


def test_transform_conversion_is_consistent_with_point_conversion():
    rng = np.random.default_rng(1)
    matrix_lps = np.eye(4)
    matrix_lps[:3, :3] = rotation_matrix(rng.normal(size=3) * 0.3) @ np.diag([1.1, 0.9, 1.05])
    matrix_lps[:3, 3] = rng.normal(size=3) * 10
    points_lps = rng.normal(size=(20, 3)) * 50
    moved_lps = apply_matrix(matrix_lps, points_lps)
    to_ras = lambda p: apply_matrix(LPS_TO_RAS, p)  # noqa: E731
    matrix_ras = lps_to_ras_transform(matrix_lps)
    np.testing.assert_allclose(apply_matrix(matrix_ras, to_ras(points_lps)), to_ras(moved_lps), atol=1e-9)
    np.testing.assert_allclose(ras_to_lps_transform(matrix_ras), matrix_lps, atol=1e-12)


def test_image_from_slicer_rejects_wrong_input():
    with pytest.raises(ValueError, match="3D voxel array"):
        image_from_slicer(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(ValueError, match="zero column"):
        image_from_slicer(np.zeros((4, 4, 4)), np.diag([1.0, 0.0, 1.0, 1.0]))


def test_grid_like_keeps_the_physical_box():
    from ElastixMonaiLabelLib.data.geometry import grid_like

    image, direction = oblique_image(shape=(10, 12, 14), spacing=(1.0, 1.0, 1.0))
    coarse = grid_like(image, (2.0, 2.0, 5.0))
    assert tuple(coarse.GetLargestPossibleRegion().GetSize()) == (7, 6, 2)
    np.testing.assert_allclose(np.array(coarse.GetDirection()).reshape(3, 3), direction)
    # The outer corner of voxel 0 is the same physical point in both grids.
    corner = lambda im: np.array(im.GetOrigin()) - direction @ (np.array(im.GetSpacing()) / 2)  # noqa: E731
    np.testing.assert_allclose(corner(coarse), corner(image), atol=1e-9)
