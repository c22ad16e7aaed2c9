"""A multimodal sample subject made with numpy and scipy alone, for inside 3D Slicer.

sample_data.py makes the project's sample subjects with itk, which Slicer's Python does not
have. This generator follows the same recipe on arrays (a shipped SynthSeg label map, its
tissue classes given T1-, T2- and FLAIR-like intensities, a known random rigid motion per
moving modality, blur, a smooth bias field, noise) and returns volumes in memory, so that the
Slicer module's self-test and its Sample Data entry need nothing beyond Slicer. It reuses
sample_data's tissue intensities, bias field and motion model; it has no thick slices and no
lesions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..data.labels import brain_mask_from_freesurfer
from ..data.modalities import CONTRASTS
from ..data.nifti import read_nifti
from ..data.voxels import VoxelVolume, resample
from .sample_data import bias_field, class_means, label_map_paths, random_rigid, rigid_matrix, tissue_classes


@dataclass
class QuickSubject:
    """Volumes on their grids, the true transforms (reference LPS points -> modality LPS points) and a brain mask."""

    volumes: dict[str, VoxelVolume]
    truth_lps: dict[str, np.ndarray]
    brain_mask: VoxelVolume
    reference: str = "t1"
    info: dict = field(default_factory=dict)

    def alignment_error(self, modality: str, to_world_ras: np.ndarray) -> dict[str, float]:
        """Registration error (mm over the brain) of a modality whose volume a viewer now places by ``to_world_ras``
        (its node's parent transforms, to world): aligned, that matrix undoes the true motion."""
        from .evaluation import registration_error
        from ..data.geometry import apply_matrix, ras_to_lps_transform

        reference = self.volumes[self.reference]
        brain = apply_matrix(reference.ijk_to_lps, np.argwhere(self.brain_mask.array)[:, ::-1].astype(float))
        estimated = ras_to_lps_transform(np.linalg.inv(np.asarray(to_world_ras, dtype=float)))
        return registration_error(estimated, self.truth_lps[modality], brain)


def grid_over(volume: VoxelVolume, spacing_mm: float) -> np.ndarray:
    """IJK-to-RAS and size of a grid with ``volume``'s axes and corner covering its extent at ``spacing_mm``."""
    own = np.array(volume.GetSpacing())
    size_ijk = np.array(volume.GetLargestPossibleRegion().GetSize())
    size = np.maximum(2, np.ceil(own * size_ijk / spacing_mm - 1e-6)).astype(int)
    axes = volume.ijk_to_ras[:3, :3] / own
    corner = volume.ijk_to_ras[:3, 3] - axes @ (own / 2)
    matrix = np.eye(4)
    matrix[:3, :3] = axes * spacing_mm
    matrix[:3, 3] = corner + axes @ np.full(3, spacing_mm / 2)
    return matrix, tuple(int(n) for n in size[::-1])


def make_quick_subject(seed: int = 3, spacing_mm: float = 3.0, modalities: tuple[str, ...] = CONTRASTS,
                       max_rotation_deg: float = 10.0, max_translation_mm: float = 10.0,
                       noise_percent: float = 2.0, bias_strength: float = 0.1) -> QuickSubject:
    """A subject whose first modality is the reference; the others are moved by known rigid transforms."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    maps = label_map_paths()
    label_path = maps[seed % len(maps)]
    source = read_nifti(label_path)
    source_volume = VoxelVolume(source.array, source.ijk_to_ras)
    # Anatomy at half the target spacing (>= 1 mm), as sample_data.py: enough for partial volume.
    fine_spacing = max(1.0, spacing_mm / 2)
    fine_matrix, fine_shape = grid_over(source_volume, fine_spacing)
    labels = resample(VoxelVolume(source.array.astype(np.float32), source.ijk_to_ras),
                      VoxelVolume(np.zeros(fine_shape, np.uint8), fine_matrix), order=0).astype(np.int32)
    classes = tissue_classes(labels)
    means = class_means(rng)

    reference_matrix, reference_shape = grid_over(source_volume, spacing_mm)
    reference_grid = VoxelVolume(np.zeros(reference_shape, np.float32), reference_matrix)
    middle = (np.array(reference_shape[::-1], dtype=float) - 1) / 2
    center = (reference_grid.ijk_to_lps @ [*middle, 1.0])[:3]
    # Gaussian slice profile (FWHM = the target spacing), in voxels of the fine grid, plus sample_data's 0.5.
    sigma = math.sqrt(max(spacing_mm**2 - fine_spacing**2, 0.0)) / 2.3548 / fine_spacing + 0.5
    volumes, truth = {}, {}
    for modality in modalities:
        contrast = CONTRASTS.index(modality)
        texture = rng.normal(1.0, 0.03, size=classes.shape).astype(np.float32)
        anatomy = ndimage.gaussian_filter((means[classes, contrast] * texture).astype(np.float32), sigma)
        if modality == modalities[0]:
            matrix = np.eye(4)
        else:
            matrix = rigid_matrix(*random_rigid(rng, max_rotation_deg, max_translation_mm), center)
        # The scanner sees the head moved: its voxel at point y shows the anatomy at T^-1(y).
        values = resample(VoxelVolume(anatomy, fine_matrix), reference_grid, np.linalg.inv(matrix), order=1)
        values *= bias_field(values.shape, rng, bias_strength)
        values += rng.normal(0, noise_percent / 100 * means[2, contrast], size=values.shape).astype(np.float32)
        volumes[modality] = VoxelVolume(np.clip(values, 0, None).astype(np.float32), reference_matrix)
        truth[modality] = matrix
    reference_labels = resample(VoxelVolume(labels.astype(np.float32), fine_matrix), reference_grid, order=0)
    brain = VoxelVolume(brain_mask_from_freesurfer(reference_labels.astype(np.int32)).astype(np.uint8), reference_matrix)
    info = {"seed": seed, "spacing_mm": spacing_mm, "label_map": label_path.name,
            "convention": "truth_lps maps reference LPS points to the modality's LPS points (ITK resampling direction)"}
    return QuickSubject(volumes, truth, brain, modalities[0], info)
