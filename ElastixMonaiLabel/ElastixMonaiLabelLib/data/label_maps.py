"""Label maps from other tools (SynthSeg, FreeSurfer) brought onto a case's grid, in the label table's values.

A label map with FreeSurfer ids (SynthSeg's own output on its 1 mm grid, an imported label
file) lies in the same scanner space as the image it was made from: it is resampled onto the
reference grid through the identity, nearest neighbour (no id is ever averaged), and its ids
are mapped to the table's values 1..32 (:mod:`.labels`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .images import image_from_array, read_volume, resample
from .labels import freesurfer_to_values

# Outside the label map's own field of view (ids are never negative): to measure how much of the image it covers.
OUTSIDE = -1


def label_map_on_grid(label_path: str | Path, reference: Any) -> Any:
    """A FreeSurfer-id label map (any grid, e.g. SynthSeg's 1 mm one) on the reference grid, values 1..32."""
    import itk

    labels = read_volume(label_path, pixel_type="short")
    on_grid = itk.array_from_image(resample(labels, None, reference, "nearest", default_value=OUTSIDE))
    outside = float(np.mean(on_grid < 0))
    if outside > 0.5:
        raise InputError(label_path, f"label map covers only {100 * (1 - outside):.0f}% of the reference image: wrong grid or wrong case")
    values = freesurfer_to_values(np.where(on_grid < 0, 0, on_grid))
    if not values.any():
        raise InputError(label_path, "no SynthSeg/FreeSurfer structure id in this label map")
    return image_from_array(values, reference)
