"""Model ``synthseg``: one contrast-agnostic network, trained from label maps alone, for T1, T2 or FLAIR.

Weights: the model trained on this server (``<model_dir>/synthseg/model.pt``) when there is
one, else the weights shipped with the app (``MonaiLabelApp/weights/synthseg.pt`` and its
JSON, made by lib.synthseg.train on a GPU; ``--conf synthseg_weights PATH`` for others,
``none`` for none); without either, inference refuses with HTTP 409. Weights are loaded as
tensors only and strictly into the network of their own width (lib.models.networks.synthseg_network_for,
the rule uploads pass too): every key and shape must match.

Train task: images synthesised from the shipped SynthSeg label maps (plus any label maps
configured with ``--conf synthseg_label_maps GLOB``), see lib.synthseg.training; it starts
from the shipped weights when their resolution is the one asked for. Infer task: reads one
channel of the case (request param ``channel``, else the first of t1, t1ce, t2, flair
present), segments it at the model's resolution and returns labels on the case grid.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from fastapi import HTTPException
from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType
from monailabel.interfaces.tasks.train import TrainTask

from ElastixMonaiLabelLib.data.modalities import CONTRASTS
from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.data.geometry import image_from_slicer
from ElastixMonaiLabelLib.data.images import write_volume
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.multimodal import channel_names, read_case
from ElastixMonaiLabelLib.data.images import resample
from ElastixMonaiLabelLib.runtime.resources import resource_path
from ElastixMonaiLabelLib.synthetic.sample_data import label_map_paths

from .results import label_params, requested_channel, write_label_result
from ..models.weights import load_strictly, read_state_dict
from ..models.networks import init_filters_of, synthseg_network_for
from ..http.params import yes_no
from ..synthseg.training import (
    SynthSegTrainingConfig,
    model_info,
    segment_volume,
    to_model_grid,
    train_from_label_maps,
)

logger = logging.getLogger(__name__)

SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "synthseg.pt"


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
            except HTTPException as error:  # 422 for an upload; here the server's own weights: a conflict
                raise HTTPException(status_code=409, detail=f"{error.detail}; the synthseg model cannot use them") from None
            except (OSError, ValueError) as error:
                raise HTTPException(status_code=409, detail=f"{source} cannot be used: "
                                                            f"{' '.join(str(error).split())[:400]}") from None
            self._loaded = (key, model, info)
        return self._loaded[1], self._loaded[2]

    def __call__(self, request):
        weights = self.weights()
        if weights is None:
            raise HTTPException(status_code=409, detail="the synthseg model has not been trained yet and no weights "
                                "ship with this app: start training (POST /train/synthseg; it needs no labelled "
                                "images) or use atlas_registration")
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


class SynthSegTrainer(TrainTask):
    """Trains ``synthseg`` from label maps (request params: max_minutes, max_iterations, spacing_mm),
    optionally mixed with the datastore's labelled images (real_fraction: share of iterations).
    With shipped weights, it continues from them (their resolution and width) unless the request
    asks for another ``spacing_mm`` or says ``from_shipped: false``."""

    def __init__(self, model_path: Path, extra_label_maps: str | None = None, max_minutes: float = 30.0,
                 spacing_mm: float = 2.0, real_fraction: float = 0.0, shipped: Path | None = SHIPPED_WEIGHTS) -> None:
        super().__init__("Train the contrast-agnostic model from label maps (SynthSeg-style synthesis), optionally "
                         "mixed with the datastore's labelled images")
        self.model_path = Path(model_path)
        self.shipped = Path(shipped) if shipped else None
        self.extra_label_maps = extra_label_maps
        self.max_minutes, self.spacing_mm, self.real_fraction = max_minutes, spacing_mm, real_fraction

    def config(self):
        return {"max_minutes": self.max_minutes, "max_iterations": 100000, "spacing_mm": self.spacing_mm,
                "real_fraction": self.real_fraction}

    @staticmethod
    def real_images(datastore) -> list[dict[str, str]]:
        """Every channel of every case with a final label: the model is one for all contrasts."""
        return [{"image": item["image"], "channel": name, "label": item["label"]}
                for item in datastore.datalist() for name in channel_names(item["image"])]

    def label_maps(self) -> list[Path]:
        import glob

        extra = sorted(Path(p) for p in glob.glob(self.extra_label_maps)) if self.extra_label_maps else []
        return list(label_map_paths()) + extra

    def stats(self):
        info = self.model_path.with_suffix(".json")
        return json.loads(info.read_text()) if info.exists() else {}

    def shipped_info(self) -> dict | None:
        if self.shipped and self.shipped.exists() and self.shipped.with_suffix(".json").exists():
            return model_info(self.shipped)
        return None

    def __call__(self, request, datastore):
        shipped = self.shipped_info()
        spacing = float(request.get("spacing_mm", shipped["spacing_mm"] if shipped else self.spacing_mm))
        from_shipped = yes_no(request.get("from_shipped"), "from_shipped", default=True)
        start_from_shipped = shipped is not None and float(shipped["spacing_mm"]) == spacing and from_shipped
        config = SynthSegTrainingConfig(
            spacing_mm=spacing,
            max_minutes=float(request.get("max_minutes", self.max_minutes)),
            max_iterations=int(request.get("max_iterations", 100000)),
            real_fraction=float(request.get("real_fraction", self.real_fraction)),
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
        if start_from_shipped:
            config.init_weights = str(self.shipped)
            config.init_filters = init_filters_of(torch.load(self.shipped, map_location="cpu", weights_only=True))
            config.translation_mm = float(shipped.get("translation_mm", 0.0))
            config.strip_prob = float(shipped.get("strip_prob", 0.0))
        if not 0.0 <= config.real_fraction <= 1.0:
            raise HTTPException(status_code=422, detail=f"real_fraction must be between 0 and 1, not {config.real_fraction}")
        maps = self.label_maps()
        real = self.real_images(datastore) if config.real_fraction > 0 else []
        if config.real_fraction > 0 and not real:
            logger.warning("synthseg: real_fraction is set but the datastore has no final label: label maps alone")
        logger.info(f"synthseg: training from {len(maps)} label maps and {len(real)} labelled image channels "
                    f"({config.real_fraction:.0%} of iterations) at {config.spacing_mm:g} mm on {config.device}")
        # Trained to a temporary name and renamed: inference never loads a half-written model.
        history = train_from_label_maps(maps, self.model_path, resource_path("SynthSeg", "priors"), config, log=print,
                                        real_images=real)
        return {"iterations": history["iterations"], "real_image_iterations": history["real_image_iterations"],
                "minutes": round(history["minutes"], 2)}
