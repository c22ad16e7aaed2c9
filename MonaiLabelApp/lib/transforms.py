"""The app's own MONAI transforms, small and composable like MONAI's (an array transform and its
dictionary version), and the loading chain of the ``segmentation`` model.

- ``SelectChannels`` / ``SelectChannelsd``: a model's channels, by name, out of a case of the
  project's multimodal contract (4D channels-last NIfTI, names in its header).
- ``MoveImagePathd``: MONAI Label's ``image_path`` string moved out of Spacingd's way.
- ``multimodal_pre_transforms``: what the ``segmentation`` infer task and its trainer both run.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import NdarrayOrTensor
from monai.transforms import (
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    NormalizeIntensityd,
    Orientationd,
    Spacingd,
    Transform,
)

from ElastixMonaiLabelLib.data.modalities import canonical_channel
from ElastixMonaiLabelLib.data.multimodal import channel_names
from ElastixMonaiLabelLib.errors import InputError

# The grid the segmentation model works on: 2 mm, so a 1 mm brain is done in seconds on 2 CPU cores.
SEGMENTATION_SPACING_MM = (2.0, 2.0, 2.0)


def case_channels(names: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Canonical channel names of a case whose header names ``names``; an unnamed 3D volume
    (MONAI's single name "image") counts as the first ``wanted`` channel."""
    names = [canonical_channel(n) for n in names]
    return [wanted[0]] if names == ["image"] else names


def missing_channels(path: str | Path, wanted: Sequence[str]) -> str | None:
    """Why the case file at ``path`` cannot give the ``wanted`` channels, or None when it can."""
    wanted = [canonical_channel(c) for c in wanted]
    try:
        names = case_channels(channel_names(path), wanted)
    except InputError as error:
        return error.problem
    missing = [c for c in wanted if c not in names]
    return f"has {','.join(names)} (missing {','.join(missing)})" if missing else None


class SelectChannels(Transform):
    """Pick channels by name from a channels-last image and put them first.

    Args:
        channels: the channels wanted, in the order the model reads them (any spelling
            ``canonical_channel`` knows: 'T1w' is t1).

    Call with the image, (x, y, z, c) or (x, y, z), its channel ``names`` (as the case's
    header gives them) and ``source`` (the file, for the error); returns (len(channels), x, y, z).
    A channel the image lacks is an ``InputError`` naming ``source`` (HTTP 422).
    """

    def __init__(self, channels: Sequence[str]) -> None:
        self.channels = [canonical_channel(c) for c in channels]

    def __call__(self, image: NdarrayOrTensor, names: Sequence[str], source: str = "case") -> NdarrayOrTensor:
        names = case_channels(names, self.channels)
        if image.ndim == 3:
            image = image[..., None]
        missing = [c for c in self.channels if c not in names]
        if missing:
            raise InputError(source, f"this model needs channels {','.join(self.channels)}; the case has "
                                     f"{','.join(names)} (missing {','.join(missing)})")
        picked = image[..., [names.index(c) for c in self.channels]]
        return picked.permute(3, 0, 1, 2) if isinstance(picked, torch.Tensor) else np.moveaxis(picked, -1, 0)


class SelectChannelsd(MapTransform):
    """Dictionary version of :class:`SelectChannels` for images loaded from case files.

    Args:
        keys: the images to select from (loaded by ``LoadImaged``: their meta data names the file,
            whose header names the channels; MONAI's readers drop that header field).
        channels: the channels every item gets, in order.
        channel_key: where an item names its own single channel instead (one model, many contrasts);
            items without it get ``channels``.
    """

    def __init__(self, keys: Sequence[Hashable] | Hashable, channels: Sequence[str] = (),
                 channel_key: str | None = None) -> None:
        super().__init__(keys)
        self.select = SelectChannels(channels)
        self.channel_key = channel_key

    def __call__(self, data: Mapping) -> dict:
        d = dict(data)
        select = SelectChannels([d[self.channel_key]]) if self.channel_key in d else self.select
        for key in self.key_iterator(d):
            path = d[key].meta["filename_or_obj"]
            d[key] = select(d[key], channel_names(path), Path(path).name)
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


def multimodal_pre_transforms(channels: Sequence[str], with_label: bool) -> list[Transform]:
    """The ``segmentation`` model's input: its channels of the case, RAS, at 2 mm, normalised per
    channel; with ``with_label``, the label beside it on the same grid (training)."""
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
        Spacingd(keys=keys, pixdim=SEGMENTATION_SPACING_MM, mode=("bilinear", "nearest") if with_label else "bilinear"),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
        EnsureTyped(keys=keys),
    ]
    return transforms
