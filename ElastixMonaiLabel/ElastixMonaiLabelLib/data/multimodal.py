"""The multimodal contract: how co-registered modalities of one case travel as one file.

A case is one NIfTI file, 4D channels-last (x, y, z, c) on the reference grid, its
channel names in the header's ``descrip`` field as ``channels=t1,t2,flair``. So the
file carries its own channel order wherever it goes (datastore, upload, disk), and
the server reads the names from the file it is given. A plain 3D volume is a case
with one channel (the upstream Slicer plugin sends only the first volume).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..runtime.files import atomic_path
from .geometry import image_ijk_to_ras, decompose_ijk_to_ras
from .images import grid_mismatch

_CHANNELS = re.compile(r"channels=([A-Za-z0-9_,.\-]+)")
# Names modalities go by in file names and DICOM series descriptions -> canonical channel name.
MODALITY_ALIASES = {
    "t1": ("t1", "t1w", "t1n", "mprage", "t1native"),
    "t1ce": ("t1ce", "t1c", "t1gd", "t1post", "t1contrast", "t1postcontrast", "t1ce3d"),
    "t2": ("t2", "t2w", "t2tse"),
    "flair": ("flair", "t2f", "t2flair"),
}


def canonical_channel(name: str) -> str:
    """'T1w' -> 't1', 'T2-FLAIR' -> 'flair', 'T1Gd' -> 't1ce'; unknown names lowercased as they are."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for canonical, aliases in MODALITY_ALIASES.items():
        if key in aliases:
            return canonical
    return key or name.lower()


def guess_modality(name: str) -> str | None:
    """The modality a volume's name suggests, or None.

    'BraTS2021_00000_t1ce' -> 't1ce', 'sub-01_acq-TSE_T2w' -> 't2', 'AX T2 FLAIR' -> 'flair',
    'T1 post contrast' -> 't1ce', 't1_mprage_sag' -> 't1'. Two-word names ('T2 FLAIR', 'T1 post')
    win over one word; later words win over earlier ones (BIDS puts the suffix last).
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    for size in (2, 1):
        for start in range(len(words) - size, -1, -1):
            key = "".join(words[start:start + size])
            for canonical, aliases in MODALITY_ALIASES.items():
                if key in aliases:
                    return canonical
    compact = "".join(words)
    for canonical, marker in (("flair", "flair"), ("t1", "mprage")):
        if marker in compact:
            return canonical
    return None


def check_modality_names(names: Sequence[str]) -> list[str]:
    """Canonical channel names for a case (reference first); InputError for empty, odd or repeated names."""
    canonical = []
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name or ""):
            raise InputError("modalities", f"{name!r} is not a usable modality name (letters, digits, '_', '-', e.g. t1, flair)")
        canonical.append(canonical_channel(name))
    repeated = sorted({n for n in canonical if canonical.count(n) > 1})
    if repeated:
        raise InputError("modalities", f"each modality may appear once; repeated: {', '.join(repeated)}")
    return canonical


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
    import itk
    import nibabel

    names = [canonical_channel(n) for n in channels]
    if not names:
        raise InputError(path, "a case needs at least one channel")
    if len(set(names)) != len(names):
        raise InputError(path, f"channel names repeat: {', '.join(channels)}")
    images = list(channels.values())
    for name, image in zip(channels, images[1:]):
        problem = grid_mismatch(image, images[0])
        if problem:
            raise InputError(name, f"is not on the reference grid ({problem}); co-register it first")
    stack = np.stack([itk.array_view_from_image(i).astype(np.float32).transpose(2, 1, 0) for i in images], axis=-1)
    nifti = nibabel.Nifti1Image(stack if len(images) > 1 else stack[..., 0], image_ijk_to_ras(images[0]))
    nifti.header["descrip"] = f"channels={','.join(names)}".encode()[:79]
    nifti.header.set_xyzt_units("mm")
    path = Path(path)
    with atomic_path(path) as tmp:
        nibabel.save(nifti, str(tmp))
    return path


def channel_names(path: str | Path) -> list[str]:
    """Channel names stored in a case file (a 3D file without names: ['image'])."""
    import nibabel

    header = nibabel.load(str(path)).header
    descrip = header["descrip"].tobytes().split(b"\0")[0].decode(errors="replace")
    count = int(header["dim"][4]) if int(header["dim"][0]) >= 4 else 1
    return names_from_descrip(descrip, count, path)


def names_from_descrip(descrip: str, count: int, path: str | Path) -> list[str]:
    """Channel names from a case file's descrip text (``channels=t1,t2``) for ``count`` channels."""
    match = _CHANNELS.search(descrip)
    if match:
        names = match.group(1).split(",")
        if len(names) != count:
            raise InputError(path, f"header names {len(names)} channels ({','.join(names)}) but the image has {count}")
        return names
    return ["image"] if count == 1 else [f"channel{i}" for i in range(count)]


def read_case(path: str | Path) -> dict[str, Any]:
    """Channels of a case file as ITK float images on its grid, in file order."""
    import itk
    import nibabel

    path = Path(path)
    try:
        nifti = nibabel.load(str(path))
    except Exception as error:  # nibabel raises several types for damaged files
        raise InputError(path, f"unreadable case file ({error})") from error
    names = channel_names(path)
    data = np.asarray(nifti.dataobj, dtype=np.float32)
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4 or min(data.shape[:3]) < 2:
        raise InputError(path, f"has shape {data.shape}; a 3D volume or a 4D channels-last stack is needed")
    if not np.isfinite(data).all():
        raise InputError(path, "contains NaN or infinite voxels")
    spacing, direction, origin = decompose_ijk_to_ras(nifti.affine)
    channels = {}
    for index, name in enumerate(names):
        image = itk.image_from_array(np.ascontiguousarray(data[..., index].transpose(2, 1, 0)))
        image.SetSpacing(spacing.tolist())
        image.SetOrigin(origin.tolist())
        image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(direction)))
        channels[name] = image
    return channels


def write_case_volumes(channels: Mapping[str, Any], path: str | Path) -> Path:
    """:func:`write_case` for voxels.VoxelVolume channels, with numpy alone (inside Slicer, which has no nibabel)."""
    from .nifti import write_nifti

    names = check_modality_names(list(channels))
    volumes = list(channels.values())
    for name, volume in zip(names[1:], volumes[1:]):
        problem = grid_mismatch(volume, volumes[0])
        if problem:
            raise InputError(name, f"is not on the reference grid ({problem}); co-register it first")
    stack = np.stack([np.asarray(v.array, dtype=np.float32) for v in volumes]) if len(volumes) > 1 else volumes[0].array
    return write_nifti(path, np.asarray(stack, dtype=np.float32), volumes[0].ijk_to_ras, f"channels={','.join(names)}")


def read_case_volumes(path: str | Path) -> dict[str, Any]:
    """:func:`read_case` as voxels.VoxelVolume channels, with numpy alone."""
    from .nifti import read_nifti
    from .voxels import VoxelVolume

    image = read_nifti(path)
    stack = image.array if image.array.ndim == 4 else image.array[None]
    names = names_from_descrip(image.descrip, stack.shape[0], path)
    return {name: VoxelVolume(np.asarray(channel, dtype=np.float32), image.ijk_to_ras) for name, channel in zip(names, stack)}


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
