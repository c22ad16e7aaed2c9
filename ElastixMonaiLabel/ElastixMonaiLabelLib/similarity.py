"""Image similarity used in registration reports (engine-independent)."""

from __future__ import annotations

import numpy as np


def normalized_mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, bins: int = 64) -> float:
    """Studholme's NMI, (H(a) + H(b)) / H(a, b): 1 for independent images, 2 for identical ones.

    Intensities are clipped to their 0.5-99.5 percentiles inside ``mask`` so that a
    few outliers do not squeeze the histogram.
    """
    if mask is None:
        mask = np.ones(a.shape, dtype=bool)
    x, y = np.asarray(a)[mask].astype(float), np.asarray(b)[mask].astype(float)
    if x.size == 0:
        raise ValueError("no voxel to compare")

    def scaled(v: np.ndarray) -> np.ndarray:
        lo, hi = np.percentile(v, [0.5, 99.5])
        if hi <= lo:
            return np.zeros(v.shape, dtype=np.intp)
        return np.clip(((v - lo) / (hi - lo) * (bins - 1)).round(), 0, bins - 1).astype(np.intp)

    joint = np.bincount(scaled(x) * bins + scaled(y), minlength=bins * bins).reshape(bins, bins).astype(float)
    joint /= joint.sum()

    def entropy(p: np.ndarray) -> float:
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    h_joint = entropy(joint)
    return (entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0))) / h_joint if h_joint > 0 else 2.0
