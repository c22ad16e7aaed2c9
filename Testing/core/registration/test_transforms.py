"""elastix's transform parameters -> ITK transform files, checked against transformix and SimpleITK."""

import itk
import numpy as np
import pytest
import SimpleITK as sitk

from ElastixMonaiLabelLib.registration.transforms import (
    chain_matrix,
    load_transform,
    read_linear_transform,
    stage_matrix,
    write_linear_transform,
)
from ElastixMonaiLabelLib.data.images import read_volume, resample
from ElastixMonaiLabelLib.registration.itk_images import register_modality
from ElastixMonaiLabelLib.workflows.register import register_files
from ElastixMonaiLabelLib.synthetic.sample_data import rotation_matrix


def test_euler_parameters_follow_itk_euler3d():
    for zyx in (False, True):
        reference = itk.Euler3DTransform[itk.D].New()
        reference.SetComputeZYX(zyx)
        reference.SetCenter((10.0, -20.0, 5.0))
        reference.SetParameters(itk.OptimizerParameters[itk.D]([0.1, -0.2, 0.3, 4.0, 5.0, -6.0]))
        stage = {
            "Transform": ("EulerTransform",),
            "TransformParameters": ("0.1", "-0.2", "0.3", "4", "5", "-6"),
            "CenterOfRotationPoint": ("10", "-20", "5"),
            "ComputeZYX": ("true" if zyx else "false",),
        }
        matrix = stage_matrix(stage)
        for point in ([0, 0, 0], [30, -7, 12]):
            expected = np.array(reference.TransformPoint([float(c) for c in point]))
            np.testing.assert_allclose(matrix[:3, :3] @ point + matrix[:3, 3], expected, atol=1e-9)


def test_tfm_round_trip_and_simpleitk_reads_it(tmp_path):
    matrix = np.eye(4)
    matrix[:3, :3] = rotation_matrix(np.array([0.1, 0.2, -0.1])) * 1.05
    matrix[:3, 3] = [3.0, -4.0, 5.5]
    path = write_linear_transform(matrix, tmp_path / "a.tfm")
    np.testing.assert_array_equal(read_linear_transform(path), matrix)
    transform = sitk.ReadTransform(str(path))
    point = (12.0, -3.0, 40.0)
    np.testing.assert_allclose(transform.TransformPoint(point), matrix[:3, :3] @ point + matrix[:3, 3], atol=1e-9)


def test_two_stage_chain_matches_transformix(subject_3mm):
    """Our composition of rigid + affine equals what transformix does with the same parameters."""
    reference, moving = read_volume(subject_3mm.path("t1")), read_volume(subject_3mm.path("t2"))
    result = register_modality(reference, moving, name="t2", preset="brain-affine")
    assert len(result.transform_chain) == 2 and result.is_linear
    assert chain_matrix(result.transform_chain) is not None
    parameter_object = itk.ParameterObject.New()
    for stage in result.transform_chain:
        parameter_object.AddParameterMap({**stage, "FinalBSplineInterpolationOrder": ("1",), "ResultImagePixelType": ("float",)})
    by_transformix = itk.transformix_filter(moving, parameter_object)
    ours = itk.array_from_image(resample(moving, result.transform, reference, "linear"))
    theirs = itk.array_from_image(by_transformix)
    scale = np.percentile(theirs, 99)
    assert np.abs(ours - theirs).mean() < 0.002 * scale


def test_transform_files_reproduce_the_registered_volumes_with_simpleitk(subject_3mm, tmp_path, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # nothing may land in the user's current folder
    written = register_files(subject_3mm.path("t1"), [subject_3mm.path("flair")], tmp_path / "rigid")
    written += register_files(subject_3mm.path("t1"), [subject_3mm.path("t2")], tmp_path / "deformable", preset="brain-deformable")
    assert not list(workdir.iterdir())
    reference = sitk.ReadImage(str(subject_3mm.path("t1")), sitk.sitkFloat32)
    for paths, modality, interpolator in ((written[0], "flair", sitk.sitkLinear), (written[1], "t2", sitk.sitkBSpline)):
        assert paths["transform"].suffix == (".tfm" if modality == "flair" else ".h5")
        transform = sitk.ReadTransform(str(paths["transform"]))
        moving = sitk.ReadImage(str(subject_3mm.path(modality)), sitk.sitkFloat32)
        by_simpleitk = sitk.GetArrayFromImage(sitk.Resample(moving, reference, transform, interpolator, 0.0))
        ours = sitk.GetArrayFromImage(sitk.ReadImage(str(paths["volume"])))
        scale = np.percentile(ours, 99)
        assert np.abs(by_simpleitk - ours).mean() < 0.01 * scale, modality
        # The core reads its own files back to the same transform.
        loaded = load_transform(paths["transform"])
        point = [float(c) for c in np.array(reference.GetOrigin()) + 40]
        np.testing.assert_allclose(loaded.TransformPoint(point), transform.TransformPoint(point), atol=1e-4)


def test_load_transform_missing_file(tmp_path):
    from ElastixMonaiLabelLib.errors import InputError

    with pytest.raises(InputError, match="transform file not found"):
        load_transform(tmp_path / "missing.tfm")
