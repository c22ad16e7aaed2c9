"""ElastixMonaiLabel's MONAI Label app: whole-brain segmentation of multimodal MRI.

Start it with (see docs/server.md):
    python -m monailabel.main start_server --app MonaiLabelApp --studies DATASTORE \
        --host 127.0.0.1 --port 8000 [--conf atlases 12] [--conf atlas_spacing 2] [--conf cache DIR]

Cases are 4D channels-last NIfTI files whose channel names travel in the header
(ElastixMonaiLabelLib.data.multimodal); a 3D volume is a one-channel case.

This file wires the app together: settings (lib.configs, every --conf key), infer tasks
(lib.infers), trainers (lib.trainers), strategies, the datastore (lib.datastore) and what
crosses HTTP (lib.http: access guard, the app's routes, errors and their statuses).
Security: docs/security.md.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

APP_DIR = Path(__file__).resolve().parent
# In a checkout the core sits beside the app (it is also installed, editable, in .venv-server); in an installed
# package the app is inside the core's package, which is importable already.
if (APP_DIR.parent / "ElastixMonaiLabel" / "ElastixMonaiLabelLib").is_dir():
    sys.path.insert(0, str(APP_DIR.parent / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib import __version__  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES  # noqa: E402
from ElastixMonaiLabelLib.runtime.resources import cache_dir  # noqa: E402

from lib.configs import AppSettings  # noqa: E402
from lib.datastore.safe_datastore import SafeDatastore  # noqa: E402
from lib.datastore.volume_checks import VolumeLimits  # noqa: E402
from lib.http.errors import NotFound  # noqa: E402
from lib.http.guard import GuardConfig, install, status_and_message  # noqa: E402
from lib.http.routes import TRUSTED_INPUT  # noqa: E402
from lib.infers.atlas_registration import AtlasRegistrationSegmentation  # noqa: E402
from lib.infers.mri_synthseg import SynthSegAnnotator, configured_synthseg  # noqa: E402
from lib.infers.requests import run_infer  # noqa: E402
from lib.infers.segmentation import MultimodalSegmentation  # noqa: E402
from lib.infers.synthseg import ContrastAgnosticSegmentation, shipped_weights  # noqa: E402
from lib.models.uploads import segmentation_upload, synthseg_upload  # noqa: E402
from lib.trainers.segmentation import MultimodalSegmentationTrainer  # noqa: E402
from lib.trainers.synthseg import SynthSegTrainer  # noqa: E402

logger = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """Why a training run stopped, in one line: GET /train/ shows the last lines of its output."""


class ElastixMonaiLabelApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        # Every setting read and checked now (lib.configs), so a bad value stops the start with a message.
        # Attributes first: the base constructor builds the infer tasks at once.
        self.settings = AppSettings.from_conf(conf)
        self.guard_config = GuardConfig.from_settings(self.settings)
        self.volume_limits = VolumeLimits(max_voxels=self.settings.max_voxels)
        self._guard_installed = False
        # Built once, shared by every datastore, never inside the checkout (see resources.cache_dir).
        self.cache_dir = self.settings.cache or cache_dir()
        self.model_dir = self.settings.model_dir or Path(studies) / ".models"
        self.segmentation_model_path = self.model_dir / "segmentation" / "model.pt"
        self.synthseg_model_path = self.model_dir / "synthseg" / "model.pt"
        # synthseg's weights when none was trained here: the app's shipped file by default.
        self.synthseg_weights = shipped_weights(self.settings.synthseg_weights)
        # The user's own SynthSeg as a model, where the settings find one.
        self.synthseg_command = configured_synthseg(self.settings)
        # Models whose weights can be uploaded (PUT /model/{name}, lib.http.routes).
        self.model_uploads = {
            "segmentation": segmentation_upload(self.segmentation_model_path, self.settings.segmentation_channels),
            "synthseg": synthseg_upload(self.synthseg_model_path),
        }
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="ElastixMonaiLabel",
            description="Whole-brain segmentation (SynthSeg's 32 structures) of co-registered multimodal MRI",
            version=__version__,
            labels={s.name: s.value for s in SYNTHSEG_STRUCTURES},
        )

    def init_datastore(self):
        if self.studies.startswith(("http://", "https://")):
            raise ValueError("this app serves a local datastore (a folder): --studies must be a path")
        return SafeDatastore(self.studies, label_values=[s.value for s in SYNTHSEG_STRUCTURES], limits=self.volume_limits,
                             extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
                             auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
                             read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)

    def server_mode(self, mode: bool):
        # Called once by MONAI Label's FastAPI app as it starts serving (not in training subprocesses).
        super().server_mode(mode)
        if mode and not self._guard_installed:
            from monailabel.app import app as fastapi_app

            install(fastapi_app, self.guard_config, prefix=settings.MONAI_LABEL_API_STR)
            self._guard_installed = True

    def init_infers(self):
        s = self.settings
        infers = {
            "atlas_registration": AtlasRegistrationSegmentation(
                atlases_dir=self.cache_dir / "atlases", count=s.atlases, spacing_mm=s.atlas_spacing, preset=s.atlas_preset,
            ),
            "segmentation": MultimodalSegmentation(self.segmentation_model_path, s.segmentation_channels),
            "synthseg": ContrastAgnosticSegmentation(self.synthseg_model_path, self.synthseg_weights),
        }
        if self.synthseg_command is not None:
            infers["mri_synthseg"] = SynthSegAnnotator(self.synthseg_command)
        return infers

    def init_trainers(self):
        s = self.settings
        return {
            "segmentation": MultimodalSegmentationTrainer(
                self.model_dir / "segmentation" / "train", s.segmentation_channels,
                publish_path=self.segmentation_model_path, max_epochs=s.max_epochs,
                use_registration_labels=s.train_on_registration_labels,
            ),
            "synthseg": SynthSegTrainer(self.synthseg_model_path, s.synthseg_label_maps, s.synthseg_minutes,
                                        real_fraction=s.synthseg_real_fraction, shipped=self.synthseg_weights),
        }

    def init_strategies(self):
        # MONAI Label's own: first = the first unlabelled image in name order.
        return {"random": Random(), "first": First()}

    # -- requests ---------------------------------------------------------------------------------

    def infer(self, request, datastore=None):
        """MONAI Label's infer with the app's rules (lib.infers.requests): the image is a datastore id (or
        the endpoint's own upload), presets by name, never a final label written, errors as 4xx with a message."""
        return run_infer(self._infers, request, datastore or self.datastore(), trusted_input=TRUSTED_INPUT.get())

    def next_sample(self, request):
        strategy = request.get("strategy") or "random"
        if strategy not in self._strategies:
            raise NotFound(f"unknown strategy {str(strategy)[:80]!r}; available: {', '.join(self._strategies)}")
        return super().next_sample(request)

    def train(self, request):
        # Runs in MONAI Label's training subprocess, whose last 20 output lines GET /train/ shows:
        # any failure ends with one line that says why (not a transform's repr deep in a traceback).
        try:
            if request.get("model") not in self._trainers:
                raise NotFound(f"unknown trainer {request.get('model')!r}; available: {', '.join(self._trainers)}")
            return super().train(request)
        except Exception as error:
            message = status_and_message(error)[1]
            logger.error(f"training {request.get('model')} failed: {message}", exc_info=error)
            raise TrainingFailed(f"training {request.get('model')} failed: {message}") from None
