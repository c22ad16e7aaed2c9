"""A SynthSeg-style generator as MONAI dictionary transforms: images synthesised from label maps alone.

SynthSeg's idea (Billot et al., 2023): a network that only ever sees images whose contrast,
resolution, bias and shape are drawn at random from a label map learns to segment any
contrast. Each step here is one small randomizable transform on torch tensors (CPU or GPU),
seeded through MONAI's ``set_random_state``; :func:`synthseg_transforms` chains them with
SynthSeg's default ranges (see Resources/SynthSeg/README.md).

Tensors are channel-first (1, X, Y, Z) label maps of FreeSurfer ids, oriented RAS so that
axis 0 runs left to right (the left/right flip relies on it).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from ElastixMonaiLabelLib.labels import SYNTHSEG_STRUCTURES

# Left/right FreeSurfer id pairs of the structures the generator knows (label maps carry both sides).
LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = (
    (2, 41), (3, 42), (4, 43), (5, 44), (7, 46), (8, 47), (10, 49), (11, 50), (12, 51), (13, 52),
    (17, 53), (18, 54), (26, 58), (28, 60), (30, 62), (136, 137), (163, 164),
)


def _as_float(value, device) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float32, device=device)


def _smooth_random_field(shape: Sequence[int], control: Sequence[int], std: float, generator: np.random.RandomState,
                         channels: int, device) -> torch.Tensor:
    """A random field made of the lowest ``control`` cosine (DCT) frequencies per axis, scaled to spread ``std``.

    Smooth by construction (no kinks, unlike trilinear upsampling of a coarse grid) and the
    same at any volume size.
    """
    coefficients = torch.from_numpy(generator.standard_normal((channels, *control)).astype(np.float32)).to(device)
    coefficients[(slice(None), 0, 0, 0)] = 0.0  # no constant term: a shift or global gain is not a bias
    bases = [torch.cos(math.pi * torch.arange(k, device=device, dtype=torch.float32)[:, None]
                       * (torch.arange(n, device=device, dtype=torch.float32)[None] + 0.5) / n)
             for k, n in zip(control, shape)]
    field = torch.einsum("cijk,ix,jy,kz->cxyz", coefficients, *bases)
    spread = field.flatten(1).std(dim=1).clamp_min(1e-6).view(channels, 1, 1, 1)
    return field * (std / spread)


class RandSpatialDeformd(Randomizable, MapTransform):
    """Random affine (scale, rotation, shear, translation) plus smooth elastic deformation, one warp for all keys.

    Labels (and images) are resampled with nearest-neighbour interpolation, so label values stay
    label values; what is moved in the label map is moved identically in every other key.
    """

    def __init__(self, keys: KeysCollection, scaling_bounds: float = 0.2, rotation_bounds_deg: float = 15.0,
                 shearing_bounds: float = 0.012, translation_bounds_vox: float = 0.0,
                 nonlinear_std: float = 4.0, nonlinear_control_points: int = 4, mode: str = "nearest") -> None:
        MapTransform.__init__(self, keys)
        self.scaling_bounds = scaling_bounds
        self.rotation_bounds = math.radians(rotation_bounds_deg)
        self.shearing_bounds = shearing_bounds
        self.translation_bounds = translation_bounds_vox
        self.nonlinear_std = nonlinear_std
        self.control = nonlinear_control_points
        self.mode = mode
        self._matrix = np.eye(3)
        self._shift = np.zeros(3)

    def randomize(self, data=None) -> None:
        scale = np.diag(self.R.uniform(1 - self.scaling_bounds, 1 + self.scaling_bounds, 3))
        rotation = np.eye(3)
        for axis, angle in enumerate(self.R.uniform(-self.rotation_bounds, self.rotation_bounds, 3)):
            c, s = math.cos(angle), math.sin(angle)
            i, j = [a for a in range(3) if a != axis]
            step = np.eye(3)
            step[i, i], step[i, j], step[j, i], step[j, j] = c, -s, s, c
            rotation = rotation @ step
        shear = np.eye(3) + (self.R.uniform(-self.shearing_bounds, self.shearing_bounds, (3, 3)) * (1 - np.eye(3)))
        self._matrix = rotation @ shear @ scale
        self._shift = self.R.uniform(-self.translation_bounds, self.translation_bounds, 3)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        first = d[self.first_key(d)]
        shape = first.shape[1:]
        device = first.device
        # Sampling grid in voxel units around the centre, then normalised to [-1, 1] for grid_sample.
        axes = [torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2 for n in shape]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # X, Y, Z, 3
        grid = grid @ _as_float(self._matrix, device).T + _as_float(self._shift, device)
        if self.nonlinear_std > 0:
            field = _smooth_random_field(shape, [self.control] * 3, self.nonlinear_std, self.R, 3, device)
            grid = grid + field.permute(1, 2, 3, 0)
        half = _as_float([(n - 1) / 2 for n in shape], device)
        normalised = (grid / half).flip(-1)[None]  # grid_sample wants (z, y, x) order for a (X, Y, Z) volume
        for key in self.key_iterator(d):
            volume = d[key].float()[None]
            warped = F.grid_sample(volume, normalised, mode=self.mode, padding_mode="zeros", align_corners=True)[0]
            d[key] = warped.to(d[key].dtype)
        return d


class RandFlipLeftRightd(Randomizable, MapTransform):
    """Mirror along axis 0 (left-right in RAS) with probability ``prob``; label keys swap left and right ids."""

    def __init__(self, keys: KeysCollection, label_keys: KeysCollection = ("label",), prob: float = 0.5,
                 pairs: Sequence[tuple[int, int]] = LEFT_RIGHT_PAIRS) -> None:
        MapTransform.__init__(self, keys)
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)
        self.prob = prob
        self.pairs = pairs
        self._flip = False

    def randomize(self, data=None) -> None:
        self._flip = self.R.rand() < self.prob

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        if not self._flip:
            return d
        for key in self.key_iterator(d):
            volume = torch.flip(d[key], dims=(1,))
            if key in self.label_keys:
                swapped = volume.clone()
                for left, right in self.pairs:
                    swapped[volume == left] = right
                    swapped[volume == right] = left
                volume = swapped
            d[key] = volume
        return d


class SynthesizeIntensitiesd(Randomizable, MapTransform):
    """An image from a label map: each generation class gets a random Gaussian (mean, std), every voxel a draw.

    Labels sharing a generation class (SynthSeg's ``generation_classes``) share one intensity
    distribution, so e.g. all cortex looks alike while its contrast to white matter is random.
    """

    def __init__(self, label_key: str, image_key: str, generation_labels: Sequence[int], generation_classes: Sequence[int],
                 mean_range: tuple[float, float] = (0.0, 250.0), std_range: tuple[float, float] = (0.0, 30.0)) -> None:
        MapTransform.__init__(self, [label_key])
        self.label_key, self.image_key = label_key, image_key
        lookup = np.zeros(max(generation_labels) + 1, dtype=np.int64)
        lookup[np.asarray(generation_labels)] = np.asarray(generation_classes)
        self._class_of_label = torch.from_numpy(lookup)
        self.n_classes = int(max(generation_classes)) + 1
        self.mean_range, self.std_range = mean_range, std_range
        self.means = np.zeros(self.n_classes)
        self.stds = np.zeros(self.n_classes)

    def randomize(self, data=None) -> None:
        self.means = self.R.uniform(*self.mean_range, self.n_classes)
        self.stds = self.R.uniform(*self.std_range, self.n_classes)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        labels = d[self.label_key].long()
        device = labels.device
        classes = self._class_of_label.to(device)[labels.clamp(0, len(self._class_of_label) - 1)]
        means = _as_float(self.means, device)[classes]
        stds = _as_float(self.stds, device)[classes]
        noise = torch.from_numpy(self.R.standard_normal(tuple(labels.shape)).astype(np.float32)).to(device)
        d[self.image_key] = (means + stds * noise).clamp_min(0.0)
        return d


def _gaussian_blur(volume: torch.Tensor, sigmas_vox: Sequence[float]) -> torch.Tensor:
    """Separable Gaussian blur of a (C, X, Y, Z) tensor; sigma in voxels per axis (0: untouched)."""
    out = volume[None]
    for axis, sigma in enumerate(sigmas_vox):
        if sigma <= 0.1:
            continue
        radius = max(1, int(math.ceil(3 * sigma)))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=volume.device)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = (kernel / kernel.sum()).view(1, 1, *[-1 if a == axis else 1 for a in range(3)])
        padding = [radius if a == axis else 0 for a in range(3)]
        channels = out.shape[1]
        out = F.conv3d(F.pad(out, [p for a in reversed(padding) for p in (a, a)], mode="replicate"),
                       kernel.repeat(channels, 1, 1, 1, 1), groups=channels)
    return out[0]


class RandResolutiond(Randomizable, MapTransform):
    """Simulate an acquisition at another resolution: slice-thickness blur, downsample, upsample back.

    With probability ``prob``: either one random axis gets a thickness from ``thick_range`` mm
    (thick-slice scans) or all axes one from ``iso_range`` mm; ``spacing`` is the input's voxel size.
    """

    def __init__(self, keys: KeysCollection, spacing: float = 1.0, prob: float = 0.75,
                 thick_range: tuple[float, float] = (1.0, 8.0), iso_range: tuple[float, float] = (1.0, 4.0)) -> None:
        MapTransform.__init__(self, keys)
        self.spacing, self.prob = spacing, prob
        self.thick_range, self.iso_range = thick_range, iso_range
        self.resolution = np.full(3, spacing)

    def randomize(self, data=None) -> None:
        self.resolution = np.full(3, self.spacing)
        if self.R.rand() >= self.prob:
            return
        if self.R.rand() < 0.5:
            self.resolution[self.R.randint(3)] = self.R.uniform(*self.thick_range)
        else:
            self.resolution[:] = self.R.uniform(*self.iso_range)
        self.resolution = np.maximum(self.resolution, self.spacing)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        factors = self.resolution / self.spacing
        if np.allclose(factors, 1.0):
            return d
        for key in self.key_iterator(d):
            volume = d[key].float()
            shape = volume.shape[1:]
            # Slice profile: a Gaussian whose FWHM-ish width matches the thickness (SynthSeg uses 0.75 x ratio).
            blurred = _gaussian_blur(volume, [0.75 * f if f > 1 else 0 for f in factors])
            low = [max(2, int(round(n / f))) for n, f in zip(shape, factors)]
            small = F.interpolate(blurred[None], size=low, mode="trilinear", align_corners=True)
            d[key] = F.interpolate(small, size=tuple(shape), mode="trilinear", align_corners=True)[0]
        return d


class RandBiasFieldd(Randomizable, MapTransform):
    """Multiplicative bias: exp of a smooth Gaussian field whose spread is drawn from U(0, ``max_std``)."""

    def __init__(self, keys: KeysCollection, max_std: float = 0.5, control_points: int = 4) -> None:
        MapTransform.__init__(self, keys)
        self.max_std, self.control = max_std, control_points
        self.std = 0.0

    def randomize(self, data=None) -> None:
        self.std = self.R.uniform(0, self.max_std)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            volume = d[key]
            field = _smooth_random_field(volume.shape[1:], [self.control] * 3, self.std, self.R, 1, volume.device)
            d[key] = volume * torch.exp(field)
        return d


class NormalizeGammad(Randomizable, MapTransform):
    """Scale to 0..1 (robust min/max), then raise to exp(N(0, ``gamma_std``)): a random non-linear contrast."""

    def __init__(self, keys: KeysCollection, gamma_std: float = 0.5, upper_percentile: float = 99.5) -> None:
        MapTransform.__init__(self, keys)
        self.gamma_std, self.upper = gamma_std, upper_percentile
        self.gamma = 1.0

    def randomize(self, data=None) -> None:
        self.gamma = float(np.exp(self.R.normal(0.0, self.gamma_std))) if self.gamma_std > 0 else 1.0

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            volume = d[key].float()
            flat = volume.flatten()
            sample = flat[:: max(1, flat.numel() // 200_000)]  # quantile of a subsample: fast on big volumes
            high = torch.quantile(sample, self.upper / 100)
            low = volume.min()
            scaled = ((volume - low) / (high - low).clamp_min(1e-6)).clamp(0.0, 1.0)
            d[key] = scaled ** self.gamma
        return d


class MapLabelsd(MapTransform):
    """FreeSurfer ids -> the label table's values 1..32 (everything else, skull and scalp included, -> 0)."""

    def __init__(self, keys: KeysCollection) -> None:
        MapTransform.__init__(self, keys)
        lookup = torch.zeros(max(s.freesurfer_id for s in SYNTHSEG_STRUCTURES) + 1, dtype=torch.long)
        for structure in SYNTHSEG_STRUCTURES:
            lookup[structure.freesurfer_id] = structure.value
        self._lookup = lookup

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            ids = d[key].long()
            inside = ids < len(self._lookup)
            values = torch.zeros_like(ids)
            values[inside] = self._lookup.to(ids.device)[ids[inside]]
            d[key] = values
        return d


def generation_tables(priors_dir) -> tuple[list[int], list[int]]:
    """SynthSeg's generation labels and classes (Resources/SynthSeg/priors)."""
    from pathlib import Path

    folder = Path(priors_dir)
    return (np.load(folder / "generation_labels.npy").astype(int).tolist(),
            np.load(folder / "generation_classes.npy").astype(int).tolist())


def synthseg_transforms(priors_dir, spacing: float = 1.0, label_key: str = "label", image_key: str = "image",
                        deform: bool = True, flip_prob: float = 0.5, resolution_prob: float = 0.75,
                        bias_max_std: float = 0.5, gamma_std: float = 0.5, mean_range=(0.0, 250.0),
                        std_range=(0.0, 30.0)) -> list:
    """The whole generator with SynthSeg's default ranges: label map in, (image, label values 0..32) out."""
    labels, classes = generation_tables(priors_dir)
    steps = []
    if deform:
        steps.append(RandSpatialDeformd(keys=[label_key], nonlinear_std=3.0 / spacing))
    steps += [
        RandFlipLeftRightd(keys=[label_key], label_keys=[label_key], prob=flip_prob),
        SynthesizeIntensitiesd(label_key, image_key, labels, classes, mean_range=mean_range, std_range=std_range),
        RandResolutiond(keys=[image_key], spacing=spacing, prob=resolution_prob),
        RandBiasFieldd(keys=[image_key], max_std=bias_max_std),
        NormalizeGammad(keys=[image_key], gamma_std=gamma_std),
        MapLabelsd(keys=[label_key]),
    ]
    return steps
