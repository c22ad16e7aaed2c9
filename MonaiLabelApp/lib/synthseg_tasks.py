"""Model ``synthseg``: one contrast-agnostic network, trained from label maps alone, for T1, T2 or FLAIR.

Train task: images synthesised from the shipped SynthSeg label maps (plus any label maps
configured with ``--conf synthseg_label_maps GLOB``), see lib.synthseg_training. Infer task:
reads one channel of the case (request param ``channel``, else the first of t1, t1ce, t2,
flair present), segments it at the model's resolution and returns labels on the case grid.
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

from ElastixMonaiLabelLib.atlas_segmentation import CONTRASTS
from ElastixMonaiLabelLib.geometry import image_from_slicer
from ElastixMonaiLabelLib.images import write_volume
from ElastixMonaiLabelLib.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.multimodal import channel_names, read_case
from ElastixMonaiLabelLib.registration import resample
from ElastixMonaiLabelLib.resources import resource_path
from ElastixMonaiLabelLib.sampledata import label_map_paths

from .infer_results import label_params, requested_channel, write_label_result
from .synthseg_training import SynthSegTrainingConfig, load_model, segment_volume, train_from_label_maps

logger = logging.getLogger(__name__)


def _identity():
    import itk

    return itk.IdentityTransform[itk.D, 3].New()


class ContrastAgnosticSegmentation(InferTask):
    """SynthSeg-style inference: any one contrast in, SynthSeg's 32 structures out."""

    def __init__(self, model_path: Path) -> None:
        super().__init__(type=InferType.SEGMENTATION, labels={s.name: s.value for s in SYNTHSEG_STRUCTURES}, dimension=3,
                         description="Contrast-agnostic SegResNet trained on images synthesised from label maps (any of "
                                     "T1, T2, FLAIR)")
        self.model_path = Path(model_path)

    def info(self):
        info = super().info()
        info["channels"] = {"any_of": list(CONTRASTS), "unnamed_3d_volume": "any contrast"}
        info["trained"] = self.model_path.exists()
        info["label_table"] = label_params()["label_table"]
        return info

    def is_valid(self) -> bool:
        return True

    def __call__(self, request):
        if not self.model_path.exists():
            raise HTTPException(status_code=409, detail="the synthseg model has not been trained yet: start training "
                                "(POST /train/synthseg; it needs no labelled images) or use atlas_registration")
        started = time.perf_counter()
        channels = read_case(request["image"])
        name, image = requested_channel(request, channels)
        spacing = json.loads(self.model_path.with_suffix(".json").read_text())["spacing_mm"]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        with tempfile.TemporaryDirectory() as tmp:
            path = write_volume(image, Path(tmp) / "channel.nii.gz")
            array, affine = _model_grid(path, spacing)
        predicted = segment_volume(load_model(self.model_path, device), array, device)
        # Back onto the case grid: the prediction as an image on the model grid, resampled nearest-neighbour.
        on_model_grid = image_from_slicer(predicted.transpose(2, 1, 0).astype(np.float32), affine)
        label = resample(on_model_grid, _identity(), image, interpolation="nearest")
        return write_label_result(label, "synthseg-"), {**label_params(), "model": "synthseg", "channel": name,
                             "latencies": {"total": round(time.perf_counter() - started, 2)}}


def _model_grid(path: Path, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The volume in RAS at ``spacing`` (as the training loader sees label maps) and its IJK-to-RAS."""
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd

    data = Compose([LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"),
                    Orientationd(keys="image", axcodes="RAS"), Spacingd(keys="image", pixdim=[spacing] * 3)])({"image": str(path)})
    return np.asarray(data["image"][0]), np.asarray(data["image"].affine, dtype=np.float64)


class SynthSegTrainer(TrainTask):
    """Trains ``synthseg`` from label maps (request params: max_minutes, max_iterations, spacing_mm),
    optionally mixed with the datastore's labelled images (real_fraction: share of iterations)."""

    def __init__(self, model_path: Path, extra_label_maps: str | None = None, max_minutes: float = 30.0,
                 spacing_mm: float = 2.0, real_fraction: float = 0.0) -> None:
        super().__init__("Train the contrast-agnostic model from label maps (SynthSeg-style synthesis), optionally "
                         "mixed with the datastore's labelled images")
        self.model_path = Path(model_path)
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

    def __call__(self, request, datastore):
        config = SynthSegTrainingConfig(
            spacing_mm=float(request.get("spacing_mm", self.spacing_mm)),
            max_minutes=float(request.get("max_minutes", self.max_minutes)),
            max_iterations=int(request.get("max_iterations", 100000)),
            real_fraction=float(request.get("real_fraction", self.real_fraction)),
            device="cuda" if torch.cuda.is_available() else "cpu",
        )
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
