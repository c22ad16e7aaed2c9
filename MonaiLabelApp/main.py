"""ElastixMonaiLabel's MONAI Label app: whole-brain segmentation of multimodal MRI.

Start it with (see docs/server.md):
    python -m monailabel.main start_server --app MonaiLabelApp --studies DATASTORE \
        --host 127.0.0.1 --port 8000 [--conf atlases 12] [--conf atlas_spacing 2] [--conf cache DIR]

Cases are 4D channels-last NIfTI files whose channel names travel in the header
(ElastixMonaiLabelLib.data.multimodal); a 3D volume is a one-channel case.

Access and data safety (docs/security.md): lib.http.guard (hosts, origins,
token, sizes, errors), lib.datastore.safe_datastore (ids, checks, history), lib.http.routes.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
from pathlib import Path

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.random import Random

APP_DIR = Path(__file__).resolve().parent
# In a checkout the core sits beside the app (it is also installed, editable, in .venv-server); in an installed
# package the app is inside the core's package, which is importable already.
if (APP_DIR.parent / "ElastixMonaiLabel" / "ElastixMonaiLabelLib").is_dir():
    sys.path.insert(0, str(APP_DIR.parent / "ElastixMonaiLabel"))

from ElastixMonaiLabelLib import __version__  # noqa: E402
from ElastixMonaiLabelLib.segmentation.atlases import ATLAS_SPACING_MM, DEFAULT_ATLASES  # noqa: E402
from ElastixMonaiLabelLib.data.datastore_names import check_image_id, check_label_tag  # noqa: E402
from ElastixMonaiLabelLib.errors import InputError  # noqa: E402
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES  # noqa: E402
from ElastixMonaiLabelLib.registration.presets import list_presets  # noqa: E402
from ElastixMonaiLabelLib.runtime.resources import cache_dir  # noqa: E402

from lib.infers.atlas_registration import AtlasRegistrationSegmentation  # noqa: E402
from lib.http.guard import GuardConfig, install, status_and_message  # noqa: E402
from lib.models.networks import init_filters_of, segresnet, synthseg_network_for  # noqa: E402
from lib.http.params import yes_no  # noqa: E402
from lib.datastore.safe_datastore import SafeDatastore  # noqa: E402
from lib.http.routes import TRUSTED_INPUT  # noqa: E402
from lib.infers.segmentation import MultimodalSegmentation, MultimodalSegmentationTrainer, missing_channels  # noqa: E402
from lib.strategies import First  # noqa: E402
from lib.infers.mri_synthseg import SynthSegAnnotator, configured_synthseg  # noqa: E402
from lib.infers.synthseg import ContrastAgnosticSegmentation, SynthSegTrainer, shipped_weights  # noqa: E402
from lib.datastore.volume_checks import VolumeLimits  # noqa: E402

logger = logging.getLogger(__name__)


class TrainingFailed(RuntimeError):
    """Why a training run stopped, in one line: GET /train/ shows the last lines of its output."""


class ElastixMonaiLabelApp(MONAILabelApp):
    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        # Who may connect and how much they may send (lib.http.guard); checked now, so a bad value stops the start.
        self.guard_config = GuardConfig.from_conf(conf)
        if self.guard_config.token and settings.MONAI_LABEL_AUTH_ENABLE:
            raise ValueError("--conf auth_token (or $ELASTIXMONAILABEL_TOKEN) and MONAI Label's own authentication "
                             "(MONAI_LABEL_AUTH_ENABLE) both use the Authorization header: choose one")
        self.volume_limits = VolumeLimits.from_conf(conf)
        self._guard_installed = False
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
        self.train_on_registration_labels = yes_no(conf.get("train_on_registration_labels"),
                                                   "--conf train_on_registration_labels")
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

    # -- models whose weights can be uploaded (PUT /model/{name}, lib.http.routes) -----------------

    def uploadable_models(self) -> list[str]:
        return ["segmentation", "synthseg"]

    def model_upload_target(self, name: str):
        """(where the weights go, state dict -> the fresh network they must load into) or None.

        synthseg's network is the weights' own width (8 or 16 filters), as inference loads it.
        """
        if name == "segmentation":
            return self.segmentation_model_path, lambda state: segresnet(len(self.segmentation_channels))
        if name == "synthseg":
            return self.synthseg_model_path, synthseg_network_for
        return None

    def model_upload_sidecar(self, name: str, spacing_mm: float | None, state) -> dict | None:
        """The JSON the synthseg model needs beside uploaded weights (its resolution and width)."""
        if name != "synthseg":
            return None
        current = self.synthseg_model_path.with_suffix(".json")
        previous = json.loads(current.read_text()) if current.exists() else {}
        return {"spacing_mm": float(spacing_mm or previous.get("spacing_mm", 2.0)), "init_filters": init_filters_of(state),
                "source": "uploaded (PUT /model/synthseg)"}

    # -- requests ---------------------------------------------------------------------------------

    def infer(self, request, datastore=None):
        """MONAI Label's infer with the app's rules: the image is a datastore id (or the endpoint's own
        upload), presets by name, never a final label written, errors as 4xx with a message."""
        model = request.get("model")
        task = self._infers.get(model)
        if task is None:
            raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {', '.join(self._infers)}")
        request = copy.deepcopy(request)
        request["description"] = task.description
        datastore = datastore or self.datastore()
        image = request.get("image")
        save_label = yes_no(request.get("save_label"), "save_label")
        tag = request.get("label_tag", "original")
        if isinstance(image, str) and image and image == TRUSTED_INPUT.get():
            save_label = False  # a file sent with the request is not in the datastore
        elif isinstance(image, str):
            try:
                check_image_id(image)
            except InputError as error:
                raise HTTPException(status_code=400, detail=f"{error} (infer reads datastore images by id, or a file sent "
                                                            "with the request)") from error
            if image not in datastore.list_images():
                raise HTTPException(status_code=404, detail=f"image {image!r} is not in the datastore")
            request["image"] = datastore.get_image_uri(image)
        elif image is None:
            raise HTTPException(status_code=422, detail="no image given")
        else:
            save_label = False  # an image in memory (MONAI Label's internal callers)
        if save_label:
            try:
                check_label_tag(tag)
            except InputError as error:
                raise HTTPException(status_code=400, detail=str(error)) from error
            if tag == "final":
                raise HTTPException(status_code=403, detail="a model never writes the final (reviewed) label: save_label "
                                    "takes another label_tag (default 'original'); save reviewed labels with PUT /datastore/label")
        if "preset" in request:
            names = [p.name for p in list_presets()]
            if request["preset"] not in names:
                raise HTTPException(status_code=422, detail=f"unknown preset {str(request['preset'])[:80]!r}: infer takes a "
                                                            f"preset name ({', '.join(names)})")
        request["save_label"] = save_label
        try:
            result_file, result_json = task(request)
        except HTTPException:
            raise
        except Exception as error:  # InputError, a failed registration...: 4xx with the reason; the rest a 500 that says so
            status, message = status_and_message(error)
            if status >= 500:
                logger.error(f"model {model} failed on {image!r}", exc_info=error)
                first = (str(error).strip().splitlines() or [""])[0][:300]
                message = f"model {model} failed on this image: {type(error).__name__}: {first} (see the server log)"
            raise HTTPException(status_code=status, detail=message) from error
        label_id = None
        if result_file and os.path.exists(result_file):
            label_id = datastore.save_label(image, result_file, tag, {"model": model, "params": result_json}) \
                if save_label else result_file
        return {"label": label_id, "tag": tag if save_label else "original", "file": result_file, "params": result_json}

    def next_sample(self, request):
        strategy = request.get("strategy") or "random"
        if strategy not in self._strategies:
            raise HTTPException(status_code=404, detail=f"unknown strategy {str(strategy)[:80]!r}; available: "
                                                        f"{', '.join(self._strategies)}")
        return super().next_sample(request)

    def train(self, request):
        # Runs in MONAI Label's training subprocess, whose last 20 output lines GET /train/ shows:
        # any failure ends with one line that says why (not a transform's repr deep in a traceback).
        try:
            return self._train(request)
        except Exception as error:
            message = status_and_message(error)[1]
            logger.error(f"training {request.get('model')} failed: {message}", exc_info=error)
            raise TrainingFailed(f"training {request.get('model')} failed: {message}") from None

    def _train(self, request):
        trainer = self._trainers.get(request.get("model"))
        if trainer is None:
            raise HTTPException(status_code=404, detail=f"unknown trainer {request.get('model')!r}; available: {', '.join(self._trainers)}")
        datalist = trainer.training_datalist(self.datastore()) if hasattr(trainer, "training_datalist") else None
        if datalist is not None and len(datalist) < 2:
            raise HTTPException(status_code=409, detail=f"training needs at least 2 labelled images (one to validate on); "
                                                        f"the datastore has {len(datalist)}: save final labels first")
        if datalist and hasattr(trainer, "channels"):
            lacking = {Path(item["image"]).name: missing_channels(item["image"], trainer.channels) for item in datalist}
            lacking = {name: problem for name, problem in lacking.items() if problem}
            if lacking:
                raise HTTPException(status_code=422, detail=(
                    f"{len(lacking)} of {len(datalist)} labelled images lack channels this model needs "
                    f"({','.join(trainer.channels)}; --conf segmentation_channels): "
                    + "; ".join(f"{name} {problem}" for name, problem in sorted(lacking.items()))))
        return super().train(request)
