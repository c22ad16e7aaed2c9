"""A SynthSeg-style generator: images synthesised from label maps alone, on torch tensors (CPU or GPU).

SynthSeg's idea (Billot et al., 2023): a network that only ever sees images whose contrast,
resolution, bias and shape are drawn at random from a label map learns to segment any
contrast. The steps are batched functions on (B, C, X, Y, Z) tensors, computed on the
tensors' device. Two ways to use them:

- :class:`SynthSegGenerator`: a whole batch at once on the training device, parameters drawn
  on the host (a few numbers per sample) and copied without waiting for the device, noise
  drawn on the device: the training loop never stalls on the generator (no host-device sync).
- MONAI dictionary transforms (one sample, seeded through ``set_random_state``) chained by
  :func:`synthseg_transforms`, for pipelines and tests.

Tensors are label maps of FreeSurfer ids, oriented RAS so that axis 0 runs left to right
(the left/right flip relies on it). Defaults are SynthSeg's ranges (Resources/SynthSeg/README.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from ElastixMonaiLabelLib.data.labels import SYNTHSEG_FREESURFER_IDS, SYNTHSEG_STRUCTURES

# Left/right FreeSurfer id pairs of the structures the generator knows (label maps carry both sides).
LEFT_RIGHT_PAIRS: tuple[tuple[int, int], ...] = (
    (2, 41), (3, 42), (4, 43), (5, 44), (7, 46), (8, 47), (10, 49), (11, 50), (12, 51), (13, 52),
    (17, 53), (18, 54), (26, 58), (28, 60), (30, 62), (136, 137), (163, 164),
)
# Lookup tables cover FreeSurfer's ids (parcellations included; the shipped maps stop at 530); an id not
# in SynthSeg's generation labels is synthesised as background.
MAX_LABEL_ID = 16383


# ---------------------------------------------------------------------------------------------
# Lookup tables (label id -> something), applied by indexing: one gather, no host round trip.

def _lookup(pairs: Mapping[int, float | int], default, dtype) -> torch.Tensor:
    table = torch.full((MAX_LABEL_ID + 1,), default, dtype=dtype)
    for key, value in pairs.items():
        table[key] = value
    return table


def side_swap_table(pairs: Sequence[tuple[int, int]] = LEFT_RIGHT_PAIRS) -> torch.Tensor:
    table = torch.arange(MAX_LABEL_ID + 1)
    for left, right in pairs:
        table[left], table[right] = right, left
    return table


def value_table() -> torch.Tensor:
    """FreeSurfer id -> the label table's value 1..32 (anything else, skull and scalp too, -> 0)."""
    return _lookup({s.freesurfer_id: s.value for s in SYNTHSEG_STRUCTURES}, 0, torch.long)


def brain_table() -> torch.Tensor:
    """1 for the 32 brain structures' ids, 0 elsewhere: what a skull-stripped scan keeps."""
    return _lookup({i: 1.0 for i in SYNTHSEG_FREESURFER_IDS}, 0.0, torch.float32)


