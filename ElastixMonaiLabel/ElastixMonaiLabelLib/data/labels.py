"""The label table: SynthSeg 2.0's 32 brain structures, one source for server, client and module.

Output label values are contiguous 1..32 in FreeSurfer-id order (0 is background),
never raw FreeSurfer ids, because MONAI Label clients map values 1..N to
``label_names``. Names and colours are FreeSurfer's (FreeSurferColorLUT.txt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Structure:
    value: int
    freesurfer_id: int
    name: str
    color: tuple[int, int, int]


_FREESURFER = [
    (2, "Left-Cerebral-White-Matter", (245, 245, 245)),
    (3, "Left-Cerebral-Cortex", (205, 62, 78)),
    (4, "Left-Lateral-Ventricle", (120, 18, 134)),
    (5, "Left-Inf-Lat-Vent", (196, 58, 250)),
    (7, "Left-Cerebellum-White-Matter", (220, 248, 164)),
    (8, "Left-Cerebellum-Cortex", (230, 148, 34)),
    (10, "Left-Thalamus", (0, 118, 14)),
    (11, "Left-Caudate", (122, 186, 220)),
    (12, "Left-Putamen", (236, 13, 176)),
    (13, "Left-Pallidum", (12, 48, 255)),
    (14, "3rd-Ventricle", (204, 182, 142)),
    (15, "4th-Ventricle", (42, 204, 164)),
    (16, "Brain-Stem", (119, 159, 176)),
    (17, "Left-Hippocampus", (220, 216, 20)),
    (18, "Left-Amygdala", (103, 255, 255)),
    (24, "CSF", (60, 60, 60)),
    (26, "Left-Accumbens-area", (255, 165, 0)),
    (28, "Left-VentralDC", (165, 42, 42)),
    (41, "Right-Cerebral-White-Matter", (245, 245, 245)),
    (42, "Right-Cerebral-Cortex", (205, 62, 78)),
    (43, "Right-Lateral-Ventricle", (120, 18, 134)),
    (44, "Right-Inf-Lat-Vent", (196, 58, 250)),
    (46, "Right-Cerebellum-White-Matter", (220, 248, 164)),
    (47, "Right-Cerebellum-Cortex", (230, 148, 34)),
    (49, "Right-Thalamus", (0, 118, 14)),
    (50, "Right-Caudate", (122, 186, 220)),
    (51, "Right-Putamen", (236, 13, 176)),
    (52, "Right-Pallidum", (13, 48, 255)),
    (53, "Right-Hippocampus", (220, 216, 20)),
    (54, "Right-Amygdala", (103, 255, 255)),
    (58, "Right-Accumbens-area", (255, 165, 0)),
    (60, "Right-VentralDC", (165, 42, 42)),
]

SYNTHSEG_STRUCTURES: tuple[Structure, ...] = tuple(
    Structure(value, fs_id, name, color) for value, (fs_id, name, color) in enumerate(_FREESURFER, start=1)
)
SYNTHSEG_FREESURFER_IDS: tuple[int, ...] = tuple(s.freesurfer_id for s in SYNTHSEG_STRUCTURES)


def freesurfer_to_values(freesurfer_labels: np.ndarray) -> np.ndarray:
    """Map FreeSurfer ids to contiguous values 1..32 (anything else -> 0), as uint8."""
    lookup = np.zeros(max(int(freesurfer_labels.max(initial=0)), max(SYNTHSEG_FREESURFER_IDS)) + 1, dtype=np.uint8)
    for structure in SYNTHSEG_STRUCTURES:
        lookup[structure.freesurfer_id] = structure.value
    ids = np.asarray(freesurfer_labels)
    if ids.size and ids.min() < 0:
        ids = np.where(ids < 0, 0, ids)
    return lookup[ids.astype(np.int64)]


def brain_mask_from_freesurfer(freesurfer_labels: np.ndarray) -> np.ndarray:
    """True where a voxel belongs to one of the 32 SynthSeg brain structures."""
    return np.isin(freesurfer_labels, SYNTHSEG_FREESURFER_IDS)
