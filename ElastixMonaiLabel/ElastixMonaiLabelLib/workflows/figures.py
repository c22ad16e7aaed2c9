"""Pictures to look at: before/after overlays of each modality on the reference.

matplotlib is an optional dependency of the core. Figures are drawn on matplotlib's
``Figure`` directly, not through pyplot: no screen is needed, and a caller's own pyplot
backend (a notebook's inline plots, say) is left as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.files import atomic_path


def _normalise(array: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(array, [1, 99.5])
    return np.clip((array - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


def checkerboard(first: np.ndarray, second: np.ndarray, squares: int = 8) -> np.ndarray:
    """Alternate blocks of two same-shape volumes (each scaled to 0..1 by its own percentiles).

    Edges that continue across block borders show a good alignment, whatever the contrasts.
    """
    first, second = np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32)
    if first.shape != second.shape:
        raise ValueError(f"checkerboard needs one grid: shapes {first.shape} and {second.shape}")
    blocks = [np.arange(n) * squares // max(n, 1) for n in first.shape]
    parity = sum(np.meshgrid(*blocks, indexing="ij", sparse=True)) % 2 == 1
    return np.where(parity, _normalise(second), _normalise(first)).astype(np.float32)


def canonical_array(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """Voxel array reordered so that its axes run towards (S, P, L), and the matching spacing.

    Works for any axis permutation and flip (LIA, RAS, LPS...); oblique grids are
    shown along their closest axes.
    """
    import itk

    array = itk.array_from_image(image)  # axes (k, j, i)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    physical = np.argmax(np.abs(direction), axis=0)  # physical axis followed by index axis i, j, k
    index_axes = [int(np.flatnonzero(physical == axis)[0]) for axis in (2, 1, 0)]  # index axes for S, P, L
    canonical = np.transpose(array, [2 - a for a in index_axes])
    for out_axis, index_axis in enumerate(index_axes):
        if direction[physical[index_axis], index_axis] < 0:
            canonical = np.flip(canonical, axis=out_axis)
    spacing = np.array(image.GetSpacing())[index_axes]
    return canonical, spacing


def _views(image: Any) -> list[tuple[str, np.ndarray, float]]:
    """Middle axial, coronal and sagittal slices (radiological: patient's right on the left)."""
    volume, (s, p, l) = canonical_array(image)
    middle = [n // 2 for n in volume.shape]
    return [
        ("axial", volume[middle[0]], p / l),
        ("coronal", volume[:, middle[1]][::-1], s / l),
        ("sagittal", volume[:, :, middle[2]][::-1], s / p),
    ]


def overlay_figure(reference: Any, rows: list[tuple[str, Any, Any]], path: str | Path, title: str = "") -> Path:
    """Save a PNG: per row, a modality before and after registration over the reference.

    ``rows`` holds (name, before, after) with both images on the reference grid.
    The reference is grey, the modality magenta-green: aligned edges look grey.
    """
    from matplotlib.figure import Figure

    reference_views = _views(reference)
    fig = Figure(figsize=(18, 3.2 * len(rows)))
    axes = fig.subplots(len(rows), 6, squeeze=False)
    for row, (name, before, after) in enumerate(rows):
        for half, (label, image) in enumerate((("before", before), ("after", after))):
            for column, ((view, ref_plane, aspect), (_, plane, _)) in enumerate(zip(reference_views, _views(image))):
                ax = axes[row, half * 3 + column]
                r, m = _normalise(ref_plane), _normalise(plane)
                ax.imshow(np.stack([m, r, m], axis=-1), interpolation="nearest", aspect=aspect)
                ax.set_title(f"{name} {label} ({view})", fontsize=9)
                ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return path


def segmentation_figure(reference: Any, labels: Any, structures, path: str | Path, title: str = "") -> Path:
    """Save a PNG: the reference with the label map in its structures' colours, and a legend."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    lut = np.zeros((256, 3))
    for structure in structures:
        lut[structure.value] = np.array(structure.color) / 255.0
    fig = Figure(figsize=(15, 5.8))
    axes = fig.subplots(1, 3)
    present = set()
    for ax, (view, plane, aspect), (_, label_plane, _) in zip(axes, _views(reference), _views(labels)):
        grey = _normalise(plane)[..., None].repeat(3, axis=-1)
        values = label_plane.astype(int)
        present |= set(np.unique(values).tolist())
        coloured = np.where(values[..., None] > 0, 0.45 * grey + 0.55 * lut[values], grey)
        ax.imshow(coloured, interpolation="nearest", aspect=aspect)
        ax.set_title(view)
        ax.axis("off")
    handles = [Patch(color=np.array(s.color) / 255.0, label=f"{s.value} {s.name}") for s in structures if s.value in present]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=7, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.22, 1, 1))
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return path
