"""Properties of the SynthSeg-style generator (not its code): alignment, randomness, smoothness, flips, range, seeds."""

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.runtime.resources import resource_path
from lib.synthseg.synthesis import (
    MapLabelsd,
    SynthSegGenerator,
    RandBiasFieldd,
    RandFlipLeftRightd,
    RandSpatialDeformd,
    SynthesizeIntensitiesd,
    generation_tables,
    synthseg_transforms,
)

PRIORS = resource_path("SynthSeg", "priors")


@pytest.fixture(scope="module")
def label_map() -> torch.Tensor:
    """A real SynthSeg label map, 3 mm, RAS, channel first."""
    import nibabel
    from nibabel.processing import resample_to_output

    image = nibabel.load(str(resource_path("SynthSeg", "label_maps") / "training_seg_02.nii.gz"))
    image = nibabel.as_closest_canonical(image)  # RAS: axis 0 runs left -> right
    small = resample_to_output(image, voxel_sizes=(3, 3, 3), order=0)
    return torch.from_numpy(np.asarray(small.dataobj).astype(np.int64))[None]


def centroid(mask: torch.Tensor) -> np.ndarray:
    return np.argwhere(mask[0].numpy()).mean(axis=0)


def test_image_and_labels_stay_aligned_through_the_deformation(label_map):
    labels, classes = generation_tables(PRIORS)
    generator = Compose([
        RandSpatialDeformd(keys=["label"], rotation_bounds_deg=15, scaling_bounds=0.2, nonlinear_std=2.0),
        SynthesizeIntensitiesd("label", "image", labels, classes, std_range=(0.0, 0.0)),  # no noise: image = f(label)
    ]).set_random_state(7)
    out = generator({"label": label_map.clone()})
    hippocampus = 17
    before, after = centroid(label_map == hippocampus), centroid(out["label"] == hippocampus)
    assert np.linalg.norm(before - after) > 1.0  # the structure moved...
    # ...and the image moved with it: every voxel of one label has its class's one intensity.
    for fs_id in (2, 3, 4, 17, 53):
        values = out["image"][out["label"] == fs_id]
        assert values.numel() > 0 and torch.allclose(values, values[0].expand_as(values))
    # Nearest-neighbour: no label value was invented.
    assert set(torch.unique(out["label"]).tolist()) <= set(torch.unique(label_map).tolist())


def test_class_intensities_differ_between_seeds_and_repeat_with_one_seed(label_map):
    def sample(seed):
        return Compose(synthseg_transforms(PRIORS, spacing=3.0)).set_random_state(seed)({"label": label_map.clone()})

    a, b, again = sample(1), sample(2), sample(1)
    assert torch.equal(a["image"], again["image"]) and torch.equal(a["label"], again["label"])
    white = [(s["image"][s["label"] == 1].mean(), s["image"][s["label"] == 2].mean()) for s in (a, b)]
    # Which of white matter / cortex is brighter, or by how much, changes with the seed.
    assert abs((white[0][0] - white[0][1]) - (white[1][0] - white[1][1])) > 0.05


def test_outputs_are_finite_in_range_and_labels_are_table_values(label_map):
    for seed in range(3):
        out = Compose(synthseg_transforms(PRIORS, spacing=3.0)).set_random_state(seed)({"label": label_map.clone()})
        image, label = out["image"], out["label"]
        assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
        assert image.shape == label.shape == label_map.shape
        assert set(torch.unique(label).tolist()) <= set(range(33)) and (label > 0).sum() > 1000


def test_bias_field_is_smooth():
    volume = {"image": torch.ones(1, 48, 48, 48)}
    out = RandBiasFieldd(keys=["image"], max_std=0.7).set_random_state(3)(volume)["image"][0]
    log_field = torch.log(out)
    assert log_field.std() > 0.01  # there is a bias
    # Low-frequency: second differences are tiny against the field itself (white noise: about 2.4 times).
    for axis in range(3):
        curvature = torch.diff(log_field, n=2, dim=axis)
        assert curvature.std() / log_field.std() < 0.05
    noise = torch.randn(48, 48, 48)
    assert torch.diff(noise, n=2, dim=0).std() / noise.std() > 2


def test_flip_swaps_left_and_right_labels(label_map):
    out = RandFlipLeftRightd(keys=["label"], prob=1.0).set_random_state(0)({"label": label_map.clone()})["label"]
    width = label_map.shape[1]
    for left, right in ((17, 53), (2, 41), (4, 43)):
        assert centroid(label_map == left)[0] < width / 2 < centroid(label_map == right)[0]  # RAS: left is low x
        flipped_left = centroid(out == left)
        assert flipped_left[0] < width / 2
        np.testing.assert_allclose(flipped_left[0], width - 1 - centroid(label_map == right)[0], atol=1e-6)
    assert (out == 16).sum() == (label_map == 16).sum()  # the brain stem has no side


def test_map_labels_gives_the_table_values():
    ids = torch.tensor([[[[0, 2, 17, 41, 60, 165, 24]]]])
    values = MapLabelsd(keys=["label"])({"label": ids})["label"]
    table = {s.freesurfer_id: s.value for s in SYNTHSEG_STRUCTURES}
    assert values.flatten().tolist() == [0, table[2], table[17], table[41], table[60], 0, table[24]]


def _still_generator(**overrides) -> SynthSegGenerator:
    """The batched generator with every spatial change off (what remains is exact to check)."""
    options = dict(scaling_bounds=0.0, rotation_bounds_deg=0.0, shearing_bounds=0.0, nonlinear_std_mm=0.0,
                   resolution_prob=0.0, bias_max_std=0.0, gamma_std=0.0, std_range=(0.0, 0.0))
    return SynthSegGenerator(PRIORS, spacing=3.0, **{**options, **overrides})


def test_batched_flip_mirrors_the_map_and_swaps_sides(label_map):
    batch = label_map[None].float().repeat(2, 1, 1, 1, 1)
    values = MapLabelsd(keys=["label"])
    _, kept = _still_generator(flip_prob=0.0)(batch)
    _, flipped = _still_generator(flip_prob=1.0)(batch)
    assert torch.equal(kept[0], values({"label": label_map})["label"])
    swapped = RandFlipLeftRightd(keys=["label"], prob=1.0)({"label": label_map.clone()})["label"]
    assert torch.equal(flipped[1], values({"label": swapped})["label"])  # the grid's mirror is torch.flip, exactly


def test_batched_generator_crops_varies_per_sample_and_resumes_its_sequence(label_map):
    generator = SynthSegGenerator(PRIORS, spacing=3.0, out_shape=(32, 40, 32), seed=5, translation_mm=9.0)
    batch = label_map[None].float().repeat(3, 1, 1, 1, 1)
    generator(batch)
    state = generator.state_dict()
    image, target = generator(batch)
    assert image.shape == target.shape == (3, 1, 32, 40, 32)
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert set(torch.unique(target).tolist()) <= set(range(33))
    assert not torch.equal(image[0], image[1]) and not torch.equal(target[0], target[1])  # one draw per sample
    generator.load_state_dict(state)
    again_image, again_target = generator(batch)
    assert torch.equal(image, again_image) and torch.equal(target, again_target)


def test_skull_stripped_samples_keep_only_the_brain(label_map):
    image, target = _still_generator(strip_prob=1.0, std_range=(0.0, 30.0))(label_map[None].float())
    assert float(image[target == 0].max()) == 0.0  # skull, scalp, background: black
    assert float(image[target > 0].mean()) > 0.05
