"""Infer task ``atlas_registration``: SynthSeg's 32 structures by elastix registration of atlases."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from ElastixMonaiLabelLib.data.modalities import CONTRASTS
from ElastixMonaiLabelLib.segmentation.atlases import build_atlases, segment_with_atlases
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.multimodal import read_case

from .results import label_params, write_label_result
from ..http.params import yes_no

logger = logging.getLogger(__name__)


class AtlasRegistrationSegmentation(InferTask):
    """Registers labelled atlases onto the case (elastix), warps their labels and lets them vote."""

    def __init__(self, atlases_dir: Path, count: int, spacing_mm: float, preset: str) -> None:
        super().__init__(
            type=InferType.SEGMENTATION,
            labels={s.name: s.value for s in SYNTHSEG_STRUCTURES},
            dimension=3,
            description=f"Segmentation by elastix registration of {count} labelled atlases ({preset}); needs no training",
            config={"preset": preset, "atlases": count},
        )
        started = time.perf_counter()
        self.atlases = build_atlases(atlases_dir, count=count, spacing_mm=spacing_mm)
        self.preset = preset
        logger.info(f"{count} atlases ready in {time.perf_counter() - started:.1f} s ({atlases_dir})")

    def info(self):
        info = super().info()
        # Which channels this model reads: the first of these that the case has.
        info["channels"] = {"any_of": list(CONTRASTS), "unnamed_3d_volume": "treated as t1"}
        info["label_table"] = label_params()["label_table"]
        return info

    def is_valid(self) -> bool:
        return bool(self.atlases)

    def __call__(self, request):
        started = time.perf_counter()
        channels = read_case(request["image"])
        label, report = segment_with_atlases(channels, self.atlases, preset=request.get("preset", self.preset),
                                             skull_stripped=yes_no(request.get("skull_stripped"), "skull_stripped",
                                                                    default=None, auto=True))
        output = write_label_result(label, "atlas-seg-")
        params = {**label_params(), "model": "atlas_registration", "report": report,
                  "latencies": {"total": round(time.perf_counter() - started, 2)}}
        return output, params

