"""The sample-data generator: reproducible, realistic tissue contrast, truthful ground truth."""

import itk
import numpy as np
import SimpleITK as sitk

from ElastixMonaiLabelLib.registration.transforms import itk_affine
from ElastixMonaiLabelLib.data.images import read_volume
from ElastixMonaiLabelLib.data.images import resample
from ElastixMonaiLabelLib.synthetic.sample_data import SubjectSpec, generate_subject, label_map_paths

WM, GM, CSF = (2, 41), (3, 42), (4, 43, 24)


def _tissue_means(image, labels):
    values = itk.array_from_image(image)
    return {name: float(values[np.isin(labels, ids)].mean()) for name, ids in (("wm", WM), ("gm", GM), ("csf", CSF))}


def test_same_seed_same_subject_other_seed_other_subject(tmp_path):
    a = generate_subject(SubjectSpec(seed=7, spacing_mm=3.0), tmp_path / "a")
    b = generate_subject(SubjectSpec(seed=7, spacing_mm=3.0), tmp_path / "b")
    c = generate_subject(SubjectSpec(seed=8, spacing_mm=3.0), tmp_path / "c")
    assert a == b
    for modality in ("t1", "t2", "flair"):
        assert (tmp_path / "a" / f"{modality}.nii.gz").read_bytes() == (tmp_path / "b" / f"{modality}.nii.gz").read_bytes()
    assert a["modalities"]["t2"]["matrix_lps"] != c["modalities"]["t2"]["matrix_lps"]


def test_tissue_contrast_follows_real_mri(subject_3mm):
    labels = itk.array_from_image(itk.imread(str(subject_3mm.labels)))
    reference = read_volume(subject_3mm.path("t1"))
    means = {}
    for modality in ("t1", "t2", "flair"):
        # Undo the known misalignment to compare with the labels on the reference grid.
        moving = read_volume(subject_3mm.path(modality))
        aligned = resample(moving, itk_affine(subject_3mm.truth(modality)), reference)
        means[modality] = _tissue_means(aligned, labels)
    assert means["t1"]["wm"] > means["t1"]["gm"] > means["t1"]["csf"]
    assert means["t2"]["csf"] > means["t2"]["gm"] > means["t2"]["wm"]
    assert means["flair"]["gm"] > means["flair"]["wm"] > means["flair"]["csf"]


def test_truth_transform_file_and_json_agree_and_misalign(subject_3mm):
    for modality in ("t2", "flair"):
        entry = subject_3mm.info["modalities"][modality]
        transform = sitk.ReadTransform(str(subject_3mm.folder / entry["transform_file"]))
        point = np.array(entry["center_lps"]) + [30.0, -20.0, 10.0]
        matrix = np.array(entry["matrix_lps"])
        np.testing.assert_allclose(transform.TransformPoint(point.tolist()), matrix[:3, :3] @ point + matrix[:3, 3], atol=1e-6)
        assert 5.0 <= entry["rotation_deg"] <= 10.0
        assert 5.0 <= np.linalg.norm(entry["translation_mm"]) <= 10.0


def test_thick_slices_stack_along_superior_inferior(make_subject):
    subject = make_subject(seed=4, spacing_mm=2.0, thick_flair=5.0)
    flair = itk.imread(str(subject.path("flair")))
    spacing = np.array(flair.GetSpacing())
    direction = np.array(flair.GetDirection()).reshape(3, 3)
    thick_axis = int(np.argmax(spacing))
    assert spacing[thick_axis] == 5.0 and sorted(spacing)[:2] == [2.0, 2.0]
    assert np.argmax(np.abs(direction[:, thick_axis])) == 2  # LPS z: superior-inferior


def test_bias_field_is_smooth_and_mild(tmp_path):
    """Same subject with and without bias: their ratio varies slowly and by about +-20 %."""
    spec = dict(seed=2, spacing_mm=3.0, noise_percent=0.0, max_rotation_deg=0.0, max_translation_mm=0.0, lesions=0)
    generate_subject(SubjectSpec(**spec, bias_strength=0.1), tmp_path / "bias")
    generate_subject(SubjectSpec(**spec, bias_strength=0.0), tmp_path / "flat")
    biased = itk.array_from_image(itk.imread(str(tmp_path / "bias" / "t1.nii.gz")))
    flat = itk.array_from_image(itk.imread(str(tmp_path / "flat" / "t1.nii.gz")))
    inside = flat > np.percentile(flat, 60)
    ratio = np.where(inside, biased / np.maximum(flat, 1e-3), np.nan)
    assert 0.05 < np.nanstd(np.log(ratio)) < 0.2
    # Neighbouring voxels (3 mm apart) differ by well under 1 %: low frequency only.
    step = np.abs(np.diff(np.log(ratio), axis=0))
    assert np.nanmedian(step) < 0.01


def test_shipped_label_maps_are_sixteen_synthseg_maps():
    paths = label_map_paths()
    assert len(paths) == 16
    labels = np.unique(itk.array_from_image(itk.imread(str(paths[0]))))
    assert {2, 3, 4, 41, 42, 43, 17, 53}.issubset(set(labels.tolist()))
