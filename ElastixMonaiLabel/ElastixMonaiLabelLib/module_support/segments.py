"""The label table as segments: what the Slicer module needs to show a result and to send an edit back.

A server result carries ``label_table`` (value, name, FreeSurfer id, colour) in its params;
the upstream MONAI Label convention carries only ``label_names`` (name -> value). Both
arrive here and leave as :class:`SegmentSpec` rows; anything the server did not name
falls back to this project's table (labels.py), and a value nobody names gets a
neutral name so that no voxel is silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..data.labels import SYNTHSEG_STRUCTURES


@dataclass(frozen=True)
class SegmentSpec:
    """One segment: label value in the label map, name, colour (0..1 floats, as Slicer wants them)."""

    value: int
    name: str
    color: tuple[float, float, float]
    freesurfer_id: int | None = None


def _rgb01(color: Sequence[float]) -> tuple[float, float, float]:
    values = [float(c) for c in list(color)[:3]]
    scale = 255.0 if max(values, default=0.0) > 1.0 else 1.0
    return tuple(min(max(c / scale, 0.0), 1.0) for c in values)  # type: ignore[return-value]


def default_segments() -> list[SegmentSpec]:
    """SynthSeg's 32 structures, values 1..32, FreeSurfer names and colours."""
    return [SegmentSpec(s.value, s.name, _rgb01(s.color), s.freesurfer_id) for s in SYNTHSEG_STRUCTURES]


def segments_from_params(params: Mapping[str, Any] | None, present_values: Iterable[int] = ()) -> list[SegmentSpec]:
    """Segments for a result: the server's ``label_table``, else its ``label_names``, else the project table.

    ``present_values``: label values found in the label map; each gets a segment even if unnamed.
    """
    params = params or {}
    known = {s.name: s for s in default_segments()}
    by_value: dict[int, SegmentSpec] = {}
    for row in params.get("label_table") or []:
        value = int(row["value"])
        fallback = known.get(row["name"])
        color = row.get("color") or (fallback.color if fallback else (0.5, 0.5, 0.5))
        by_value[value] = SegmentSpec(value, str(row["name"]), _rgb01(color), row.get("freesurfer_id"))
    for name, value in (params.get("label_names") or {}).items():
        value = int(value)
        if value == 0 or value in by_value:
            continue
        fallback = known.get(name)
        by_value[value] = SegmentSpec(value, name, fallback.color if fallback else (0.5, 0.5, 0.5),
                                      fallback.freesurfer_id if fallback else None)
    if not by_value:
        by_value = {s.value: s for s in default_segments()}
    for value in present_values:
        value = int(value)
        if value != 0 and value not in by_value:
            by_value[value] = SegmentSpec(value, f"Label {value}", (0.5, 0.5, 0.5))
    return [by_value[v] for v in sorted(by_value)]


def label_values_for_segments(segment_names: Sequence[str], table: Sequence[SegmentSpec] | None = None) -> dict[str, int]:
    """Label value for each segment name, so that an edited segmentation goes back with the server's values.

    Raises InputError naming segments the table does not know (a label map cannot carry them
    without inventing values the model was never trained on).
    """
    table = list(table or default_segments())
    values = {s.name: s.value for s in table}
    lowered = {s.name.lower(): s.value for s in table}
    result, unknown = {}, []
    for name in segment_names:
        value = values.get(name, lowered.get(name.lower()))
        if value is None:
            unknown.append(name)
        else:
            result[name] = value
    if unknown:
        raise InputError("segmentation", f"segments not in the label table: {', '.join(unknown)}; rename or delete them "
                                         "(names must match e.g. 'Left-Hippocampus')")
    return result


def labelmap_from_masks(masks: Mapping[str, np.ndarray], table: Sequence[SegmentSpec] | None = None) -> np.ndarray:
    """One label map from per-segment boolean masks (same shape); later segments win where they overlap."""
    if not masks:
        raise InputError("segmentation", "has no segments to send")
    values = label_values_for_segments(list(masks), table)
    shapes = {np.shape(m) for m in masks.values()}
    if len(shapes) != 1:
        raise InputError("segmentation", f"segments have different shapes: {sorted(shapes)}")
    labelmap = np.zeros(shapes.pop(), dtype=np.uint8)
    for name, mask in masks.items():
        labelmap[np.asarray(mask, dtype=bool)] = values[name]
    if not labelmap.any():
        raise InputError("segmentation", "is empty: nothing to send")
    return labelmap
