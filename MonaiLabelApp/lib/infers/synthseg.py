"""Infer task ``synthseg``: one contrast-agnostic network, trained from label maps alone, for T1, T2 or FLAIR.

Weights: the model trained on this server (``<model_dir>/synthseg/model.pt``, see
lib.trainers.synthseg) when there is one, else the weights shipped with the app
(``MonaiLabelApp/weights/synthseg.pt`` and its JSON, made by lib.synthseg.train on a GPU;
``--conf synthseg_weights PATH`` for others, ``none`` for none); without either, inference
refuses (ModelNotReady, HTTP 409). Weights are loaded as tensors only and strictly into the
network of their own width (lib.models.networks.synthseg_network_for, the rule uploads pass
too): every key and shape must match.

Reads one channel of the case (request param ``channel``, else the first of t1, t1ce, t2,
flair present), segments it at the model's resolution and returns labels on the case grid.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from ElastixMonaiLabelLib.data.modalities import CONTRASTS
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.data.geometry import image_from_slicer
from ElastixMonaiLabelLib.data.images import write_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.multimodal import read_case
from ElastixMonaiLabelLib.data.images import resample

from ..http.errors import ModelNotReady
from ..models.networks import synthseg_network_for
from ..models.weights import SHIPPED_WEIGHTS, load_strictly, read_state_dict
from ..synthseg.training import model_info, segment_volume, to_model_grid
from .results import label_params, requested_channel, write_label_result

logger = logging.getLogger(__name__)

def shipped_weights(setting: str | None) -> Path | None:
    """The weights ``--conf synthseg_weights`` names: unset -> the app's shipped file (used when it
    exists), ``none`` -> no weights, else a file that must exist with its JSON."""
    if setting is None or setting == "":
        return SHIPPED_WEIGHTS
    if setting.lower() in ("none", "off"):
        return None
    path = Path(setting).expanduser()
    for required in (path, path.with_suffix(".json")):
        if not required.is_file():
            raise InputError("synthseg_weights", f"{required} does not exist (the weights need their JSON beside them)")
    return path


def _identity():
    import itk

    return itk.IdentityTransform[itk.D, 3].New()


class ContrastAgnosticSegmentation(InferTask):
    """SynthSeg-style inference: any one contrast in, SynthSeg's 32 structures out."""

    def __init__(self, model_path: Path, shipped: Path | None = SHIPPED_WEIGHTS) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={s.name: s.value for s in SYNTHSEG_STRUCTURES}, dimension=3,
                         description="Contrast-agnostic SegResNet trained on images synthesised from label maps (any of "
                                     "T1, T2, FLAIR)")
        self.model_path = Path(model_path)
        self.shipped = Path(shipped) if shipped else None
        self._loaded: tuple[tuple, torch.nn.Module, dict] | None = None

    def weights(self) -> tuple[Path, str] | None:
        """The weights inference uses and where they come from: this server's training first."""
        if self.model_path.exists():
            return self.model_path, "trained on this server"
        if self.shipped and self.shipped.exists() and self.shipped.with_suffix(".json").exists():
            return self.shipped, "shipped with the app"
        return None

    def info(self):
        info = super().info()
        info["channels"] = {"any_of": list(CONTRASTS), "unnamed_3d_volume": "any contrast"}
        weights = self.weights()
        info["trained"] = weights is not None
        info["weights"] = weights[1] if weights else None
        info["label_table"] = label_params()["label_table"]
        return info

    def is_valid(self) -> bool:
        return True

    def _model(self, path: Path, device: str) -> tuple[torch.nn.Module, dict]:
        """The network for ``path``, loaded again only when the file changes (a new training published)."""
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, device)
        if self._loaded is None or self._loaded[0] != key:
            source = f"the synthseg weights {path}"
            try:
                info = model_info(path)
                state = read_state_dict(path, source)
                model = load_strictly(synthseg_network_for(state), state, source).to(device).eval()
            except InputError as error:  # 422 for an upload; here the server's own weights: not ready
                raise ModelNotReady(f"{error}; the synthseg model cannot use them") from None
            except (OSError, ValueError) as error:
                raise ModelNotReady(f"{source} cannot be used: {' '.join(str(error).split())[:400]}") from None
            self._loaded = (key, model, info)
        return self._loaded[1], self._loaded[2]

    def __call__(self, request):
        weights = self.weights()
        if weights is None:
            raise ModelNotReady("the synthseg model has not been trained yet and no weights ship with this app: start "
                                "training (POST /train/synthseg; it needs no labelled images) or use atlas_registration")
        started = time.perf_counter()
        channels = read_case(request["image"])
        name, image = requested_channel(request, channels)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, info = self._model(weights[0], device)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_volume(image, Path(tmp) / "channel.nii.gz")
            array, affine = to_model_grid(path, info["spacing_mm"])
        predicted = segment_volume(model, array, device)
        # Back onto the case grid: the prediction as an image on the model grid, resampled nearest-neighbour.
        on_model_grid = image_from_slicer(predicted.transpose(2, 1, 0).astype(np.float32), affine)
        label = resample(on_model_grid, _identity(), image, interpolation="nearest")
        return write_label_result(label, "synthseg-"), {**label_params(), "model": "synthseg", "channel": name,
                                                        "weights": weights[1],
                                                        "latencies": {"total": round(time.perf_counter() - started, 2)}}
