"""Trainer of ``segmentation``: the multimodal SegResNet from the datastore's final labels (values 1..32).

Optionally (``--conf train_on_registration_labels true``) also from the labels atlas_registration
saved for images that have no final label. Before anything runs, the datastore must hold two
labelled images (one to validate on), each with every channel the model reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from monai.inferers import SlidingWindowInferer
from monai.losses import DiceCELoss
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped, RandCropByPosNegLabeld
from monailabel.tasks.train.basic_train import BasicTrainTask, Context

from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.modalities import canonical_channel

from ..http.errors import Conflict, InvalidRequest
from ..models.networks import NUM_CLASSES, SEGMENTATION_ROI, segresnet
from ..transforms import missing_channels, multimodal_pre_transforms


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

    def check_training_data(self, datalist: list[dict]) -> None:
        """Two labelled images at least (one to validate on), each with every channel the model reads."""
        if len(datalist) < 2:
            raise Conflict(f"training needs at least 2 labelled images (one to validate on); the datastore has "
                           f"{len(datalist)}: save final labels first")
        lacking = {Path(item["image"]).name: missing_channels(item["image"], self.channels) for item in datalist}
        lacking = {name: problem for name, problem in lacking.items() if problem}
        if lacking:
            raise InvalidRequest(f"{len(lacking)} of {len(datalist)} labelled images lack channels this model needs "
                                 f"({','.join(self.channels)}; --conf segmentation_channels): "
                                 + "; ".join(f"{name} {problem}" for name, problem in sorted(lacking.items())))

    def __call__(self, request, datastore):
        self.check_training_data(self.training_datalist(datastore))
        return super().__call__(request, datastore)

    def pre_process(self, request, datastore):
        return self.training_datalist(datastore)

    def network(self, context: Context):
        return segresnet(len(self.channels))

    def optimizer(self, context: Context):
        return torch.optim.AdamW(context.network.parameters(), lr=2e-3, weight_decay=1e-5)

    def loss_function(self, context: Context):
        return DiceCELoss(to_onehot_y=True, softmax=True)

    def train_pre_transforms(self, context: Context):
        return multimodal_pre_transforms(self.channels, with_label=True) + [
            RandCropByPosNegLabeld(keys=("image", "label"), label_key="label", spatial_size=SEGMENTATION_ROI, pos=1, neg=1, num_samples=2),
        ]

    def train_post_transforms(self, context: Context):
        return [
            EnsureTyped(keys="pred"),
            Activationsd(keys="pred", softmax=True),
            AsDiscreted(keys=("pred", "label"), argmax=(True, False), to_onehot=(NUM_CLASSES, NUM_CLASSES)),
        ]

    def val_pre_transforms(self, context: Context):
        return multimodal_pre_transforms(self.channels, with_label=True)

    def val_inferer(self, context: Context):
        return SlidingWindowInferer(roi_size=SEGMENTATION_ROI, sw_batch_size=2, overlap=0.25)
