"""Model ``mri_synthseg``: the user's own SynthSeg (FreeSurfer's mri_synthseg or a checkout) run by the server.

Listed only where the server finds SynthSeg (``--conf synthseg auto``, the default: on PATH;
``--conf synthseg_checkout DIR [--conf synthseg_python PY]``: a checkout with its weights;
``--conf synthseg off``: never). SynthSeg segments one channel of the case (request param
``channel``, else the first of t1, t1ce, t2, flair); its FreeSurfer ids on its 1 mm grid come
back as the label table's values on the case grid, with its volumes and QC scores in the
result's params. A SynthSeg that fails is a ToolFailed (HTTP 502) with the end of its output.
"""

from __future__ import annotations

import csv
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from ElastixMonaiLabelLib.data.modalities import CONTRASTS
from ElastixMonaiLabelLib.data.label_maps import label_map_on_grid
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.data.images import write_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.multimodal import read_case
from ElastixMonaiLabelLib.segmentation.synthseg_tool import SynthSegCommand, SynthSegError, find_synthseg, run_synthseg

from ..configs import AppSettings
from ..http.errors import ToolFailed
from .results import label_params, requested_channel, write_label_result

logger = logging.getLogger(__name__)


def configured_synthseg(settings: AppSettings | Mapping[str, str]) -> SynthSegCommand | None:
    """The SynthSeg the settings ask for (``--conf synthseg``, ``synthseg_checkout``, ``synthseg_python``),
    or None (logged: why the model is not offered). A conf dict is read through lib.configs."""
    if not isinstance(settings, AppSettings):
        settings = AppSettings.from_conf(settings)
    if settings.synthseg == "off":
        return None
    try:
        return find_synthseg(settings.synthseg_checkout, settings.synthseg_python)
    except InputError as error:
        if settings.synthseg_checkout or settings.synthseg == "on":
            raise  # asked for explicitly: a server that cannot honour it does not start quietly
        logger.info(f"model mri_synthseg not offered: {error}")
        return None


def _table(path: Path) -> dict[str, float]:
    """SynthSeg's one-subject CSV (header row, value row) as {column: value}."""
    if not path.exists():
        return {}
    rows = list(csv.reader(path.open(newline="")))
    if len(rows) < 2:
        return {}
    values = {}
    for key, value in zip(rows[0][1:], rows[1][1:]):
        try:
            values[key.strip()] = float(value)
        except ValueError:
            continue
    return values


class SynthSegAnnotator(InferTask):
    """Runs SynthSeg itself on one channel of the case."""

    def __init__(self, command: SynthSegCommand, threads: int = 1) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={s.name: s.value for s in SYNTHSEG_STRUCTURES}, dimension=3,
                         description=f"SynthSeg itself, as installed on the server ({command.describe()})")
        self.command, self.threads = command, threads

    def info(self):
        info = super().info()
        info["channels"] = {"any_of": list(CONTRASTS), "unnamed_3d_volume": "any contrast"}
        info["label_table"] = label_params()["label_table"]
        return info

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        started = time.perf_counter()
        channels = read_case(request["image"])
        name, image = requested_channel(request, channels)
        with tempfile.TemporaryDirectory(prefix="synthseg-") as tmp:
            source = write_volume(image, Path(tmp) / f"{name}.nii.gz")
            try:
                outputs = run_synthseg(self.command, source, Path(tmp) / "out", "case", threads=self.threads, log=logger.info)
            except SynthSegError as error:
                raise ToolFailed(str(error)) from error
            label = label_map_on_grid(outputs.labels, image)
            volumes, qc = _table(outputs.volumes), _table(outputs.qc)
        return write_label_result(label, "synthseg-"), {**label_params(), "model": "mri_synthseg", "channel": name, "volumes_mm3": volumes,
                             "qc": qc, "latencies": {"total": round(time.perf_counter() - started, 2)}}