def apply_table(table: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return table.to(labels.device)[labels.long().clamp(0, MAX_LABEL_ID)]


def to_device(array, device: torch.device) -> torch.Tensor:
    """Host numbers to ``device`` without making the host wait for the device (pinned, async copy)."""
    tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


# ---------------------------------------------------------------------------------------------
# Batched steps.

@functools.lru_cache(maxsize=32)
def _cosine_basis(frequencies: int, size: int, device: torch.device) -> torch.Tensor:
    k = torch.arange(frequencies, dtype=torch.float32, device=device)[:, None]
    x = torch.arange(size, dtype=torch.float32, device=device)[None]
    return torch.cos(math.pi * k * (x + 0.5) / size)


def smooth_field(coefficients: torch.Tensor, shape: Sequence[int], std: torch.Tensor | float) -> torch.Tensor:
    """(B, C, k, k, k) cosine (DCT) coefficients -> a smooth (B, C, *shape) field whose spread is ``std``.

    Smooth by construction (no kinks, unlike trilinear upsampling of a coarse grid) and the
    same at any volume size. The constant term is dropped: a shift or a global gain is not a
    deformation or a bias. ``std``: a number or one per sample (B,).
    """
    coefficients = coefficients.clone()
    coefficients[..., 0, 0, 0] = 0.0
    bases = [_cosine_basis(k, int(n), coefficients.device) for k, n in zip(coefficients.shape[2:], shape)]
    field = torch.einsum("bcijk,ix,jy,kz->bcxyz", coefficients, *bases)
    spread = field.flatten(2).std(dim=2).clamp_min(1e-6)[..., None, None, None]
    if isinstance(std, torch.Tensor):
        return field * (std.reshape(-1, 1, 1, 1, 1) / spread)
    return field * (float(std) / spread)  # a number: no host-to-device copy (a blocking copy makes the host wait)


def sampling_grid(in_shape: Sequence[int], out_shape: Sequence[int], matrices: torch.Tensor, shifts: torch.Tensor,
                  field: torch.Tensor | None = None, mirror: torch.Tensor | None = None) -> torch.Tensor:
    """grid_sample's grid (B, X, Y, Z, 3) taking each output voxel p (centred voxel units) to
    M p + shift + field(p) in the input, mirrored along axis 0 where ``mirror`` is -1."""
    device = matrices.device
    axes = [torch.arange(n, dtype=torch.float32, device=device) - (n - 1) / 2 for n in out_shape]
    points = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # X, Y, Z, 3
    grid = torch.einsum("xyzj,bij->bxyzi", points, matrices) + shifts[:, None, None, None, :]
    if field is not None:
        grid = grid + field.permute(0, 2, 3, 4, 1)
    if mirror is not None:
        grid = grid * torch.stack([mirror, torch.ones_like(mirror), torch.ones_like(mirror)], dim=-1)[:, None, None, None]
    half = to_device([(n - 1) / 2 for n in in_shape], device)
    return (grid / half).flip(-1)  # grid_sample wants (z, y, x) order for an (X, Y, Z) volume


def warp(volumes: torch.Tensor, grid: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Resample (B, C, X, Y, Z) volumes on a :func:`sampling_grid` (zeros outside); keeps the dtype."""
    warped = F.grid_sample(volumes.float(), grid, mode=mode, padding_mode="zeros", align_corners=True)
    return warped.to(volumes.dtype)


def synthesize(labels: torch.Tensor, class_of_label: torch.Tensor, means: torch.Tensor, stds: torch.Tensor,
               noise: torch.Generator | None = None) -> torch.Tensor:
    """An image per label map: each voxel a draw from its generation class's Gaussian (means, stds: (B, K))."""
    classes = apply_table(class_of_label, labels).flatten(1)  # B, N
    mean = torch.gather(means, 1, classes).view(labels.shape)
    std = torch.gather(stds, 1, classes).view(labels.shape)
    draw = torch.randn(labels.shape, generator=noise, device=labels.device, dtype=torch.float32)
    return (mean + std * draw).clamp_min(0.0)


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


def simulate_resolution(volume: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """One (C, X, Y, Z) volume acquired ``factors`` times coarser per axis: slice-profile blur,
    downsample, upsample back (SynthSeg's blur sigma: 0.75 x the ratio)."""
    if np.allclose(factors, 1.0):
        return volume
    shape = volume.shape[1:]
    blurred = _gaussian_blur(volume.float(), [0.75 * f if f > 1 else 0 for f in factors])
    low = [max(2, int(round(n / f))) for n, f in zip(shape, factors)]
    small = F.interpolate(blurred[None], size=low, mode="trilinear", align_corners=True)
    return F.interpolate(small, size=tuple(shape), mode="trilinear", align_corners=True)[0]


def normalize_gamma(volumes: torch.Tensor, gammas: torch.Tensor, upper_percentile: float = 99.5) -> torch.Tensor:
    """Per sample: robust min/max to 0..1, then raised to its gamma (B,)."""
    flat = volumes.float().flatten(1)
    sample = flat[:, :: max(1, flat.shape[1] // 200_000)]  # quantile of a subsample: fast on big volumes
    high = torch.quantile(sample, upper_percentile / 100, dim=1)
    low = flat.min(dim=1).values
    shape = (-1,) + (1,) * (volumes.ndim - 1)
    scaled = ((volumes - low.view(shape)) / (high - low).clamp_min(1e-6).view(shape)).clamp(0.0, 1.0)
    return scaled ** gammas.view(shape)


# ---------------------------------------------------------------------------------------------
# Random draws, shared by the batched generator and the transforms (host numbers, numpy RandomState).

def draw_affine(R: np.random.RandomState, count: int, scaling: float, rotation_deg: float, shearing: float,
                translation: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` matrices (rotation @ shear @ scale) and shifts (voxels)."""
    matrices = np.empty((count, 3, 3))
    limit = math.radians(rotation_deg)
    for index in range(count):
        scale = np.diag(R.uniform(1 - scaling, 1 + scaling, 3))
        rotation = np.eye(3)
        for axis, angle in enumerate(R.uniform(-limit, limit, 3)):
            c, s = math.cos(angle), math.sin(angle)
            i, j = [a for a in range(3) if a != axis]
            step = np.eye(3)
            step[i, i], step[i, j], step[j, i], step[j, j] = c, -s, s, c
            rotation = rotation @ step
        shear = np.eye(3) + R.uniform(-shearing, shearing, (3, 3)) * (1 - np.eye(3))
        matrices[index] = rotation @ shear @ scale
    return matrices, R.uniform(-translation, translation, (count, 3))


def draw_resolution(R: np.random.RandomState, spacing: float, prob: float, thick_range, iso_range) -> np.ndarray:
    """Acquisition voxel size (mm, per axis): with ``prob`` one thick axis or a coarser isotropic grid."""
    resolution = np.full(3, spacing)
    if R.rand() >= prob:
        return resolution
    if R.rand() < 0.5:
        resolution[R.randint(3)] = R.uniform(*thick_range)
    else:
        resolution[:] = R.uniform(*iso_range)
    return np.maximum(resolution, spacing)


def random_state_dict(R: np.random.RandomState) -> dict:
    """A RandomState's state as plain values and a tensor (loadable by torch.load(weights_only=True))."""
    kind, keys, pos, has_gauss, cached = R.get_state()
    return {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "cached": float(cached)}


def load_random_state(R: np.random.RandomState, state: Mapping) -> None:
    R.set_state((state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"]))


def generation_tables(priors_dir) -> tuple[list[int], list[int]]:
    """SynthSeg's generation labels and classes (Resources/SynthSeg/priors)."""
    folder = Path(priors_dir)
    return (np.load(folder / "generation_labels.npy").astype(int).tolist(),
            np.load(folder / "generation_classes.npy").astype(int).tolist())


def class_table(generation_labels: Sequence[int], generation_classes: Sequence[int]) -> torch.Tensor:
    return _lookup(dict(zip(generation_labels, generation_classes)), 0, torch.long)


# ---------------------------------------------------------------------------------------------
# The batched generator.

class SynthSegGenerator:
    """SynthSeg's generator on a batch of label maps, on their device.

    Input: (B, 1, X, Y, Z) FreeSurfer ids (any dtype), RAS. Output: (image (B, 1, *out_shape)
    in 0..1, target (B, 1, *out_shape) values 0..32). Per sample: affine + smooth elastic
    deformation, random translation (and a random crop where ``out_shape`` is smaller than the
    input), left/right flip with label swap (all one resampling), per-class Gaussian
    intensities, with ``strip_prob`` a skull-stripped image (only the 32 brain structures keep
    intensity), acquisition resolution, bias field, gamma.

    The per-sample numbers come from a numpy RandomState, the voxel noise from a torch
    generator on the device; :meth:`state_dict` holds both, so a resumed run continues the
    same sequence.
    """

    def __init__(self, priors_dir, spacing: float, device: torch.device | str = "cpu", out_shape: Sequence[int] | None = None,
                 seed: int = 0, scaling_bounds: float = 0.2, rotation_bounds_deg: float = 15.0, shearing_bounds: float = 0.012,
                 translation_mm: float = 0.0, nonlinear_std_mm: float = 3.0, control_points: int = 4,
                 flip_prob: float = 0.5, mean_range=(0.0, 250.0), std_range=(0.0, 30.0), strip_prob: float = 0.0,
                 resolution_prob: float = 0.75, thick_range=(1.0, 8.0), iso_range=(1.0, 4.0), bias_max_std: float = 0.5,
                 gamma_std: float = 0.5) -> None:
        self.device = torch.device(device)
        self.spacing = spacing
        self.out_shape = tuple(out_shape) if out_shape else None
        self.affine = dict(scaling=scaling_bounds, rotation_deg=rotation_bounds_deg, shearing=shearing_bounds,
                           translation=translation_mm / spacing)
        self.nonlinear_std = nonlinear_std_mm / spacing
        self.control = control_points
        self.flip_prob, self.strip_prob = flip_prob, strip_prob
        self.mean_range, self.std_range = mean_range, std_range
        self.resolution = dict(prob=resolution_prob, thick_range=thick_range, iso_range=iso_range)
        self.bias_max_std, self.gamma_std = bias_max_std, gamma_std
        labels, classes = generation_tables(priors_dir)
        self.n_classes = int(max(classes)) + 1
        self.class_of_label = class_table(labels, classes).to(self.device)
        self.swap = side_swap_table().to(self.device)
        self.values = value_table().to(self.device)
        self.brain = brain_table().to(self.device)
        self.R = np.random.RandomState(seed)
        self.noise = torch.Generator(device=self.device)
        self.noise.manual_seed(seed)

    def state_dict(self) -> dict:
        return {"numpy": random_state_dict(self.R), "noise": self.noise.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        load_random_state(self.R, state["numpy"])
        self.noise.set_state(state["noise"].cpu())

    def __call__(self, label_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = label_maps.shape[0]
        in_shape = tuple(label_maps.shape[2:])
        out_shape = self.out_shape or in_shape
        R, device = self.R, label_maps.device
        # Every per-sample number first (host), then one async copy each.
        matrices, shifts = draw_affine(R, count, **self.affine)
        spare = np.maximum(np.array(in_shape) - np.array(out_shape), 0) / 2
        if spare.any():  # a smaller output is a random crop: anywhere in the input
            shifts = shifts + R.uniform(-spare, spare, (count, 3))
        field_coefficients = R.standard_normal((count, 3, *[self.control] * 3))
        mirror = np.where(R.rand(count) < self.flip_prob, -1.0, 1.0)
        means = R.uniform(*self.mean_range, (count, self.n_classes))
        stds = R.uniform(*self.std_range, (count, self.n_classes))
        strip = R.rand(count) < self.strip_prob
        resolutions = [draw_resolution(R, self.spacing, **self.resolution) for _ in range(count)]
        bias_stds = R.uniform(0, self.bias_max_std, count)
        bias_coefficients = R.standard_normal((count, 1, *[self.control] * 3))
        gammas = np.exp(R.normal(0.0, self.gamma_std, count)) if self.gamma_std > 0 else np.ones(count)

        field = None
        if self.nonlinear_std > 0:
            field = smooth_field(to_device(field_coefficients, device), out_shape, self.nonlinear_std)
        mirror_t = to_device(mirror, device)
        grid = sampling_grid(in_shape, out_shape, to_device(matrices, device), to_device(shifts, device), field, mirror_t)
        labels = warp(label_maps, grid, "nearest").long()
        flipped = (mirror_t < 0).view(-1, 1, 1, 1, 1)
        labels = torch.where(flipped, apply_table(self.swap, labels), labels)  # mirrored: left ids become right ids

        image = synthesize(labels, self.class_of_label, to_device(means, device), to_device(stds, device), self.noise)
        if strip.any():
            keep = torch.where(to_device(strip, device).bool().view(-1, 1, 1, 1, 1), apply_table(self.brain, labels),
                               torch.ones((), device=device))
            image = image * keep
        image = torch.stack([simulate_resolution(image[b], resolutions[b] / self.spacing) for b in range(count)])
        bias = smooth_field(to_device(bias_coefficients, device), out_shape, to_device(bias_stds, device))
        image = normalize_gamma(image * torch.exp(bias), to_device(gammas, device))
        return image, apply_table(self.values, labels)


# ---------------------------------------------------------------------------------------------
# The same steps as MONAI dictionary transforms (one sample, channel-first (C, X, Y, Z)).

class RandSpatialDeformd(Randomizable, MapTransform):
    """Random affine (scale, rotation, shear, translation) plus smooth elastic deformation, one warp for all keys.

    Labels (and images) are resampled with nearest-neighbour interpolation, so label values stay
    label values; what is moved in the label map is moved identically in every other key.
    """

    def __init__(self, keys: KeysCollection, scaling_bounds: float = 0.2, rotation_bounds_deg: float = 15.0,
                 shearing_bounds: float = 0.012, translation_bounds_vox: float = 0.0,
                 nonlinear_std: float = 4.0, nonlinear_control_points: int = 4, mode: str = "nearest") -> None:
        MapTransform.__init__(self, keys)
        self.affine = dict(scaling=scaling_bounds, rotation_deg=rotation_bounds_deg, shearing=shearing_bounds,
                           translation=translation_bounds_vox)
        self.nonlinear_std = nonlinear_std
        self.control = nonlinear_control_points
        self.mode = mode
        self._matrix, self._shift = np.eye(3)[None], np.zeros((1, 3))
        self._coefficients = np.zeros((1, 3, *[nonlinear_control_points] * 3))

    def randomize(self, data=None) -> None:
        self._matrix, self._shift = draw_affine(self.R, 1, **self.affine)
        if self.nonlinear_std > 0:
            self._coefficients = self.R.standard_normal((1, 3, *[self.control] * 3))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        first = d[self.first_key(d)]
        shape, device = first.shape[1:], first.device
        field = None
        if self.nonlinear_std > 0:
            field = smooth_field(to_device(self._coefficients, device), shape, self.nonlinear_std)
        grid = sampling_grid(shape, shape, to_device(self._matrix, device), to_device(self._shift, device), field)
        for key in self.key_iterator(d):
            d[key] = warp(d[key][None], grid, self.mode)[0]
        return d


class RandFlipLeftRightd(Randomizable, MapTransform):
    """Mirror along axis 0 (left-right in RAS) with probability ``prob``; label keys swap left and right ids."""

    def __init__(self, keys: KeysCollection, label_keys: KeysCollection = ("label",), prob: float = 0.5,
                 pairs: Sequence[tuple[int, int]] = LEFT_RIGHT_PAIRS) -> None:
        MapTransform.__init__(self, keys)
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)
        self.prob = prob
        self.swap = side_swap_table(pairs)
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
                volume = apply_table(self.swap, volume).to(volume.dtype)
            d[key] = volume
        return d


class SynthesizeIntensitiesd(Randomizable, MapTransform):
    """An image from a label map: each generation class gets a random Gaussian (mean, std), every voxel a draw.

    Labels sharing a generation class (SynthSeg's ``generation_classes``) share one intensity
    distribution, so e.g. all cortex looks alike while its contrast to white matter is random.
    The voxel noise is drawn on the label map's device (seeded from this transform's state).
    """

    def __init__(self, label_key: str, image_key: str, generation_labels: Sequence[int], generation_classes: Sequence[int],
                 mean_range: tuple[float, float] = (0.0, 250.0), std_range: tuple[float, float] = (0.0, 30.0)) -> None:
        MapTransform.__init__(self, [label_key])
        self.label_key, self.image_key = label_key, image_key
        self._class_of_label = class_table(generation_labels, generation_classes)
        self.n_classes = int(max(generation_classes)) + 1
        self.mean_range, self.std_range = mean_range, std_range
        self.means = np.zeros((1, self.n_classes))
        self.stds = np.zeros((1, self.n_classes))
        self._noise_seed = 0

    def randomize(self, data=None) -> None:
        self.means = self.R.uniform(*self.mean_range, (1, self.n_classes))
        self.stds = self.R.uniform(*self.std_range, (1, self.n_classes))
        self._noise_seed = int(self.R.randint(2**31 - 1))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        labels = d[self.label_key]
        noise = torch.Generator(device=labels.device)
        noise.manual_seed(self._noise_seed)
        d[self.image_key] = synthesize(labels[None], self._class_of_label, to_device(self.means, labels.device),
                                       to_device(self.stds, labels.device), noise)[0]
        return d


class RandResolutiond(Randomizable, MapTransform):
    """Simulate an acquisition at another resolution: slice-thickness blur, downsample, upsample back.

    With probability ``prob``: either one random axis gets a thickness from ``thick_range`` mm
    (thick-slice scans) or all axes one from ``iso_range`` mm; ``spacing`` is the input's voxel size.
    """

    def __init__(self, keys: KeysCollection, spacing: float = 1.0, prob: float = 0.75,
                 thick_range: tuple[float, float] = (1.0, 8.0), iso_range: tuple[float, float] = (1.0, 4.0)) -> None:
        MapTransform.__init__(self, keys)
        self.spacing = spacing
        self.options = dict(prob=prob, thick_range=thick_range, iso_range=iso_range)
        self.resolution = np.full(3, spacing)

    def randomize(self, data=None) -> None:
        self.resolution = draw_resolution(self.R, self.spacing, **self.options)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            d[key] = simulate_resolution(d[key], self.resolution / self.spacing)
        return d


class RandBiasFieldd(Randomizable, MapTransform):
    """Multiplicative bias: exp of a smooth Gaussian field whose spread is drawn from U(0, ``max_std``)."""

    def __init__(self, keys: KeysCollection, max_std: float = 0.5, control_points: int = 4) -> None:
        MapTransform.__init__(self, keys)
        self.max_std, self.control = max_std, control_points
        self.std = 0.0
        self._coefficients = np.zeros((1, 1, *[control_points] * 3))

    def randomize(self, data=None) -> None:
        self.std = self.R.uniform(0, self.max_std)
        self._coefficients = self.R.standard_normal((1, 1, *[self.control] * 3))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        self.randomize()
        for key in self.key_iterator(d):
            volume = d[key]
            field = smooth_field(to_device(self._coefficients, volume.device), volume.shape[1:], self.std)[0]
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
            volume = d[key]
            d[key] = normalize_gamma(volume[None], to_device([self.gamma], volume.device), self.upper)[0]
        return d


class MapLabelsd(MapTransform):
    """FreeSurfer ids -> the label table's values 1..32 (everything else, skull and scalp included, -> 0)."""

    def __init__(self, keys: KeysCollection) -> None:
        MapTransform.__init__(self, keys)
        self._values = value_table()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = apply_table(self._values, d[key])
        return d


def synthseg_transforms(priors_dir, spacing: float = 1.0, label_key: str = "label", image_key: str = "image",
                        deform: bool = True, flip_prob: float = 0.5, resolution_prob: float = 0.75,
                        bias_max_std: float = 0.5, gamma_std: float = 0.5, mean_range=(0.0, 250.0),
                        std_range=(0.0, 30.0)) -> list:
    """The generator as transforms, with SynthSeg's default ranges: label map in, (image, label values 0..32) out."""
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
