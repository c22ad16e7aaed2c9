"""The trainable ``segmentation`` model: a small SegResNet on the multimodal stack, CPU-sized.

Trains from the datastore's final labels; inference refuses (HTTP 409, with what to do)
until a model has been trained and published. Sized for CPU: the stack is resampled to
2 mm and the network has 8 initial filters, so a 1 mm brain is done in seconds on 2 cores.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from fastapi import HTTPException
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.transforms import (
    Activationsd,
    AsDiscreted,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    Spacingd,
)
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.tasks.train.basic_train import BasicTrainTask, Context

from ElastixMonaiLabelLib.errors import InputError
from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.modalities import canonical_channel
from ElastixMonaiLabelLib.data.multimodal import channel_names

from ..models.weights import load_strictly, read_state_dict
from ..models.networks import NUM_CLASSES, segresnet

logger = logging.getLogger(__name__)

SPACING_MM = (2.0, 2.0, 2.0)
ROI = (64, 64, 64)


def _case_channels(names: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Canonical channel names of a case; an unnamed 3D volume is the first wanted channel."""
    names = [canonical_channel(n) for n in names]
    return [wanted[0]] if names == ["image"] else names


def missing_channels(path: str | Path, wanted: Sequence[str]) -> str | None:
    """Why the case file at ``path`` cannot give the ``wanted`` channels, or None when it can."""
    wanted = [canonical_channel(c) for c in wanted]
    try:
        names = _case_channels(channel_names(path), wanted)
    except InputError as error:
        return error.problem
    missing = [c for c in wanted if c not in names]
    return f"has {','.join(names)} (missing {','.join(missing)})" if missing else None


class SelectChannelsd(MapTransform):
    """Pick the model's channels, in its order, from a channels-last case (names from the NIfTI header).

    Input: (x, y, z, c) or (x, y, z) loaded from a case file of the project's multimodal
    contract (names in its header). Output: channel-first (len(channels), x, y, z).
    ``channel_key``: where an item names its own single channel (one model, many contrasts).
    """

    def __init__(self, keys: Sequence[Hashable], channels: Sequence[str] = (), channel_key: str | None = None) -> None:
        super().__init__(keys)
        self.channels = [canonical_channel(c) for c in channels]
        self.channel_key = channel_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        wanted = [canonical_channel(d[self.channel_key])] if self.channel_key in d else self.channels
        for key in self.key_iterator(d):
            image = d[key]
            # MONAI's readers drop the header's descrip: read the names from the file itself.
            path = image.meta["filename_or_obj"]
            names = _case_channels(channel_names(path), wanted)
            if image.ndim == 3:
                image = image[..., None]
            missing = [c for c in wanted if c not in names]
            if missing:
                # An InputError (HTTP 422) naming the case: MONAI wraps it, the app's error handling finds it again.
                raise InputError(Path(path).name, f"this model needs channels {','.join(wanted)}; the case has "
                                                  f"{','.join(names)} (missing {','.join(missing)})")
            picked = image[..., [names.index(c) for c in wanted]]
            d[key] = picked.permute(3, 0, 1, 2) if isinstance(picked, torch.Tensor) else np.moveaxis(picked, -1, 0)
        return d


class MoveImagePathd(MapTransform):
    """Move MONAI Label's ``image_path`` to ``case_path``.

    MONAI 1.6's Spacingd updates every ``image_*`` entry as if it were a meta dict, and
    MONAI Label 0.8.5 puts the path string under ``image_path``: keep it out of the way.
    """

    def __init__(self) -> None:
        super().__init__(keys="image_path", allow_missing_keys=True)

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        if "image_path" in d:
            d["case_path"] = d.pop("image_path")
        return d


def _pre_transforms(channels: Sequence[str], with_label: bool) -> list:
    keys = ["image", "label"] if with_label else ["image"]
    transforms = [
        MoveImagePathd(),
        LoadImaged(keys=keys, reader="NibabelReader", image_only=True),
        SelectChannelsd(keys="image", channels=channels),
    ]
    if with_label:
        transforms.append(EnsureChannelFirstd(keys="label", channel_dim="no_channel"))
    transforms += [
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=SPACING_MM, mode=("bilinear", "nearest") if with_label else "bilinear"),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
        EnsureTyped(keys=keys),
    ]
    return transforms


