"""Label fusion of warped atlases: votes, votes refined by the case's own intensities, the bias field."""

import numpy as np
import pytest

from ElastixMonaiLabelLib.segmentation.label_fusion import estimate_bias, fuse_labels, fuse_with_intensities, tissue_classes


def two_tissues(boundary: int, shape=(4, 4, 40), first: int = 3, second: int = 2) -> np.ndarray:
    labels = np.full(shape, second, dtype=np.uint8)  # value 2: left cerebral cortex
    labels[..., :boundary] = first  # value 3: left lateral ventricle (another tissue class)
    return labels


def test_votes_follow_the_majority():
    atlases = [two_tissues(10), two_tissues(20), two_tissues(20)]
    assert (fuse_labels(atlases) == two_tissues(20)).all()


def test_intensities_decide_where_atlases_disagree():
    rng = np.random.default_rng(0)
    truth = two_tissues(16)
    image = np.where(truth == 3, 1.0, 0.4) + rng.normal(0, 0.05, truth.shape)
    # Three registrations that all missed the true boundary, in both directions.
    atlases = [two_tissues(12), two_tissues(19), two_tissues(21)]
    voted = fuse_labels(atlases)
    refined = fuse_labels(atlases, image)
    assert (voted != truth).sum() == 3 * 16  # the majority puts the boundary at 19
    assert (refined != truth).sum() <= 2  # the contrast puts it back at 16
    # Where every atlas agrees, a label no atlas proposes is never chosen.
    assert set(np.unique(refined)) == {2, 3}
    assert (refined[..., :12] == 3).all() and (refined[..., 21:] == 2).all()


def test_a_prior_of_one_atlas_is_kept_where_intensities_say_nothing():
    truth = two_tissues(16)
    flat = np.full(truth.shape, 0.5, np.float32)  # no contrast between the tissues
    atlases = [two_tissues(12), two_tissues(20), two_tissues(20)]
    assert (fuse_labels(atlases, flat) == fuse_labels(atlases)).all()


def test_structures_of_one_tissue_class_are_left_to_the_atlases():
    # Cortex (2) and hippocampus (14) share a tissue class: a brightness difference between
    # them is not evidence (real scans vary within a tissue), the atlases' majority decides.
    classes = tissue_classes()
    assert classes[2] == classes[14] and classes[2] != classes[3]
    rng = np.random.default_rng(1)
    truth = two_tissues(16, first=14)
    image = np.where(truth == 14, 0.7, 0.5) + rng.normal(0, 0.02, truth.shape)
    atlases = [two_tissues(12, first=14), two_tissues(19, first=14), two_tissues(21, first=14)]
    assert (fuse_labels(atlases, image) == fuse_labels(atlases)).all()


def test_the_bias_field_of_a_case_is_found_and_removed():
    shape = (24, 28, 32)
    labels = np.full(shape, 1, dtype=np.uint8)  # white matter
    labels[:, :, 16:] = 2  # cortex
    labels[:, 10:14, :] = 3  # ventricle
    means = np.array([0.0, 1.0, 0.6, 0.2])
    ramp = np.linspace(-0.25, 0.25, shape[2])[None, None, :] + np.linspace(-0.15, 0.15, shape[0])[:, None, None]
    truth_field = np.exp(ramp).astype(np.float32)
    image = (means[labels] * truth_field).astype(np.float32)
    field = estimate_bias(image, labels, np.ones(shape, bool), spacing_mm=(2.0, 2.0, 2.0))
    assert np.corrcoef(np.log(field).ravel(), np.broadcast_to(ramp, shape).ravel())[0, 1] > 0.95
    corrected = image / field
    for value in (1, 2):
        spread = corrected[labels == value].std() / corrected[labels == value].mean()
        assert spread < 0.5 * (image[labels == value].std() / image[labels == value].mean())
    # The whole fusion: atlases that agree on this case give its labels back, and say how much they agree.
    fused, report = fuse_with_intensities([labels, labels.copy()], image, (2.0, 2.0, 2.0))
    assert (fused == labels).all() and report["atlas_agreement"] == 1.0


def test_atlas_agreement_is_the_mean_share_of_the_majority():
    one, other = two_tissues(10), two_tissues(30)
    # Voxels 10-29 along the last axis: 2 of 3 atlases agree; elsewhere all 3.
    report = fuse_with_intensities([one, other, other], np.where(other == 3, 1.0, 0.4).astype(np.float32), (1.0, 1.0, 1.0))[1]
    assert report["atlas_agreement"] == pytest.approx((20 * 2 / 3 + 20) / 40, abs=1e-4)
