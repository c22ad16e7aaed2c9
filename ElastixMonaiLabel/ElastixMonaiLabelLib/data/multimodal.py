"""The multimodal contract: how co-registered modalities of one case travel as one file.

A case is one NIfTI file, 4D channels-last (x, y, z, c) on the reference grid, its
channel names in the header's ``descrip`` field as ``channels=t1,t2,flair``. So the
file carries its own channel order wherever it goes (datastore, upload, disk), and
the server reads the names from the file it is given. A plain 3D volume is a case
with one channel (the upstream Slicer plugin sends only the first volume).

Cases are read and written with the core's NIfTI codec (:mod:`.nifti`, numpy alone), so the
Slicer module, the command line and the server read a case file the same way; :func:`read_case`
and :func:`write_case` convert its channels to and from ITK images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .geometry import image_from_slicer, image_to_slicer
from .images import grid_mismatch
from .modalities import canonical_channel, check_modality_names
from .nifti import NiftiHeader, read_header, read_nifti, write_nifti
from .voxels import VoxelVolume

_CHANNELS = re.compile(r"channels=([A-Za-z0-9_,.\-]+)")


def case_id(name: str, path: str | Path) -> str:
    """A datastore id for a case file: a readable name plus a digest of its content.

    Sending the same images twice reuses one datastore entry; different images never
    overwrite another case that happens to share the name.
    """
    import hashlib

    from .datastore_names import check_image_id

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_\-]+", "-", name).strip("-_")[:40] or "case"
    return check_image_id(f"{readable}-{digest}")  # the datastore's id rule, as the server checks it


def write_case(channels: Mapping[str, Any], path: str | Path) -> Path:
    """Write ITK images (same grid; the first is the reference) as one 4D channels-last NIfTI."""
    return write_case_volumes({name: VoxelVolume(*image_to_slicer(image)) for name, image in channels.items()}, path)


def write_case_volumes(channels: Mapping[str, VoxelVolume], path: str | Path) -> Path:
    """:func:`write_case` for voxels.VoxelVolume channels (numpy alone: also inside Slicer)."""
    if not channels:
        raise InputError(path, "a case needs at least one channel")
    names = check_modality_names(list(channels))
    volumes = list(channels.values())
    for name, volume in zip(names[1:], volumes[1:]):
        problem = grid_mismatch(volume, volumes[0])
        if problem:
            raise InputError(name, f"is not on the reference grid ({problem}); co-register it first")
    stack = np.stack([np.asarray(v.array, dtype=np.float32) for v in volumes]) if len(volumes) > 1 else volumes[0].array
    return write_nifti(path, np.asarray(stack, dtype=np.float32), volumes[0].ijk_to_ras, f"channels={','.join(names)}")


def channel_names(case: str | Path | NiftiHeader) -> list[str]:
    """Channel names stored in a case file, or its header (a 3D file without names: ['image'])."""
    header = case if isinstance(case, NiftiHeader) else read_header(case)
    return names_from_descrip(header.descrip, header.channels, header.path)


def names_from_descrip(descrip: str, count: int, path: str | Path) -> list[str]:
    """Channel names from a case file's descrip text (``channels=t1,t2``) for ``count`` channels."""
    match = _CHANNELS.search(descrip)
    if match:
        names = match.group(1).split(",")
        if len(names) != count:
            raise InputError(path, f"header names {len(names)} channels ({','.join(names)}) but the image has {count}")
        return names
    return ["image"] if count == 1 else [f"channel{i}" for i in range(count)]


def read_case_volumes(path: str | Path) -> dict[str, VoxelVolume]:
    """Channels of a case file as voxels.VoxelVolume (float32) in file order, checked (numpy alone)."""
    image = read_nifti(path)
    stack = image.array if image.array.ndim == 4 else image.array[None]
    names = names_from_descrip(image.descrip, stack.shape[0], path)
    return {name: VoxelVolume(np.asarray(channel, dtype=np.float32), image.ijk_to_ras) for name, channel in zip(names, stack)}


def read_case(path: str | Path) -> dict[str, Any]:
    """Channels of a case file as ITK float images on its grid, in file order."""
    return {name: image_from_slicer(volume.array, volume.ijk_to_ras) for name, volume in read_case_volumes(path).items()}


def pick_channel(channels: Mapping[str, Any], wanted: Sequence[str]) -> tuple[str, Any]:
    """The first channel whose canonical name is in ``wanted``; a single unnamed channel counts as the first wanted."""
    for name in wanted:
        for channel, image in channels.items():
            if canonical_channel(channel) == name:
                return channel, image
    if len(channels) == 1 and next(iter(channels)) == "image":
        return next(iter(channels.items()))
    raise InputError(
        "channels", f"this model needs one of {', '.join(wanted)}; the case has {', '.join(channels) or 'none'}"
    )