class MultimodalSegmentation(BasicInferTask):
    """SegResNet on the co-registered stack; refuses until trained."""

    def __init__(self, model_path: Path, channels: Sequence[str]) -> None:
        self.channels = [canonical_channel(c) for c in channels]
        super().__init__(
            path=str(model_path),
            network=segresnet(len(self.channels)),
            type="segmentation",
            labels={s.name: s.value for s in SYNTHSEG_STRUCTURES},
            dimension=3,
            description=f"SegResNet on channels {','.join(self.channels)} at 2 mm, trained on this datastore's labels",
            load_strict=True,
        )

    def info(self):
        info = super().info()
        info["channels"] = {"all_of": self.channels}
        info["trained"] = Path(self.path[0] if isinstance(self.path, list) else self.path).exists()
        return info

    def is_valid(self) -> bool:
        return True  # listed before training, so clients see it and learn that it needs training

    def _get_network(self, device, data):
        """The published weights, loaded weights-only and strictly (MONAI Label's loader would accept a
        checkpoint that fits no layer); reloaded when the file changes."""
        path = self.get_path()
        modified = os.stat(path).st_mtime
        cached = self._networks.get(device)
        if cached and cached[1] == modified:
            return cached[0]
        network = copy.deepcopy(self.network).to(torch.device(device))
        load_strictly(network, read_state_dict(path, f"model file {path}", device=device), f"model file {path}")
        network.eval()
        self._networks[device] = (network, modified)
        return network

    def pre_transforms(self, data=None):
        return _pre_transforms(self.channels, with_label=False)

    def inferer(self, data=None):
        return SlidingWindowInferer(roi_size=ROI, sw_batch_size=2, overlap=0.25)

    def inverse_transforms(self, data=None):
        return []  # undo Spacingd/Orientationd: the label comes back on the case's grid

    def post_transforms(self, data=None):
        return [EnsureTyped(keys="pred"), Activationsd(keys="pred", softmax=True), AsDiscreted(keys="pred", argmax=True)]

    def writer(self, data, extension=None, dtype=None):
        """The label (values 0..32, uint8) on the case's own grid, with the case file's affine."""
        import nibabel

        prediction = data["pred"]
        array = np.asarray(prediction.array if hasattr(prediction, "array") else prediction).squeeze().astype(np.uint8)
        case = nibabel.load(data["case_path"])
        if array.shape != case.shape[:3]:
            raise RuntimeError(f"prediction of shape {array.shape} does not match the case's {case.shape[:3]}")
        output = Path(tempfile.mkdtemp(prefix="segmentation-")) / "label.nii.gz"
        nibabel.save(nibabel.Nifti1Image(array, case.affine), str(output))
        return str(output), data.get("result", {})

    def __call__(self, request, callbacks=None):
        model = Path(self.path[0] if isinstance(self.path, list) else self.path)
        if not model.exists():
            raise HTTPException(
                status_code=409,
                detail="the segmentation model has not been trained yet: save final labels for a few images, "
                "then start training (POST /train/segmentation); atlas_registration needs no training meanwhile",
            )
        request = {**request, "device": "cpu" if not torch.cuda.is_available() else request.get("device", "cuda")}
        result_file, params = super().__call__(request, callbacks)
        from .results import label_params

        return result_file, {**params, **label_params(), "model": "segmentation"}


class MultimodalSegmentationTrainer(BasicTrainTask):
    """Trains the SegResNet from the datastore's final labels (values 1..32)."""

    def __init__(
        self, model_dir: Path, channels: Sequence[str], publish_path: Path, max_epochs: int = 50,
        use_registration_labels: bool = False,
    ) -> None:
        self.channels = [canonical_channel(c) for c in channels]
        self.use_registration_labels = use_registration_labels
        super().__init__(
            str(model_dir), description="Train the multimodal SegResNet from final labels",
            config={"max_epochs": max_epochs, "val_split": 0.5, "tracking": "None", "dataset": "Dataset",
                    "dataloader": "DataLoader", "device": "cpu" if not torch.cuda.is_available() else "cuda"},
            amp=False, publish_path=str(publish_path), load_path=str(publish_path), labels={s.name: s.value for s in SYNTHSEG_STRUCTURES},
            disable_meta_tracking=False, tracking=None, load_strict=True,
        )

    def training_datalist(self, datastore) -> list[dict]:
        """Final labels first; then, if configured, labels the atlas model wrote (tag "original")."""
        datalist = datastore.datalist()
        if self.use_registration_labels:
            for image_id in datastore.list_images():
                tags = datastore.get_labels_by_image_id(image_id)
                if "final" not in tags and "original" in tags:
                    datalist.append({"image": datastore.get_image_uri(image_id),
                                     "label": datastore.get_label_uri(tags["original"], "original")})
        return datalist

    def pre_process(self, request, datastore):
        return self.training_datalist(datastore)

    def network(self, context: Context):
        return segresnet(len(self.channels))

    def optimizer(self, context: Context):
        return torch.optim.AdamW(context.network.parameters(), lr=2e-3, weight_decay=1e-5)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True)

    def train_pre_transforms(self, context: Context):
        return _pre_transforms(self.channels, with_label=True) + [
            RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=ROI, pos=1, neg=1, num_samples=2),
        ]

    def train_post_transforms(self, context: Context):
        return [
            EnsureTyped(keys="pred"),
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=(NUM_CLASSES, NUM_CLASSES)),
        ]

    def val_pre_transforms(self, context: Context):
        return _pre_transforms(self.channels, with_label=True)

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=ROI, sw_batch_size=2, overlap=0.25)
