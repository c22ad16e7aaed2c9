"""Label fusion of warped atlases: votes, and votes refined by the case's own intensities."""

import numpy as np

from ElastixMonaiLabelLib.atlas_segmentation import fuse_labels


def two_tissues(boundary: int, shape=(4, 4, 40)) -> np.ndarray:
    labels = np.full(shape, 2, dtype=np.uint8)  # cortex-like
    labels[..., :boundary] = 3  # white-matter-like
    return labels


def test_votes_follow_the_weights():
    atlases = [two_tissues(10), two_tissues(20), two_tissues(20)]
    equal = [np.ones(atlases[0].shape, np.float32)] * 3
    assert (fuse_labels(atlases, equal) == two_tissues(20)).all()  # the majority
    trusted_first = [np.full(atlases[0].shape, w, np.float32) for w in (3.0, 1.0, 1.0)]
    assert (fuse_labels(atlases, trusted_first) == two_tissues(10)).all()


def test_intensities_decide_where_atlases_disagree():
    rng = np.random.default_rng(0)
    truth = two_tissues(16)
    image = np.where(truth == 3, 1.0, 0.4) + rng.normal(0, 0.05, truth.shape)
    # Three registrations that all missed the true boundary, in both directions.
    atlases = [two_tissues(12), two_tissues(19), two_tissues(21)]
    weights = [np.ones(truth.shape, np.float32)] * 3
    voted = fuse_labels(atlases, weights)
    refined = fuse_labels(atlases, weights, image)
    assert (voted != truth).sum() == 3 * 16  # the majority puts the boundary at 19
    assert (refined != truth).sum() <= 2  # the contrast puts it back at 16
    # Where every atlas agrees, a label no atlas proposes is never chosen.
    assert set(np.unique(refined)) == {2, 3}
    assert (refined[..., :12] == 3).all() and (refined[..., 21:] == 2).all()


def test_a_prior_of_one_atlas_is_kept_where_intensities_say_nothing():
    truth = two_tissues(16)
    flat = np.full(truth.shape, 0.5, np.float32)  # no contrast between the tissues
    atlases = [two_tissues(12), two_tissues(20), two_tissues(20)]
    weights = [np.ones(truth.shape, np.float32)] * 3
    assert (fuse_labels(atlases, weights, flat) == fuse_labels(atlases, weights)).all()
