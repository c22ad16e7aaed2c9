"""Resolution handling around a preset: resolution matching's axis pairing and the pyramid
schedules in millimetres, and that both code paths (itk-elastix in process, the elastix
executable on arrays as in Slicer) hand elastix the same schedules."""

import shutil

import itk
import numpy as np
import pytest

from ElastixMonaiLabelLib.registration.voxel_arrays import register_with_executables
from ElastixMonaiLabelLib.registration.parameter_files import read_parameter_file
from ElastixMonaiLabelLib.registration.presets import get_preset
from ElastixMonaiLabelLib.synthetic.quick_subject import make_quick_subject
from ElastixMonaiLabelLib.registration.stages import elastix_stages
from ElastixMonaiLabelLib.registration.resolution import pyramid_schedule, resolution_along_axes
from ElastixMonaiLabelLib.synthetic.sample_data import rotation_matrix
from ElastixMonaiLabelLib.data.voxels import VoxelVolume

ELASTIX, TRANSFORMIX = shutil.which("elastix"), shutil.which("transformix")


def _image(spacing, direction=np.eye(3), shape=(12, 10, 8)):
    image = itk.image_from_array(np.zeros(shape, dtype=np.float32))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction, dtype=float)))
    return image


def test_pyramid_schedule_is_elastix_default_for_isotropic_and_spares_thick_slices():
    assert pyramid_schedule(_image((2.0, 2.0, 2.0)), 3, 2.0) == [4, 4, 4, 2, 2, 2, 1, 1, 1]
    # 0.9 x 0.9 x 5.5 mm: in-plane as usual, the 5.5 mm axis is never thinned further.
    assert pyramid_schedule(_image((0.9, 0.9, 5.5)), 3, 0.9) == [4, 4, 1, 2, 2, 1, 1, 1, 1]
    # A 0.5 mm image registered at a shared 1 mm: coarse levels at 4 and 2 mm, the last one itself.
    assert pyramid_schedule(_image((0.5, 0.5, 0.5)), 3, 1.0) == [8, 8, 8, 4, 4, 4, 1, 1, 1]
    # An image coarser than the coarsest level is never shrunk.
    assert pyramid_schedule(_image((10.0, 10.0, 10.0)), 3, 1.0) == [1] * 9


def _stage(**fields):
    stage = {"FixedImagePyramid": ("FixedRecursiveImagePyramid",), "MovingImagePyramid": ("MovingRecursiveImagePyramid",),
             "NumberOfResolutions": ("3",), "ImageSampler": ("Random",)}
    stage.update({key: tuple(value) for key, value in fields.items()})
    return stage


def test_elastix_stages_schedule_at_the_resolution_both_images_share():
    t1, t2 = _image((1.0, 1.0, 1.0)), _image((0.45, 0.45, 5.0))
    (stage,) = elastix_stages([_stage()], t1, t2, has_fixed_mask=False)
    # Shared resolution 1 mm (the coarser finest spacing): the 1 mm T1 is shrunk as elastix's default would.
    assert stage["FixedImagePyramidSchedule"] == ("4", "4", "4", "2", "2", "2", "1", "1", "1")
    assert stage["MovingImagePyramidSchedule"] == ("8", "8", "1", "4", "4", "1", "1", "1", "1")
    # No NumberOfResolutions: elastix's default of 3 levels.
    (stage,) = elastix_stages([{k: v for k, v in _stage().items() if k != "NumberOfResolutions"}], t1, t1, False)
    assert len(stage["FixedImagePyramidSchedule"]) == 9


@pytest.mark.parametrize("stage", [
    _stage(ImagePyramidSchedule=("2",) * 9),
    _stage(FixedImagePyramidSchedule=("2",) * 9),
    {"NumberOfResolutions": ("3",)},  # no pyramid named: elastix's own choice is left alone
    _stage(FixedImagePyramid=("OpenCLFixedGenericImagePyramid",)),
], ids=["preset-schedule", "preset-fixed-schedule", "no-pyramid", "other-pyramid"])
def test_elastix_stages_leave_a_preset_that_decides_itself_alone(stage):
    (adapted,) = elastix_stages([stage], _image((1.0, 1.0, 5.0)), _image((1.0, 1.0, 1.0)), has_fixed_mask=False)
    assert {k: v for k, v in adapted.items() if "Schedule" in k} == {k: v for k, v in stage.items() if "Schedule" in k}


def test_resolution_along_axes_pairs_axes_one_to_one():
    reference = _image((1.0, 1.0, 1.0))
    for degrees in (0.0, 5.0, 10.0, 20.0):
        tilted = _image((0.9, 0.9, 5.5), rotation_matrix(np.radians([degrees, 0.0, 0.0])))
        np.testing.assert_allclose(resolution_along_axes(reference, tilted), [0.9, 0.9, 5.5])
    # Exactly 45 degrees about the first axis: the second and third axes tie; one of them still
    # gets the 5.5 mm slices (a nearest-axis choice could give both 0.9 mm and lose them).
    tied = _image((0.9, 0.9, 5.5), rotation_matrix(np.radians([45.0, 0.0, 0.0])))
    assert sorted(resolution_along_axes(reference, tied).tolist()) == pytest.approx([0.9, 0.9, 5.5])


def test_executable_path_hands_elastix_the_same_schedules(tmp_path):
    """Slicer's path (arrays, elastix executable) gets the same parameter maps as register_modality."""
    quick = make_quick_subject(seed=3)
    reference = quick.volumes["t1"]
    # A FLAIR with 6 mm slices: every other slice of the quick subject's (3 mm) one.
    flair = quick.volumes["flair"]
    thick = VoxelVolume(np.ascontiguousarray(flair.array[::2]), flair.ijk_to_ras @ np.diag([1.0, 1.0, 2.0, 1.0]))
    preset = get_preset("brain-rigid")
    register_with_executables(reference, thick, name="flair", preset=preset, elastix=ELASTIX, transformix=TRANSFORMIX,
                              workdir=tmp_path)
    given = read_parameter_file(tmp_path / "stage0.txt")  # the file the elastix executable was run with
    # Thick-slice moving image: the roles are swapped, the 6 mm FLAIR is elastix's fixed image.
    (expected,) = elastix_stages(preset.parameter_maps(), thick, reference, has_fixed_mask=False)
    for key in ("FixedImagePyramidSchedule", "MovingImagePyramidSchedule"):
        assert given[key] == expected[key], (key, given.get(key), expected[key])
    # 3 mm axes shrunk 4x and the 6 mm slices 2x at the coarsest level: both at 12 mm.
    assert given["FixedImagePyramidSchedule"][:3] == ("4", "4", "2")
