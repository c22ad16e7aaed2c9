"""The app's one network: a SegResNet with background + SynthSeg's 32 structures out.

``segmentation`` uses it on the multimodal stack (several channels in, 8 filters);
``synthseg`` on one channel, at the width it was trained with (8 or 16 filters).
Imports torch and MONAI only: the GPU training command uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.networks.nets import SegResNet

from ElastixMonaiLabelLib.data.labels import SYNTHSEG_STRUCTURES

NUM_CLASSES = len(SYNTHSEG_STRUCTURES) + 1
DEFAULT_FILTERS = 8
# The patch the segmentation network is trained on and run on (sliding window), in voxels of its 2 mm grid.
SEGMENTATION_ROI = (64, 64, 64)
# The first convolution's output channels are the network's init_filters.
WIDTH_KEY = "convInit.conv.weight"


def segresnet(in_channels: int, init_filters: int = DEFAULT_FILTERS) -> torch.nn.Module:
    """SegResNet, 3D, ``in_channels`` in, NUM_CLASSES out (8 filters: 2.9 MB of weights, 16: 11.7 MB)."""
    return SegResNet(spatial_dims=3, in_channels=in_channels, out_channels=NUM_CLASSES, init_filters=init_filters,
                     blocks_down=(1, 2, 2, 2), blocks_up=(1, 1, 1), dropout_prob=0.1)


def init_filters_of(state: Mapping[str, torch.Tensor]) -> int:
    """The width (init_filters) a state dict of :func:`segresnet` was made with; the default when the state
    dict has no first convolution (it then fails the strict load, which names what is missing)."""
    weight = state.get(WIDTH_KEY)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim == 5 else DEFAULT_FILTERS


def synthseg_network_for(state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """The ``synthseg`` network (1 channel in) of the width of ``state``: what its weights must load into."""
    return segresnet(1, init_filters_of(state))
