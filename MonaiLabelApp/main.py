"""ElastixMonaiLabel's MONAI Label app: whole-brain segmentation of multimodal MRI.

Start it with (see the project README):
    python -m monailabel.main start_server --app MonaiLabelApp --studies DATASTORE \
        --host 127.0.0.1 --port 8000 [--conf atlases 12] [--conf atlas_spacing 2] [--conf cache DIR]

Cases are 4D channels-last NIfTI files whose channel names travel in the header
(ElastixMonaiLabelLib.multimodal); a 3D volume is a one-channel case.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from fastapi import HTTPException
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.random import Random

APP_DIR = Path(__file__).resolve().parent
# The core sits beside the app in a checkout; it is also installed (editable) in .venv-server.
sys.path.insert(0, str(APP_DIR.parent / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib import __version__  # noqa: E402
from ElastixMonaiLabelLib.atlas_segmentation import ATLAS_SPACING_MM, DEFAULT_ATLASES  # noqa: E402
from ElastixMonaiLabelLib.errors import InputError  # noqa: E402
from ElastixMonaiLabelLib.labels import SYNTHSEG_STRUCTURES  # noqa: E402
from ElastixMonaiLabelLib.resources import cache_dir  # noqa: E402

from lib.atlas_infer import AtlasRegistrationSegmentation  # noqa: E402
from lib.segmentation import MultimodalSegmentation, MultimodalSegmentationTrainer  # noqa: E402
from lib.strategies import First  # noqa: E402
from lib.synthseg_annotator import SynthSegAnnotator, configured_synthseg  # noqa: E402
from lib.synthseg_tasks import ContrastAgnosticSegmentation, SynthSegTrainer, shipped_weights  # noqa: E402

logger = logging.getLogger(__name__)


class ElastixMonaiLabelApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        # Attributes first: the base constructor builds the infer tasks at once.
        self.atlas_count = int(conf.get("atlases", DEFAULT_ATLASES))
        self.atlas_spacing = float(conf.get("atlas_spacing", ATLAS_SPACING_MM))
        self.atlas_preset = conf.get("atlas_preset", "atlas-deformable")
        # Built once, shared by every datastore, never inside the checkout (see resources.cache_dir).
        self.cache_dir = Path(conf["cache"]).resolve() if conf.get("cache") else cache_dir()
        # The trainable model: its channels (the datastore's, see prepare --channels) and where it lives.
        self.segmentation_channels = conf.get("segmentation_channels", "t1,t2,flair").split(",")
        self.model_dir = Path(conf.get("model_dir", str(Path(studies) / ".models")))
        self.max_epochs = int(conf.get("max_epochs", "50"))
        self.train_on_registration_labels = conf.get("train_on_registration_labels", "false").lower() == "true"
        # The contrast-agnostic model trained from label maps alone (SynthSeg-style); extra maps by glob.
        self.synthseg_label_maps = conf.get("synthseg_label_maps")
        self.synthseg_minutes = float(conf.get("synthseg_minutes", "30"))
        self.synthseg_real_fraction = float(conf.get("synthseg_real_fraction", "0"))
        # Its weights when none was trained here: the app's shipped file by default (--conf synthseg_weights PATH|none).
        self.synthseg_weights = shipped_weights(conf.get("synthseg_weights"))
        # The user's own SynthSeg as a model (--conf synthseg auto|on|off, synthseg_checkout DIR, synthseg_python PY).
        self.synthseg_command = configured_synthseg(conf)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="ElastixMonaiLabel",
            description="Whole-brain segmentation (SynthSeg's 32 structures) of co-registered multimodal MRI",
            version=__version__,
            labels={s.name: s.value for s in SYNTHSEG_STRUCTURES},
        )

    @property
    def segmentation_model_path(self) -> Path:
        return self.model_dir / "segmentation" / "model.pt"

    @property
    def synthseg_model_path(self) -> Path:
        return self.model_dir / "synthseg" / "model.pt"

    def init_infers(self):
        infers = {
            "atlas_registration": AtlasRegistrationSegmentation(
                atlases_dir=self.cache_dir / "atlases", count=self.atlas_count, spacing_mm=self.atlas_spacing,
                preset=self.atlas_preset,
            ),
            "segmentation": MultimodalSegmentation(self.segmentation_model_path, self.segmentation_channels),
            "synthseg": ContrastAgnosticSegmentation(self.synthseg_model_path, self.synthseg_weights),
        }
        if self.synthseg_command is not None:
            infers["mri_synthseg"] = SynthSegAnnotator(self.synthseg_command)
        return infers

    def init_trainers(self):
        return {
            "segmentation": MultimodalSegmentationTrainer(
                self.model_dir / "segmentation" / "train", self.segmentation_channels,
                publish_path=self.segmentation_model_path, max_epochs=self.max_epochs,
                use_registration_labels=self.train_on_registration_labels,
            ),
            "synthseg": SynthSegTrainer(self.synthseg_model_path, self.synthseg_label_maps, self.synthseg_minutes,
                                        real_fraction=self.synthseg_real_fraction, shipped=self.synthseg_weights),
        }

    def init_strategies(self):
        return {"random": Random(), "first": First()}

    def infer(self, request, datastore=None):
        # Client mistakes are 4xx with a message, never a 500.
        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {', '.join(self._infers)}")
        image = request.get("image")
        if isinstance(image, str) and not Path(image).exists() and image not in self.datastore().list_images():
            raise HTTPException(status_code=404, detail=f"image {image!r} is not in the datastore")
        try:
            return super().infer(request, datastore)
        except InputError as error:
            raise HTTPException(status_code=422, detail=str(error)) from error

    def train(self, request):
        # Runs in MONAI Label's training subprocess: a refusal shows in GET /train/ (status and details).
        trainer = self._trainers.get(request.get("model"))
        if trainer is None:
            raise HTTPException(status_code=404, detail=f"unknown trainer {request.get('model')!r}; available: {', '.join(self._trainers)}")
        labelled = len(trainer.training_datalist(self.datastore())) if hasattr(trainer, "training_datalist") else None
        if labelled is not None and labelled < 2:
            raise HTTPException(status_code=409, detail=f"training needs at least 2 labelled images (one to validate on); "
                                                        f"the datastore has {labelled}: save final labels first")
        return super().train(request)
