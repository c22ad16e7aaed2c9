"""Trainer of ``synthseg``: the contrast-agnostic network from images synthesised from label maps.

Images are synthesised from the shipped SynthSeg label maps (plus any label maps configured
with ``--conf synthseg_label_maps GLOB``), see lib.synthseg.training; optionally mixed with
the datastore's labelled images. It starts from the shipped weights when their resolution is
the one asked for. The model is trained under a temporary name and renamed: inference never
loads a half-written model.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path

import torch
from monailabel.interfaces.tasks.train import TrainTask

from ElastixMonaiLabelLib.data.multimodal import channel_names
from ElastixMonaiLabelLib.runtime.resources import resource_path
from ElastixMonaiLabelLib.synthetic.sample_data import label_map_paths

from ..http.errors import InvalidRequest
from ..http.params import yes_no
from ..models.networks import init_filters_of
from ..models.weights import SHIPPED_WEIGHTS
from ..synthseg.training import SynthSegTrainingConfig, model_info, train_from_label_maps

logger = logging.getLogger(__name__)


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
            raise InvalidRequest(f"real_fraction must be between 0 and 1, not {config.real_fraction}")
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
