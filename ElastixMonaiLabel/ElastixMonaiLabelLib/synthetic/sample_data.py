"""Multimodal sample subjects synthesised from SynthSeg label maps (no download).

From a whole-head label map (FreeSurfer ids) the generator makes T1-, T2- and
FLAIR-like volumes with realistic tissue ordering (T1: WM > GM > CSF; T2:
CSF > GM > WM; FLAIR: CSF dark, GM and lesions bright), partial-volume blur, a
smooth multiplicative bias field and noise; optional thick slices. Every moving
modality gets a known random rigid misalignment, written with the ground truth
(labels on the reference grid and each transform) to ``subject.json``.
Everything is reproducible from the seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.geometry import grid_like, image_centre, image_ijk_to_lps
from ..data.images import image_from_array, resample, write_volume
from ..data.labels import brain_mask_from_freesurfer
from ..data.modalities import CONTRASTS
from ..registration.transforms import itk_affine, write_linear_transform
from ..runtime.files import ensure_output_dir, write_text
from ..runtime.resources import resource_path

# Mean intensity per SynthSeg contrast-specific generation class (25 classes, see
# Resources/SynthSeg/priors). T1 means of brain classes come from SynthSeg's T1
# priors; T2/FLAIR are set here to follow real contrast. None: drawn per contrast.
_BRAIN_CLASS_MEANS = {
    #        T1     T2     FLAIR
    0: (0.0, 0.0, 0.0),  # background
    1: (44.0, 250.0, 22.0),  # CSF, ventricles
    2: (160.0, 70.0, 92.0),  # cerebral white matter
    3: (96.0, 112.0, 132.0),  # cortex, hippocampus, amygdala, caudate, accumbens
    4: (136.0, 76.0, 96.0),  # cerebellar white matter
    5: (88.0, 118.0, 128.0),  # cerebellar cortex
    6: (130.0, 96.0, 116.0),  # thalamus
    7: (124.0, 98.0, 118.0),  # putamen
    8: (152.0, 82.0, 104.0),  # pallidum
    9: (143.0, 86.0, 106.0),  # ventral DC
    10: (110.0, 190.0, 200.0),  # lesions
    11: (60.0, 40.0, 40.0),  # vessels
    12: (70.0, 200.0, 60.0),  # choroid plexus and similar
    13: (130.0, 86.0, 108.0),  # brain stem
}
# Lesion (white-matter hyperintensity) intensities: T1 dark, T2 and FLAIR bright.
_LESION_MEANS = (112.0, 185.0, 215.0)


def synthseg_priors() -> dict[str, np.ndarray]:
    """SynthSeg's generation priors: label ids, their contrast-specific tissue class, and the T1 class means."""
    folder = resource_path("SynthSeg", "priors")
    return {
        "labels": np.load(folder / "generation_labels.npy").astype(int),
        "classes": np.load(folder / "generation_classes_contrast_specific.npy").astype(int),
        "t1_means": np.load(folder / "prior_means_t1.npy")[0],
    }


def tissue_classes(labels: np.ndarray) -> np.ndarray:
    """The SynthSeg generation class of each voxel of a FreeSurfer-id label map (unknown ids: class 0)."""
    priors = synthseg_priors()
    class_of_label = np.zeros(max(int(labels.max()), int(priors["labels"].max())) + 1, dtype=np.int32)
    class_of_label[priors["labels"]] = priors["classes"]
    return class_of_label[labels]


def label_map_paths() -> list[Path]:
    """The SynthSeg training label maps shipped with the project."""
    return sorted(resource_path("SynthSeg", "label_maps").glob("*.nii.gz"))


def class_means(rng: np.random.Generator) -> np.ndarray:
    """(n_classes, 3) mean intensity per class and contrast, with per-subject jitter."""
    priors = synthseg_priors()
    n_classes = int(priors["classes"].max()) + 1
    means = np.zeros((n_classes, 3))
    # Extra-cerebral classes (skull, scalp, fat...): fixed per contrast so the head looks
    # consistent between subjects, T1 from SynthSeg's priors.
    head = np.random.default_rng(20240328).uniform(25, 190, size=(n_classes, 3))
    for cls in range(n_classes):
        means[cls] = _BRAIN_CLASS_MEANS.get(cls, (priors["t1_means"][cls], head[cls, 1], head[cls, 2]))
    return means * rng.uniform(0.93, 1.07, size=means.shape)


def bias_field(shape: tuple[int, ...], rng: np.random.Generator, strength: float) -> np.ndarray:
    """exp of a random cubic polynomial over the volume: smooth and low-frequency.

    ``strength`` is the standard deviation of the log field over the volume
    (0.1: intensities vary by about +-20 % across the head, as at 3 T).
    """
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    log_field = np.zeros(shape, dtype=np.float32)
    for degrees in [(a, b, c) for a in range(4) for b in range(4) for c in range(4) if 0 < a + b + c <= 3]:
        factors = [ax**d for ax, d in zip(axes, degrees)]
        log_field += rng.normal() * factors[0][:, None, None] * factors[1][None, :, None] * factors[2][None, None, :]
    spread = float(log_field.std())
    return np.exp(log_field * (strength / spread if spread > 0 else 0.0))


