"""Contrast-agnostic training from label maps alone (SynthSeg's principle), on CPU or GPU.

Every training sample is a fresh image synthesised from one of the label maps by the
generator in :mod:`lib.synthesis`, so the network never sees a real image and learns no
particular contrast; the same weights then segment T1, T2 or FLAIR. Optionally a share of
the iterations (``real_fraction``) uses real labelled images instead, one channel at a time.
Used by the server's ``synthseg`` train task and by benchmarks/synthseg.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.losses import DiceCELoss
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    EnsureTyped,
    Lambdad,
    LoadImaged,
    Orientationd,
    RandSpatialCropd,
    ResizeWithPadOrCropd,
    ScaleIntensityRangePercentilesd,
    Spacingd,
)

from .segmentation import network
from .synthesis import synthseg_transforms

logger = logging.getLogger(__name__)


@dataclass
class SynthSegTrainingConfig:
    """What a training run does; saved beside the weights so that a model says how it was made."""

    spacing_mm: float = 2.0
    roi: tuple[int, int, int] | None = None  # None: a 160 x 192 x 160 mm head box at spacing_mm (see head_roi)
    crop: tuple[int, int, int] | None = None  # random crops of the roi (small for tests); None: whole roi
    batch_size: int = 1
    learning_rate: float = 2e-3
    max_minutes: float = 30.0
    max_iterations: int = 100_000
    seed: int = 0
    workers: int = 0
    device: str = "cpu"
    real_fraction: float = 0.0  # share of iterations on the datastore's labelled images (0: label maps alone)
    label_maps: list[str] = field(default_factory=list)
    real_images: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.roi is None:
            self.roi = head_roi(self.spacing_mm)


def head_roi(spacing_mm: float) -> tuple[int, int, int]:
    """Voxels of a 160 x 192 x 160 mm box (an adult brain with margin) at ``spacing_mm``, each
    a multiple of 8 (the network halves the size three times)."""
    return tuple(max(8, int(8 * round(extent / spacing_mm / 8))) for extent in (160, 192, 160))


def label_map_transforms(config: SynthSegTrainingConfig, priors_dir) -> Compose:
    """Load a label map, bring it to RAS at the training spacing around the head, then synthesise."""
    steps = [
        LoadImaged(keys="label", image_only=True),
        EnsureChannelFirstd(keys="label"),
        Orientationd(keys="label", axcodes="RAS"),
        Spacingd(keys="label", pixdim=[config.spacing_mm] * 3, mode="nearest"),
        CropForegroundd(keys="label", source_key="label", margin=2),
        ResizeWithPadOrCropd(keys="label", spatial_size=config.roi),
        EnsureTyped(keys="label", data_type="tensor", track_meta=False),
        *synthseg_transforms(priors_dir, spacing=config.spacing_mm),
    ]
    if config.crop:
        steps.append(RandSpatialCropd(keys=["image", "label"], roi_size=config.crop, random_size=False))
    return Compose(steps).set_random_state(config.seed)


def real_image_transforms(config: SynthSegTrainingConfig) -> Compose:
    """One channel of a datastore case and its label (values 0..32), as the network sees a
    synthetic sample: RAS at the training spacing, the head box, intensities 0..1 (as
    segment_volume scales them)."""
    from .segmentation import SelectChannelsd

    keys = ["image", "label"]
    steps = [
        LoadImaged(keys=keys, reader="NibabelReader", image_only=True),
        SelectChannelsd(keys="image", channel_key="channel"),
        EnsureChannelFirstd(keys="label", channel_dim="no_channel"),
        Orientationd(keys=keys, axcodes="RAS"),
        Spacingd(keys=keys, pixdim=[config.spacing_mm] * 3, mode=("bilinear", "nearest")),
        CropForegroundd(keys=keys, source_key="label", margin=2),
        ResizeWithPadOrCropd(keys=keys, spatial_size=config.roi),
        ScaleIntensityRangePercentilesd(keys="image", lower=0, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys=keys, data_type="tensor", track_meta=False),
        Lambdad(keys="label", func=lambda label: label.long()),
    ]
    if config.crop:
        steps.append(RandSpatialCropd(keys=keys, roi_size=config.crop, random_size=False))
    return Compose(steps).set_random_state(config.seed)


def _endless(loader: DataLoader) -> Iterator[dict]:
    while True:
        yield from loader


def train_from_label_maps(
    label_maps: Sequence[str | Path], out_path: str | Path, priors_dir, config: SynthSegTrainingConfig | None = None,
    log: Callable[[str], None] = logger.info, stop: Callable[[], bool] | None = None,
    real_images: Sequence[Mapping[str, str]] = (),
) -> dict:
    """Train the network on images synthesised from ``label_maps``; save weights + config to ``out_path``.

    ``real_images`` ({"image": case file, "channel": name, "label": label file}) join in for
    ``config.real_fraction`` of the iterations, drawn at random (seeded). Stops after
    ``max_minutes`` or ``max_iterations`` (or when ``stop()`` says so). Returns the history:
    loss per iteration, iterations (of which on real images), minutes.
    """
    config = config or SynthSegTrainingConfig()
    config.label_maps = [str(p) for p in label_maps]
    config.real_images = [f"{item['image']}:{item['channel']}" for item in real_images]
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    # The label maps' loading and resampling (deterministic) is done once and cached; the
    # synthesis after it is new at every iteration.
    dataset = CacheDataset([{"label": str(p)} for p in label_maps], transform=label_map_transforms(config, priors_dir),
                           cache_rate=1.0, num_workers=None, progress=False, copy_cache=True)
    synthetic = _endless(DataLoader(dataset, batch_size=config.batch_size, shuffle=True, num_workers=config.workers,
                                    generator=torch.Generator().manual_seed(config.seed)))
    real = None
    if real_images and config.real_fraction > 0:
        real_set = CacheDataset([dict(item) for item in real_images], transform=real_image_transforms(config),
                                cache_rate=1.0, num_workers=None, progress=False, copy_cache=True)
        real = _endless(DataLoader(real_set, batch_size=config.batch_size, shuffle=True, num_workers=0,
                                   generator=torch.Generator().manual_seed(config.seed + 1)))
    draw = np.random.default_rng(config.seed)
    model = network(1).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-5)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    started = time.perf_counter()
    losses: list[float] = []
    iteration = real_iterations = 0
    model.train()
    while iteration < config.max_iterations:
        use_real = real is not None and draw.random() < config.real_fraction
        batch = next(real if use_real else synthetic)
        real_iterations += use_real
        image, label = batch["image"].to(device), batch["label"].to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_function(model(image), label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        iteration += 1
        minutes = (time.perf_counter() - started) / 60
        if iteration % 10 == 0:
            log(f"iteration {iteration}: loss {np.mean(losses[-10:]):.4f} ({minutes:.1f} min)")
        if minutes >= config.max_minutes or (stop and stop()):
            break
    minutes = (time.perf_counter() - started) / 60
    save_model(model, config, out_path, {"iterations": iteration, "real_image_iterations": real_iterations,
                                         "minutes": round(minutes, 2),
                                         "final_loss": float(np.mean(losses[-20:])) if losses else None})
    return {"losses": losses, "iterations": iteration, "real_image_iterations": real_iterations, "minutes": minutes}


def save_model(model: torch.nn.Module, config: SynthSegTrainingConfig, out_path: str | Path, summary: dict) -> None:
    """Weights as a plain state dict (written to a temporary name, then renamed) and a JSON of how they were made."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(out_path)
    info = {**asdict(config), **summary, "network": "SegResNet(init_filters=8), 1 channel in, 33 classes"}
    info_tmp = out_path.with_suffix(".json.tmp")
    info_tmp.write_text(json.dumps(info, indent=2) + "\n")
    info_tmp.replace(out_path.with_suffix(".json"))


def load_model(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    model = network(1)
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return model.to(device).eval()


@torch.no_grad()
def segment_volume(model: torch.nn.Module, image: np.ndarray, device: str = "cpu", roi=(80, 96, 80)) -> np.ndarray:
    """Labels 0..32 for one volume already at the model's spacing (any contrast), by sliding windows."""
    from monai.inferers import sliding_window_inference

    data = torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None].to(device)
    low, high = torch.quantile(data.flatten()[:: max(1, data.numel() // 200_000)], torch.tensor([0.0, 0.995], device=device))
    data = ((data - low) / (high - low).clamp_min(1e-6)).clamp(0, 1)
    logits = sliding_window_inference(data, roi_size=roi, sw_batch_size=1, predictor=model, overlap=0.25)
    return logits.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)
