"""Segmentation by registration of labelled atlases: needs no training and no weights.

Atlases are subjects synthesised from the shipped SynthSeg label maps (one T1-, T2- and
FLAIR-like image each, no misalignment). The case is inspected first (:mod:`.foreground`):
a skull-stripped brain is matched with atlases stripped the same way, a whole head is cut
below the brain stem (no neck), and both are cropped to the subject. Each atlas image of
the contrast that the case has is registered onto the case with elastix, its 1 mm labels
are warped with nearest-neighbour interpolation onto the case's grid, and the labels are
fused with the case's own intensities (:mod:`.label_fusion`: a bias field, then the votes as
the prior of a Gaussian intensity model per tissue class). An atlas that elastix cannot register,
or whose result is implausible, is left out of the vote and the report says why; when no
atlas succeeds the case is refused with the reasons. The result holds contiguous values
1..32 of the label table (0: background) on the case's grid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, RegistrationError
from .foreground import Foreground, crop, find_foreground, paste
from ..data.geometry import grid_like
from ..data.images import image_from_array
from .label_fusion import fuse_with_intensities
from ..data.labels import SYNTHSEG_FREESURFER_IDS, freesurfer_to_values
from ..data.modalities import CONTRASTS
from ..data.multimodal import pick_channel
from ..runtime.processes import CancelToken
from ..registration.itk_images import register_modality, warp_labels
from ..synthetic.sample_data import SubjectSpec, generate_subject, label_map_paths

# Atlases made from the first 12 shipped label maps: on real scans (benchmarks/real_segmentation.py)
# 12 gained 0.01-0.02 mean Dice over 8 and 16 gained nothing more; maps 13-16 stay unseen by the
# default model, for generated test subjects.
DEFAULT_ATLASES = 12
ATLAS_SPACING_MM = 2.0
# Atlas registration needs the whole brain in the image: a field of view smaller than this along
# an axis (mm) is not a brain scan, or not all of one.
MIN_EXTENT_MM = 40.0
# A registered atlas whose brain covers less or more than this ratio of its own brain volume
# on the case has most likely failed (wrong start, folded B-spline).
PLAUSIBLE_BRAIN_RATIO = (0.5, 2.0)


@dataclass(frozen=True)
class Atlas:
    folder: Path
    spacing_mm: float
    source_labels_path: Path  # the label map it was made from (1 mm): sharper labels to warp onto finer cases

    def image_path(self, contrast: str) -> Path:
        return self.folder / f"{contrast}.nii.gz"

    @property
    def labels_path(self) -> Path:
        return self.folder / "labels.nii.gz"

    def registration_image(self, contrast: str, skull_stripped: bool) -> Any:
        """The atlas image of ``contrast``, stripped to the brain (and its CSF) or cut like a whole head."""
        import itk

        image = itk.imread(str(self.image_path(contrast)), itk.F)
        if skull_stripped:
            labels = itk.array_view_from_image(itk.imread(str(self.labels_path), itk.US))
            intracranial = np.isin(labels, SYNTHSEG_FREESURFER_IDS)
            image = image_from_array(np.where(intracranial, itk.array_view_from_image(image), 0).astype(np.float32), image)
        return crop(image, find_foreground(image, skull_stripped=skull_stripped).box)


def build_atlases(
    folder: str | Path, count: int = DEFAULT_ATLASES, spacing_mm: float = ATLAS_SPACING_MM, first_map: int = 0,
) -> list[Atlas]:
    """Synthesise (once; cached in ``folder``) ``count`` atlases from the shipped label maps."""
    folder = Path(folder)
    maps = label_map_paths()
    if not 1 <= count <= len(maps) - first_map:
        raise InputError("atlases", f"between 1 and {len(maps) - first_map} atlases can be built, not {count}")
    atlases = []
    for index in range(first_map, first_map + count):
        target = folder / f"atlas-{index:02d}-{spacing_mm:g}mm"
        description = target / "subject.json"
        if not description.exists() or json.loads(description.read_text()).get("label_map") != maps[index].name:
            spec = SubjectSpec(seed=1000 + index, spacing_mm=spacing_mm, label_map=str(maps[index]),
                               max_rotation_deg=0.0, max_translation_mm=0.0, lesions=0)
            generate_subject(spec, target)
        atlases.append(Atlas(target, spacing_mm, maps[index]))
    return atlases


def _at_least(image: Any, spacing_mm: float) -> Any:
    """``image`` resampled (smoothed, linear) to ``spacing_mm`` where it is finer; else itself."""
    import itk

    spacing = np.array(image.GetSpacing())
    if spacing_mm <= 0 or np.all(spacing >= spacing_mm * 0.99):
        return image
    from ..registration.resolution import smooth_to_match

    grid = grid_like(image, np.maximum(spacing, spacing_mm))
    return itk.resample_image_filter(smooth_to_match(image, grid), use_reference_image=True, reference_image=grid)


@lru_cache(maxsize=32)
def _brain_ml(label_map: Path) -> float:
    """Volume of the 32 structures in a label map (ml); read once per map."""
    import itk

    labels = itk.imread(str(label_map), itk.US)
    return float(np.count_nonzero(freesurfer_to_values(itk.array_view_from_image(labels)))) * (
        float(np.prod(labels.GetSpacing())) / 1000.0)


def _plausibility(warped: np.ndarray, atlas_brain_ml: float, voxel_ml: float) -> str | None:
    ratio = float(np.count_nonzero(warped)) * voxel_ml / atlas_brain_ml
    low, high = PLAUSIBLE_BRAIN_RATIO
    if not low <= ratio <= high:
        return f"implausible result: the warped brain is {ratio:.2f} times the atlas's own (registration failed)"
    return None


def segment_with_atlases(
    channels: Mapping[str, Any],
    atlases: Sequence[Atlas],
    *,
    preset: str = "atlas-deformable",
    engine: str = "itk",
    threads: int | None = None,
    skull_stripped: bool | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Label image (uint8, values 1..32) on the case's grid, and a report.

    ``skull_stripped``: None detects it (see :mod:`.foreground`). Raises InputError when no
    atlas can be registered (the reasons are in the message).
    """
    import itk

    channel, image = pick_channel(channels, CONTRASTS)
    contrast = channel if channel in CONTRASTS else "t1"
    extent = np.array(image.GetSpacing()) * np.array(image.GetLargestPossibleRegion().GetSize())
    if extent.min() < MIN_EXTENT_MM:
        raise InputError(channel, f"the image covers only {' x '.join(f'{e:g}' for e in extent.round(1))} mm: atlas "
                                  f"registration needs the whole brain in the field of view")
    try:
        foreground: Foreground = find_foreground(image, skull_stripped)
    except ValueError as error:
        raise InputError(channel, str(error)) from error
    case = crop(image, foreground.box)
    # Register at the atlases' resolution (a finer case adds time, not accuracy, to an atlas
    # match); labels are then warped onto the case's own grid from the 1 mm label maps.
    fixed = _at_least(case, min((a.spacing_mm for a in atlases), default=0.0))
    voxel_ml = float(np.prod(case.GetSpacing())) / 1000.0
    warped_labels, reports, failures = [], [], []
    for index, atlas in enumerate(atlases):
        if cancel:
            cancel.raise_if_cancelled()
        if progress:
            progress(index / (len(atlases) + 1), f"atlas {index + 1}/{len(atlases)}")
        moving = atlas.registration_image(contrast, foreground.skull_stripped)
        try:
            result = register_modality(fixed, moving, name=atlas.folder.name, preset=preset, engine=engine, threads=threads,
                                       log=log, cancel=cancel)
        except (RegistrationError, ValueError) as error:  # ValueError: nothing left to compare (a near-empty image)
            failures.append({"atlas": atlas.folder.name, "reason": _last_error_line(error)})
            continue
        source = itk.imread(str(atlas.source_labels_path), itk.US)
        warped = freesurfer_to_values(itk.array_view_from_image(warp_labels(source, result.transform, case)))
        problem = _plausibility(warped, _brain_ml(atlas.source_labels_path), voxel_ml)
        if problem:
            failures.append({"atlas": atlas.folder.name, "reason": problem})
            continue
        warped_labels.append(warped)
        reports.append({"atlas": atlas.folder.name, "metric_after": result.report["metric_after"],
                        "time_s": result.report["time_total_s"]})
    if not warped_labels:
        reasons = "; ".join(f"{f['atlas']}: {f['reason']}" for f in failures)
        raise InputError(channel, f"no atlas could be registered onto this image ({reasons}). Is it a brain MRI "
                                  f"({'skull-stripped' if foreground.skull_stripped else 'whole head'} as detected)?")
    if progress:
        progress(len(atlases) / (len(atlases) + 1), "fusing")
    fused, fusion = fuse_with_intensities(warped_labels, itk.array_view_from_image(case), np.array(case.GetSpacing())[::-1])
    full = paste(fused, foreground.box, tuple(itk.array_view_from_image(image).shape))
    report = {"channel": channel, "atlas_contrast": contrast, "preset": preset, **foreground.describe(),
              "fusion": "bias-corrected atlas votes, refined by a Gaussian intensity model per tissue class (EM)",
              **fusion, "atlases": reports, "failed_atlases": failures}
    return image_from_array(full, image), report


def _last_error_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    described = [line for line in lines if line.startswith("Description:")]
    return (described[-1].removeprefix("Description:").strip() if described else lines[0] if lines else type(error).__name__)[:300]