def _lesions(labels: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Boolean mask of a few small ellipsoids inside cerebral white matter."""
    white = np.isin(labels, (2, 41))
    mask = np.zeros(labels.shape, dtype=bool)
    candidates = np.argwhere(white)
    if not len(candidates):
        return mask
    grid = np.indices(labels.shape, sparse=True)
    for center in candidates[rng.choice(len(candidates), size=count, replace=False)]:
        radii = rng.uniform(2.0, 5.0, size=3)
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1
        mask |= inside & white
    return mask


def random_rigid(rng: np.random.Generator, max_rotation_deg: float, max_translation_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotation vector (radians, axis * angle) and translation with magnitudes in [0.5, 1] x max."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    angle = math.radians(max_rotation_deg) * rng.uniform(0.5, 1.0)
    return axis * angle, direction * max_translation_mm * rng.uniform(0.5, 1.0)


def rotation_matrix(rotation_vector: np.ndarray) -> np.ndarray:
    """Rodrigues' formula."""
    angle = float(np.linalg.norm(rotation_vector))
    if angle == 0:
        return np.eye(3)
    k = np.asarray(rotation_vector) / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def rigid_matrix(rotation_vector: np.ndarray, translation: np.ndarray, center: np.ndarray) -> np.ndarray:
    """4x4 LPS matrix of x -> R (x - c) + c + t."""
    rotation = rotation_matrix(rotation_vector)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = center + translation - rotation @ center
    return matrix


@dataclass(frozen=True)
class SubjectSpec:
    """What to generate; every field has a sensible default."""

    seed: int = 0
    spacing_mm: float = 2.0
    label_map: str | None = None  # path; default: one of the shipped maps chosen by the seed
    modalities: tuple[str, ...] = CONTRASTS
    reference: str = "t1"
    thick_slice_mm: dict[str, float] | None = None  # e.g. {"flair": 5.0}: slice thickness of a modality
    max_rotation_deg: float = 10.0
    max_translation_mm: float = 10.0
    bias_strength: float = 0.1  # standard deviation of the log bias field
    noise_percent: float = 2.0
    lesions: int = 4


def _slice_axis(image: Any) -> int:
    """Index axis closest to superior-inferior (where thick slices stack)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return int(np.argmax(np.abs(direction[2, :])))


def _smooth_for(anatomy_spacing: np.ndarray, target_spacing: np.ndarray) -> np.ndarray:
    # Gaussian slice profile: FWHM = target spacing; nothing to add where the target is finer.
    fwhm = np.sqrt(np.maximum(target_spacing**2 - anatomy_spacing**2, 0))
    return fwhm / 2.3548 / anatomy_spacing


@dataclass
class _Anatomy:
    """The subject's anatomy at the synthesis spacing: FreeSurfer labels, tissue classes, lesions, class means."""

    source: Any  # the label map as read (its grid defines the subject's extent)
    labels_fine: Any  # the labels on the synthesis grid (an ITK image)
    classes: np.ndarray
    means: np.ndarray
    lesion_mask: np.ndarray | None
    extent_mm: np.ndarray


def _anatomy(spec: SubjectSpec, label_path: Path, rng: np.random.Generator) -> _Anatomy:
    """Labels on a grid of up to half the target spacing (>= 1 mm): fine enough for partial volume,
    and keeps 2-3 mm test subjects fast."""
    import itk

    source = itk.imread(str(label_path), itk.US)
    synth_spacing = max(1.0, spec.spacing_mm / 2)
    extent = np.array(source.GetSpacing()) * np.array(source.GetLargestPossibleRegion().GetSize())
    labels_fine = resample(source, None, grid_like(source, (synth_spacing,) * 3, extent), "nearest")
    labels = itk.array_from_image(labels_fine).astype(np.int32)
    classes = tissue_classes(labels)
    means = class_means(rng)
    lesion_mask = _lesions(labels, rng, spec.lesions) if spec.lesions else None
    return _Anatomy(source, labels_fine, classes, means, lesion_mask, extent)


def _tissue(anatomy: _Anatomy, contrast: int, rng: np.random.Generator) -> np.ndarray:
    """The anatomy's intensities for one contrast (class means with a 3 % texture; lesions bright or dark)."""
    texture = rng.normal(1.0, 0.03, size=anatomy.classes.shape).astype(np.float32)
    values = (anatomy.means[anatomy.classes, contrast] * texture).astype(np.float32)
    if anatomy.lesion_mask is not None:
        values[anatomy.lesion_mask] = _LESION_MEANS[contrast] * rng.uniform(0.95, 1.05)
    return values


def _scan(spec: SubjectSpec, anatomy: _Anatomy, values: np.ndarray, contrast: int, matrix: np.ndarray | None, grid: Any,
          rng: np.random.Generator) -> Any:
    """What the scanner records: the tissue ``values`` moved by ``matrix`` (None: the reference, not moved),
    blurred with the slice profile of ``grid``'s spacing, sampled on ``grid``, with a bias field and noise."""
    import itk
    from scipy import ndimage

    fine = anatomy.labels_fine
    # The scanner sees the head moved: its voxel at point y shows the anatomy at
    # T^-1(y), T = reference -> modality. Move first, then blur with the slice
    # profile along the scanner's own axes, then sample its grid.
    if matrix is not None:
        values = itk.array_from_image(resample(image_from_array(values, fine), itk_affine(np.linalg.inv(matrix)), fine))
    # itk arrays are (k, j, i): reverse the per-axis sigmas.
    sigma = _smooth_for(np.array(fine.GetSpacing()), np.array(grid.GetSpacing())) + 0.5
    blurred = ndimage.gaussian_filter(values, sigma=sigma[::-1])
    volume = resample(image_from_array(blurred.astype(np.float32), fine), None, grid)
    values = itk.array_from_image(volume)
    values *= bias_field(values.shape, rng, spec.bias_strength)
    values += rng.normal(0, spec.noise_percent / 100 * anatomy.means[2, contrast], size=values.shape).astype(np.float32)
    return image_from_array(np.clip(values, 0, None).astype(np.float32), volume)


def _modality(spec: SubjectSpec, anatomy: _Anatomy, modality: str, reference_grid: Any, center: np.ndarray,
              out_dir: Path, rng: np.random.Generator) -> dict[str, Any]:
    """Write one modality (its scan and, for a moving one, its true transform); return its description."""
    contrast = CONTRASTS.index(modality)
    values = _tissue(anatomy, contrast, rng)  # the random draws keep their order: a seed gives the same subject
    spacing = np.full(3, spec.spacing_mm)
    if modality in (spec.thick_slice_mm or {}):
        spacing[_slice_axis(reference_grid)] = spec.thick_slice_mm[modality]
    if modality == spec.reference:
        matrix, rotation, translation, grid = np.eye(4), np.zeros(3), np.zeros(3), reference_grid
    else:
        rotation, translation = random_rigid(rng, spec.max_rotation_deg, spec.max_translation_mm)
        matrix = rigid_matrix(rotation, translation, center)
        grid = grid_like(anatomy.source, tuple(spacing), anatomy.extent_mm)
    file_name = f"{modality}.nii.gz"
    scan = _scan(spec, anatomy, values, contrast, None if modality == spec.reference else matrix, grid, rng)
    write_volume(scan, out_dir / file_name)
    entry = {
        "file": file_name,
        "spacing_mm": [float(s) for s in spacing],
        "size": [int(s) for s in grid.GetLargestPossibleRegion().GetSize()],
        "rotation_deg": float(np.degrees(np.linalg.norm(rotation))),
        "rotation_vector_rad": rotation.tolist(),
        "translation_mm": translation.tolist(),
        "center_lps": center.tolist(),
        "matrix_lps": matrix.tolist(),
    }
    if modality != spec.reference:
        entry["transform_file"] = f"truth/{modality}_to_{spec.reference}.tfm"
        ensure_output_dir(out_dir / "truth")
        write_linear_transform(matrix, out_dir / entry["transform_file"])
    return entry


def generate_subject(spec: SubjectSpec, out_dir: str | Path) -> dict[str, Any]:
    """Write a multimodal subject and its ground truth to ``out_dir``; return the subject description."""
    import itk

    out_dir = ensure_output_dir(out_dir)
    rng = np.random.default_rng(spec.seed)
    maps = label_map_paths()
    label_path = Path(spec.label_map) if spec.label_map else maps[spec.seed % len(maps)]
    anatomy = _anatomy(spec, label_path, rng)
    reference_grid = grid_like(anatomy.source, (spec.spacing_mm,) * 3, anatomy.extent_mm)
    center = image_centre(reference_grid)
    description: dict[str, Any] = {
        "seed": spec.seed,
        "label_map": label_path.name,
        "spacing_mm": spec.spacing_mm,
        "reference": spec.reference,
        "convention": "matrix_lps maps reference (fixed) LPS points to the modality's LPS points (ITK resampling direction)",
        "modalities": {m: _modality(spec, anatomy, m, reference_grid, center, out_dir, rng) for m in spec.modalities},
    }
    reference_labels = resample(anatomy.source, None, reference_grid, "nearest")
    write_volume(reference_labels, out_dir / "labels.nii.gz")
    brain = brain_mask_from_freesurfer(itk.array_view_from_image(reference_labels)).astype(np.uint8)
    write_volume(image_from_array(brain, reference_labels), out_dir / "brain_mask.nii.gz")
    description["labels"] = {"file": "labels.nii.gz", "values": "FreeSurfer ids", "brain_mask": "brain_mask.nii.gz"}
    description["reference_ijk_to_lps"] = image_ijk_to_lps(reference_grid).tolist()
    write_text(out_dir / "subject.json", json.dumps(description, indent=2) + "\n")
    return description
