"""Atlas segmentation on the kinds of scans people have: whole heads, skull-stripped brains, thick slices,
and images no atlas can be registered to (generated subjects at 3 mm, atlases at 3 mm: quick)."""

from __future__ import annotations

import itk
import numpy as np
import pytest

from ElastixMonaiLabelLib.segmentation.atlases import build_atlases, segment_with_atlases
from ElastixMonaiLabelLib.registration.transforms import itk_affine
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.synthetic.evaluation import dice_per_label
from ElastixMonaiLabelLib.segmentation.foreground import crop, find_foreground, superior_axis
from ElastixMonaiLabelLib.data.geometry import grid_like
from ElastixMonaiLabelLib.data.images import image_from_array, read_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES, brain_mask_from_freesurfer, freesurfer_to_values
from ElastixMonaiLabelLib.data.images import resample
from ElastixMonaiLabelLib.registration.resolution import smooth_to_match

STRUCTURES = [s.value for s in SYNTHSEG_STRUCTURES if s.freesurfer_id != 24]


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    return build_atlases(tmp_path_factory.mktemp("atlases"), count=3, spacing_mm=3.0)


@pytest.fixture(scope="module")
def subject(make_subject):
    return make_subject(seed=9, spacing_mm=3.0)  # label map 9: no atlas is made from it


def mean_dice(labels, truth_image) -> float:
    truth = freesurfer_to_values(itk.array_from_image(resample(truth_image, itk_affine(np.eye(4)), labels, "nearest")))
    mean = float(np.mean(list(dice_per_label(itk.array_from_image(labels), truth, STRUCTURES).values())))
    print(f"mean Dice {mean:.3f}")
    return mean


def skull_stripped(subject):
    t1 = read_volume(subject.path("t1"))
    brain = brain_mask_from_freesurfer(itk.array_from_image(itk.imread(str(subject.labels))))
    return image_from_array(np.where(brain, itk.array_from_image(t1), 0).astype(np.float32), t1)


def thick_slices(image, thickness_mm: float):
    """The same head seen through axial slices ``thickness_mm`` thick (slice profile blur, then sampling)."""
    spacing = list(image.GetSpacing())
    axis = int(np.argmax(np.abs(np.array(image.GetDirection()).reshape(3, 3)[2, :])))
    spacing[axis] = thickness_mm
    grid = grid_like(image, spacing)
    return itk.resample_image_filter(smooth_to_match(image, grid), use_reference_image=True, reference_image=grid)


def test_whole_heads_and_skull_stripped_brains_are_told_apart(subject):
    head = find_foreground(read_volume(subject.path("t1")))
    assert not head.skull_stripped, head.notes
    brain = find_foreground(skull_stripped(subject))
    assert brain.skull_stripped, brain.notes
    assert 900 < brain.volume_ml < 2200 and head.volume_ml > 2 * brain.volume_ml
    assert find_foreground(skull_stripped(subject), skull_stripped=False).skull_stripped is False  # as told


def test_the_box_keeps_the_subject_and_drops_the_neck(subject):
    t1 = read_volume(subject.path("t1"))
    axis, towards_superior = superior_axis(t1)  # array axis (k, j, i order) and its sense
    spacing = np.array(t1.GetSpacing())[::-1]
    # A field of view 150 mm taller: 150 mm of bright "neck" below the head.
    array = itk.array_from_image(t1)
    extra = int(150 / spacing[axis])
    neck_shape = list(array.shape)
    neck_shape[axis] = extra
    neck = np.full(neck_shape, np.percentile(array, 90), dtype=np.float32)
    tall = np.concatenate([neck, array] if towards_superior > 0 else [array, neck], axis=axis)
    tall_image = itk.image_from_array(np.ascontiguousarray(tall, dtype=np.float32))
    tall_image.SetSpacing(t1.GetSpacing())
    tall_image.SetDirection(t1.GetDirection())
    if towards_superior > 0:  # the first voxel moved down by the neck
        step = np.array(t1.GetDirection()).reshape(3, 3)[:, 2 - axis] * t1.GetSpacing()[2 - axis]
        tall_image.SetOrigin((np.array(t1.GetOrigin()) - extra * step).tolist())
    else:
        tall_image.SetOrigin(t1.GetOrigin())
    found = find_foreground(tall_image)
    assert any("neck" in note for note in found.notes), found.notes
    height_mm = (found.box[axis].stop - found.box[axis].start) * spacing[axis]
    assert height_mm <= 190 + 2 * 6 + 2 * spacing[axis]
    # Cropping moves no voxel: the cropped image's first voxel is the box's corner, in the same place.
    cropped = crop(tall_image, found.box)
    corner = cropped.TransformIndexToPhysicalPoint([0, 0, 0])
    assert tuple(tall_image.TransformPhysicalPointToIndex(corner)) == tuple(s.start for s in found.box[::-1])


