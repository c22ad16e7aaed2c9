"""What every infer task of the app shares: the label table in its params, the label file it
returns, and which channel of a case a one-channel model reads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ElastixMonaiLabelLib.data.modalities import CONTRASTS
from ElastixMonaiLabelLib.data.images import write_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.multimodal import pick_channel


def label_params() -> dict:
    """What clients need to show the result: names by value (MONAI Label's convention), ids and colours."""
    return {
        "label_names": {s.name: s.value for s in SYNTHSEG_STRUCTURES},
        "label_table": [
            {"value": s.value, "name": s.name, "freesurfer_id": s.freesurfer_id, "color": list(s.color)}
            for s in SYNTHSEG_STRUCTURES
        ],
    }


def write_label_result(label: Any, prefix: str) -> str:
    """The label image written to a fresh temporary file (MONAI Label sends it, then removes it; a folder
    around it would be left behind, one per request)."""
    handle, path = tempfile.mkstemp(prefix=prefix, suffix=".nii.gz")
    os.close(handle)
    return str(write_volume(label, Path(path)))


def requested_channel(request: Mapping[str, Any], channels: Mapping[str, Any]) -> tuple[str, Any]:
    """The channel named by the request's ``channel`` param, else the first of t1, t1ce, t2, flair."""
    return pick_channel(channels, [request["channel"]] if request.get("channel") else list(CONTRASTS))
