"""Infer task ``segmentation``: a small SegResNet on the multimodal stack, CPU-sized.

Trained from the datastore's final labels (lib.trainers.segmentation); inference refuses
(ModelNotReady, HTTP 409, with what to do) until a model has been trained and published.
Sized for CPU: the stack is resampled to 2 mm and the network has 8 initial filters, so a
1 mm brain is done in seconds on 2 cores.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from monai.transforms import Activationsd, AsDiscreted, EnsureTyped
from monailabel.tasks.infer.basic_infer import BasicInferTask

from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES
from ElastixMonaiLabelLib.data.modalities import canonical_channel

from ..http.errors import ModelNotReady
from ..models.networks import SEGMENTATION_ROI, segresnet
from ..models.weights import load_strictly, read_state_dict
from ..transforms import multimodal_pre_transforms
from .results import label_params


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
        return multimodal_pre_transforms(self.channels, with_label=False)

    def inferer(self, data=None):
        return SlidingWindowInferer(roi_size=SEGMENTATION_ROI, sw_batch_size=2, overlap=0.25)

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
            raise ModelNotReady("the segmentation model has not been trained yet: save final labels for a few images, "
                                "then start training (POST /train/segmentation); atlas_registration needs no training "
                                "meanwhile")
        request = {**request, "device": "cpu" if not torch.cuda.is_available() else request.get("device", "cuda")}
        result_file, params = super().__call__(request, callbacks)
        return result_file, {**params, **label_params(), "model": "segmentation"}