def test_a_whole_head_t1(subject, atlases):
    labels, report = segment_with_atlases({"t1": read_volume(subject.path("t1"))}, atlases)
    assert not report["skull_stripped"] and report["failed_atlases"] == []
    assert mean_dice(labels, itk.imread(str(subject.labels))) > 0.68  # measured 0.72


def test_a_skull_stripped_t1(subject, atlases):
    # Registering whole-head atlases onto a bare brain stopped elastix ("Too many samples map outside
    # moving image buffer") and gave an HTTP 500: the atlases are now stripped the same way.
    labels, report = segment_with_atlases({"t1": skull_stripped(subject)}, atlases)
    assert report["skull_stripped"] and report["failed_atlases"] == []
    assert mean_dice(labels, itk.imread(str(subject.labels))) > 0.71  # measured 0.75


def test_a_thick_slice_flair_alone(subject, atlases):
    flair = thick_slices(read_volume(subject.path("flair")), 6.0)
    labels, report = segment_with_atlases({"flair": flair}, atlases)
    assert report["atlas_contrast"] == "flair" and tuple(labels.GetSpacing()) == tuple(flair.GetSpacing())
    # The FLAIR was moved by a known rigid motion: its truth is the labels moved the same way.
    truth = resample(itk.imread(str(subject.labels)), itk_affine(np.linalg.inv(subject.truth("flair"))), flair, "nearest")
    assert mean_dice(labels, truth) > 0.56  # measured 0.60


def test_an_image_no_atlas_fits_is_refused_with_the_reasons(atlases):
    rng = np.random.default_rng(0)
    noise = itk.image_from_array(rng.uniform(0, 100, (24, 24, 24)).astype(np.float32))
    noise.SetSpacing((3.0, 3.0, 3.0))
    with pytest.raises(InputError, match="no atlas could be registered onto this image") as refused:
        segment_with_atlases({"t1": noise}, atlases)
    assert "atlas-00" in str(refused.value)
    small = itk.image_from_array(rng.uniform(0, 100, (12, 12, 12)).astype(np.float32))
    small.SetSpacing((3.0, 3.0, 3.0))
    with pytest.raises(InputError, match="covers only 36 x 36 x 36 mm: atlas registration needs the whole brain"):
        segment_with_atlases({"t1": small}, atlases)


def test_an_oblique_header_changes_nothing_but_the_grid(subject, atlases):
    # The same voxels under a header tilted by 20 degrees (as an oblique acquisition is stored): the labels
    # must follow the anatomy into the tilted space.
    from ElastixMonaiLabelLib.synthetic.sample_data import rotation_matrix

    t1 = read_volume(subject.path("t1"))
    truth = itk.imread(str(subject.labels))
    tilt = rotation_matrix(np.radians(20.0) * np.array([0.6, 0.0, 0.8]))
    for image in (t1, truth):
        image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(tilt @ np.array(image.GetDirection()).reshape(3, 3))))
        image.SetOrigin((tilt @ np.array(image.GetOrigin())).tolist())
    labels, report = segment_with_atlases({"t1": t1}, atlases)
    assert report["failed_atlases"] == [] and np.allclose(np.array(labels.GetDirection()), np.array(t1.GetDirection()))
    assert mean_dice(labels, truth) > 0.68


def test_a_tumour_gets_the_tissue_labels_around_it(subject, atlases):
    # A 30 mm "glioma" (brighter than anything in the brain) inside the white matter: no crash, and its
    # voxels are labelled as brain structures, as SynthSeg labels them, not left as background.
    t1 = read_volume(subject.path("t1"))
    array = itk.array_from_image(t1)
    truth = itk.array_from_image(itk.imread(str(subject.labels)))
    centre = np.argwhere(np.isin(truth, (2, 41))).mean(axis=0)  # inside the cerebral white matter
    grid = np.indices(array.shape)
    spacing = np.array(t1.GetSpacing())[::-1]
    tumour = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing)) <= 15.0**2
    array[tumour] = 1.6 * np.percentile(array, 99)
    labels, report = segment_with_atlases({"t1": image_from_array(array, t1)}, atlases)
    inside = itk.array_from_image(labels)[tumour & np.isin(truth, list(range(1, 100)))]
    assert (inside > 0).mean() > 0.9

